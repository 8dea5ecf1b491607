package db

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// indexFixtures are the Plaud events the suite carries: the drift fixtures here and the
// envelope fixtures of web/plaud.
func indexFixtures(tb testing.TB) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	for _, pattern := range []string{"testdata/drift/*.json", "../web/plaud/testdata/*.json", "../web/plaud/testdata/variants/*.json"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			tb.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			out[f] = b
		}
	}
	if len(out) < 20 {
		tb.Fatalf("found %d fixtures, want the Plaud set", len(out))
	}
	return out
}

// checkBodyIndex compares indexBody with bodyIndexQuery for body. It reports whether indexBody
// answered (rather than declining).
func checkBodyIndex(tb testing.TB, d *DB, name string, body []byte) bool {
	tb.Helper()
	want, err := d.bodyIndexSQL(context.Background(), nil, body)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	got, ok := indexBody(body)
	if !ok {
		return false
	}
	if got.Paths != want.Paths {
		tb.Errorf("%s: paths\n got  %s\n want %s", name, got.Paths, want.Paths)
	}
	if got.Text != want.Text {
		tb.Errorf("%s: text\n got  %q\n want %q", name, got.Text, want.Text)
	}
	return true
}

// TestBodyIndexMatchesQuery holds indexBody to the answers of the query the triggers run, for
// every Plaud fixture (all of which it must answer itself, or it buys ingest nothing), for
// bodies built to hit the edges of SQLite's JSON reading, and for generated documents.
func TestBodyIndexMatchesQuery(t *testing.T) {
	d := mustOpenDB(t, Options{})
	for name, body := range indexFixtures(t) {
		if !checkBodyIndex(t, d, name, body) {
			t.Errorf("%s: declined; a Plaud event should be indexed in Go", name)
		}
	}

	edges := []struct {
		body    string
		decline bool // indexBody must leave it to SQLite
	}{
		{`{"a":1}`, false},
		{`  {"a" : [ 1 , 2.5 , "x" ] }  `, false},
		{`"just text"`, false},
		{`42`, false},
		{`-0`, false},
		{`[]`, false},
		{`{}`, false},
		{`null`, false},
		{`[true,false,null,{"a":null}]`, false},
		{`{"file_id":"f","A1":1,"1a":2,"":3,"with space":4,"x[0]":5,"y[1]":6,"a.b":7,"ünï":8,"日本":9}`, false},
		{`{"quo\"te":1,"back\\slash":2,"\u0061":3,"tab\tname":4}`, false},
		{`{"a":[[1,2],[3,[4,5]]],"b":[{"c":1},{"d":2}],"e":[[],[{}]]}`, false},
		{`{"a":{"a":{"a":1}},"a":2}`, false},
		{`{"s":"line\nbreak \"q\" \\ \/ \u00e9 \u4e2d 😀 \u2028 end"}`, false},
		{`[0.1,0.93,12.5,1.0,100.0,-3.25,1e3,1E-4,2.5e+2,0.0,-0.0,123456789012.5,99.99,9.5,0.00012]`, false},
		{`[9223372036854775807,-9223372036854775808]`, false},
		{strings.Repeat(`[`, 400) + strings.Repeat(`]`, 400), false},
		{`{"k":"` + strings.Repeat("é", 70000) + `"}`, false}, // text cut at 65,536 characters
		{`[` + strings.TrimSuffix(strings.Repeat(`{"p":1},`, 10), ",") + `]`, false},
		{pathsBody(300), false}, // more paths than kept

		{``, true},
		{`   `, true},
		{`{"a":1} {"b":2}`, true},
		{`{"a":1,}`, true},
		{"\xef\xbb\xbf{}", true},
		{"{\"a\":\"\xff\"}", true},
		{`{"a":"\u0000"}`, true},
		{`{"a":"\ud83d\ude00"}`, true},
		{`{"a":"\udc00"}`, true},
		{`[1e20]`, true},
		{`[0.1234567890123456]`, true},
		{`[0.00001]`, true},
		{`[0.00099]`, true},
		{`[1e400]`, true},
		{`[9223372036854775808]`, true},
		{`{"v":0.49999999999999997224442438437108648941}`, true}, // digits SQLite does not read
		{`[0.999999999999999944488848768742172978818416595458984375]`, true},
		{`[1.5000000000000000000000000]`, false},  // trailing zeros are no digits to lose
		{`[0.00000000000000000000012e21]`, false}, // leading zeros are no digits either
		{"{\"\u2028\":1}", true},
		{strings.Repeat(`[`, 600) + strings.Repeat(`]`, 600), true},
		{`not json`, true},
	}
	for i, c := range edges {
		name := fmt.Sprintf("edge %d %.40q", i, c.body)
		answered := checkBodyIndex(t, d, name, []byte(c.body))
		if answered == c.decline {
			t.Errorf("%s: answered = %v, want %v", name, answered, !c.decline)
		}
	}

	r := rand.New(rand.NewSource(8))
	answered := 0
	const n = 3000
	for i := range n {
		var b strings.Builder
		genJSON(r, &b, 0)
		if checkBodyIndex(t, d, fmt.Sprintf("generated %d %.60q", i, b.String()), []byte(b.String())) {
			answered++
		}
	}
	// Most generated documents hold something declined (a long real, a surrogate), but many
	// must be answered, or the comparison above proves little.
	t.Logf("answered %d of %d generated documents", answered, n)
	if answered < n/4 {
		t.Errorf("answered %d of %d generated documents, want at least a quarter", answered, n)
	}
}

