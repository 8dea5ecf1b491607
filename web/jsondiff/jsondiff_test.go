package jsondiff

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiffFixtures diffs each fixture pair testdata/<name>.a.json and <name>.b.json and compares
// the changes with <name>.want.json.
func TestDiffFixtures(t *testing.T) {
	wants, err := filepath.Glob("testdata/*.want.json")
	if err != nil || len(wants) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, wantFile := range wants {
		name := strings.TrimSuffix(filepath.Base(wantFile), ".want.json")
		t.Run(name, func(t *testing.T) {
			a := mustRead(t, "testdata/"+name+".a.json")
			b := mustRead(t, "testdata/"+name+".b.json")
			var want []Change
			if err := json.Unmarshal(mustRead(t, wantFile), &want); err != nil {
				t.Fatal(err)
			}
			got, truncated, err := Diff(a, b)
			if err != nil || truncated {
				t.Fatalf("Diff: truncated %v, %v", truncated, err)
			}
			if len(got) != len(want) {
				t.Fatalf("changes = %d, want %d:\n%s", len(got), len(want), dump(got))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("change %d = %+v, want %+v", i, got[i], want[i])
				}
			}

			// Swapping the sides swaps added and removed, and old and new.
			back, _, err := Diff(b, a)
			if err != nil || len(back) != len(got) {
				t.Fatalf("reverse diff: %d changes, %v", len(back), err)
			}
			opposite := map[Kind]Kind{Added: Removed, Removed: Added, Changed: Changed}
			for _, c := range back {
				found := false
				for _, g := range got {
					found = found || (g.Path == c.Path && opposite[g.Kind] == c.Kind &&
						g.Old == c.New && g.New == c.Old)
				}
				if !found {
					t.Errorf("reverse change %+v has no mirror", c)
				}
			}

			// A document never differs from itself.
			if same, _, _ := Diff(a, a); len(same) != 0 {
				t.Errorf("a vs a = %s", dump(same))
			}
		})
	}
}

func TestDiffCases(t *testing.T) {
	tests := []struct {
		name, a, b string
		want       []Change
	}{
		{"equal numbers", `{"n": 1, "m": 2.50}`, `{"m": 25e-1, "n": 1.0}`, nil},
		{"number changed", `{"n": 1}`, `{"n": 2}`, []Change{{"n", Changed, "1", "2"}}},
		{"number vs string", `{"n": 1}`, `{"n": "1"}`, []Change{{"n", Changed, "1", `"1"`}}},
		{"null vs missing", `{"a": null}`, `{}`, []Change{{"a", Removed, "null", ""}}},
		{"array shrinks", `[1,2,3]`, `[1]`, []Change{{"[1]", Removed, "2", ""}, {"[2]", Removed, "3", ""}}},
		{"nested object added", `{"d": {}}`, `{"d": {"e": {"f": [1]}}}`,
			[]Change{{"d.e", Added, "", `{"f":[1]}`}}},
		{"markup kept as text", `{"s": "<b>"}`, `{"s": "<i>&"}`, []Change{{"s", Changed, `"<b>"`, `"<i>&"`}}},
		{"odd keys", `{"": 1, "a b": 2, "1x": 3}`, `{}`, []Change{{`[""]`, Removed, "1", ""},
			{`["a b"]`, Removed, "2", ""}, {`["1x"]`, Removed, "3", ""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := Diff([]byte(tc.a), []byte(tc.b))
			if err != nil {
				t.Fatal(err)
			}
			if dump(got) != dump(tc.want) {
				t.Errorf("changes = %s, want %s", dump(got), dump(tc.want))
			}
		})
	}
}

func TestDiffNotJSON(t *testing.T) {
	for _, tc := range []struct{ a, b, side string }{
		{`{"a":1}`, `junk`, "second"},
		{`{"a":1} {"b":2}`, `{}`, "first"},
		{``, `{}`, "first"},
	} {
		_, _, err := Diff([]byte(tc.a), []byte(tc.b))
		if !errors.Is(err, ErrNotJSON) || !strings.HasPrefix(err.Error(), tc.side) {
			t.Errorf("Diff(%q, %q) error = %v, want ErrNotJSON on the %s document", tc.a, tc.b, err, tc.side)
		}
	}
}

// TestDiffBounded checks that two large unrelated arrays give at most maxChanges changes.
func TestDiffBounded(t *testing.T) {
	var a, b strings.Builder
	a.WriteString("[")
	b.WriteString("[")
	for i := 0; i < 3000; i++ {
		if i > 0 {
			a.WriteString(",")
			b.WriteString(",")
		}
		fmt.Fprintf(&a, "%d", i)
		fmt.Fprintf(&b, "%d", i+1)
	}
	a.WriteString("]")
	b.WriteString("]")
	got, truncated, err := Diff([]byte(a.String()), []byte(b.String()))
	if err != nil || !truncated || len(got) != maxChanges {
		t.Errorf("changes = %d, truncated %v, %v; want %d, true", len(got), truncated, err, maxChanges)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dump(cs []Change) string {
	b, _ := json.Marshal(cs)
	return string(b)
}