// pathsBody is an object with n distinct members.
func pathsBody(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"k%03d":%d`, i, i)
	}
	b.WriteString("}")
	return b.String()
}

var genKeys = []string{"id", "file_id", "event_type", "data", "A1", "1a", "", "with space", "x[0]", "y[1]",
	"a.b", `quo\"te`, `\u0061b`, "ünï", "日本", "segments", "text", "start", "z"}

var genStrings = []string{"", "hello world", "line\\nbreak", `\"quoted\"`, `back\\slash`, `\u00e9t\u00e9`,
	"日本語のテキスト", "😀 emoji", `\ud83d\ude00`, `\u2028`, "<b>&amp;</b>", "a\\tb", `\/path`}

var genReals = []string{"0.1", "0.93", "12.5", "1.0", "-3.25", "1e3", "2.5E-2", "0.0", "-0.0", "99.99",
	"1701234567.123", "0.30000000000000004", "1e21", "0.00001", "123.456e1"}

// genJSON writes a random JSON value to b, with random spacing.
func genJSON(r *rand.Rand, b *strings.Builder, depth int) {
	sp := func() {
		if r.Intn(4) == 0 {
			b.WriteString([]string{" ", "\n", "\t", "  "}[r.Intn(4)])
		}
	}
	sp()
	k := r.Intn(10)
	if depth >= 4 && k < 4 {
		k += 4
	}
	switch k {
	case 0, 1:
		b.WriteString("{")
		for i := range r.Intn(5) {
			if i > 0 {
				b.WriteString(",")
			}
			sp()
			b.WriteString(`"` + genKeys[r.Intn(len(genKeys))] + `"`)
			sp()
			b.WriteString(":")
			genJSON(r, b, depth+1)
		}
		sp()
		b.WriteString("}")
	case 2, 3:
		b.WriteString("[")
		for i := range r.Intn(4) {
			if i > 0 {
				b.WriteString(",")
			}
			genJSON(r, b, depth+1)
		}
		b.WriteString("]")
	case 4, 5:
		b.WriteString(`"` + genStrings[r.Intn(len(genStrings))] + `"`)
	case 6:
		b.WriteString(strconv.FormatInt(r.Int63n(1<<40)-1<<39, 10))
	case 7:
		if r.Intn(2) == 0 {
			b.WriteString(genReals[r.Intn(len(genReals))])
		} else {
			f := math.Round(r.Float64()*1e6) / math.Pow10(r.Intn(8))
			b.WriteString(strconv.FormatFloat(f, 'f', -1, 64))
		}
	case 8:
		b.WriteString([]string{"true", "false", "null"}[r.Intn(3)])
	default:
		b.WriteString(`"` + strings.Repeat("ab ", r.Intn(5)) + `"`)
	}
	sp()
}

// FuzzBodyIndex: whatever the body, indexBody either declines or agrees with SQLite.
func FuzzBodyIndex(f *testing.F) {
	for _, b := range indexFixtures(f) {
		f.Add(b)
	}
	for _, s := range []string{`{"a":[1,2.5,"x"]}`, `{"quo\"te":{"x[1]":[0.1]}}`, `"t"`, `[1e5,-0.0]`} {
		f.Add([]byte(s))
	}
	d := mustOpenDB(f, Options{})
	f.Fuzz(func(t *testing.T, body []byte) {
		checkBodyIndex(t, d, "fuzzed", body)
	})
}

// BenchmarkBodyIndex compares working out a body's index facts in Go with asking SQLite, for a
// small Plaud event and a long transcript.
func BenchmarkBodyIndex(b *testing.B) {
	d := mustOpenDB(b, Options{})
	for _, fixture := range []string{"device.synced.json", "transcription.completed.long-multispeaker.json"} {
		body, err := os.ReadFile(filepath.Join("testdata", "drift", fixture))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fixture+"/go", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, ok := indexBody(body); !ok {
					b.Fatal("declined")
				}
			}
		})
		b.Run(fixture+"/sqlite", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := d.bodyIndexSQL(context.Background(), nil, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPlainDecimal checks the shortcut for numbers written as plain decimals against the
// float path it stands in for, over decimals of every length and scale it takes.
func TestPlainDecimal(t *testing.T) {
	r := rand.New(rand.NewSource(13))
	taken := 0
	for range 200000 {
		digits := strconv.FormatInt(r.Int63n(int64(math.Pow10(1+r.Intn(15)))), 10)
		point := r.Intn(len(digits) + 6)
		var lit string
		if point >= len(digits) {
			lit = "0." + strings.Repeat("0", point-len(digits)) + digits
		} else if point == 0 {
			lit = digits + ".0"
		} else {
			lit = strings.TrimLeft(digits[:len(digits)-point], "0")
			if lit == "" {
				lit = "0"
			}
			lit += "." + digits[len(digits)-point:]
		}
		if r.Intn(3) == 0 {
			lit = "-" + lit
		}
		neg, d, e, ok := plainDecimal(lit)
		if !ok {
			continue
		}
		got, gotOK := layoutReal(neg, d, e)
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil {
			t.Fatal(err)
		}
		want, wantOK := renderReal(f)
		if got != want || gotOK != wantOK {
			t.Errorf("%s: shortcut %q %v, float path %q %v", lit, got, gotOK, want, wantOK)
		}
		if gotOK {
			taken++
		}
	}
	if taken < 50000 {
		t.Errorf("the shortcut answered only %d decimals", taken)
	}
}
