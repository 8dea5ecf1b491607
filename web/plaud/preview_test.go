package plaud

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestPrettyFixtures relies on the fixtures already being 2-space indented JSON: Pretty must
// give back exactly their bytes, minus the trailing newline, for every one of them.
func TestPrettyFixtures(t *testing.T) {
	names := append(fixtureNames(t), "signatures.json")
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			body := mustReadFixture(t, name)
			got, ok := Pretty(body)
			if !ok {
				t.Fatalf("Pretty ok = false, want true")
			}
			if want := strings.TrimSuffix(string(body), "\n"); got != want {
				t.Errorf("Pretty =\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestPretty(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		want   string
		wantOK bool
	}{
		{
			name: "key order and number text kept",
			body: `{"z":1.50e+3,"a":[0.0,-0,12345678901234567890],"m":{}}`,
			want: "{\n  \"z\": 1.50e+3,\n  \"a\": [\n    0.0,\n    -0,\n" +
				"    12345678901234567890\n  ],\n  \"m\": {}\n}",
			wantOK: true,
		},
		{
			name:   "escapes and CJK kept as sent",
			body:   `{"t":"\u00e9 \"q\" 日本語 <b>"}`,
			want:   "{\n  \"t\": \"\\u00e9 \\\"q\\\" 日本語 <b>\"\n}",
			wantOK: true,
		},
		{
			name:   "array top level and surrounding whitespace",
			body:   "\r\n [1,2]\n\n",
			want:   "[\n  1,\n  2\n]",
			wantOK: true,
		},
		{
			name:   "byte-order mark dropped",
			body:   "\xEF\xBB\xBF{\"a\":1}",
			want:   "{\n  \"a\": 1\n}",
			wantOK: true,
		},
		{
			name:   "invalid UTF-8 in a string becomes U+FFFD",
			body:   "{\"a\":\"caf\xe9\"}",
			want:   "{\n  \"a\": \"caf\uFFFD\"\n}",
			wantOK: true,
		},
		{
			name:   "nested deeper than 64 is compacted, not indented",
			body:   strings.Repeat("[ ", 65) + strings.Repeat("] ", 65),
			want:   strings.Repeat("[", 65) + strings.Repeat("]", 65),
			wantOK: true,
		},
		{
			name:   "brackets inside strings do not count as depth",
			body:   `{"a": "` + strings.Repeat("[", 100) + `\"{"}`,
			want:   "{\n  \"a\": \"" + strings.Repeat("[", 100) + `\"{"` + "\n}",
			wantOK: true,
		},
		{name: "empty", body: ""},
		{name: "not JSON", body: "hello"},
		{name: "too deep for encoding/json", body: strings.Repeat("[", 20000) +
			strings.Repeat("]", 20000)},
		{name: "truncated", body: `{"a":`},
		{name: "two values", body: `{} {}`},
		{name: "invalid UTF-8 outside strings", body: "\xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Pretty([]byte(tt.body))
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("Pretty = %q, %v, want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestPrettyDepthLimit checks the boundary: 64 levels are still indented.
func TestPrettyDepthLimit(t *testing.T) {
	body := strings.Repeat("[", 64) + strings.Repeat("]", 64)
	got, ok := Pretty([]byte(body))
	// The innermost [] stays on one line; each of the 63 outer levels adds two newlines.
	if want := 2 * 63; !ok || strings.Count(got, "\n") != want {
		t.Errorf("Pretty ok = %v with %d newlines, want true with %d",
			ok, strings.Count(got, "\n"), want)
	}
}

func TestSummary(t *testing.T) {
	tests := []struct {
		name string
		body string
		max  int
		want string
	}{
		{
			name: "indented JSON is compacted",
			body: "{\n  \"event\": \"x\",\n  \"data\": {\"a\": [1, 2]}\n}\n",
			max:  100,
			want: `{"event":"x","data":{"a":[1,2]}}`,
		},
		{
			name: "cut with ellipsis counted in max",
			body: `{"event":"transcription.completed"}`,
			max:  10,
			want: `{"event":…`,
		},
		{
			name: "exactly max runes is not cut",
			body: "abcde",
			max:  5,
			want: "abcde",
		},
		{
			name: "CJK counts runes, not bytes",
			body: "日本語のテキスト",
			max:  4,
			want: "日本語…",
		},
		{
			name: "text whitespace and controls collapse to one space",
			body: "  line one\r\n\tline\x00two\u2028three  ",
			max:  100,
			want: "line one line two three",
		},
		{
			name: "no dangling space before the ellipsis",
			body: "abc defgh",
			max:  5,
			want: "abc…",
		},
		{
			name: "invalid bytes become U+FFFD",
			body: "ok\xff\xfeend",
			max:  100,
			want: "ok\uFFFD\uFFFDend",
		},
		{
			name: "invalid UTF-8 inside JSON string",
			body: "{\"a\": \"caf\xe9\"}",
			max:  100,
			want: "{\"a\":\"caf\uFFFD\"}",
		},
		{
			name: "bidi override removed",
			body: "abc\u202Edef",
			max:  100,
			want: "abc def",
		},
		{name: "max one", body: "abc", max: 1, want: "…"},
		{name: "max zero", body: "abc", max: 0, want: ""},
		{name: "negative max", body: "abc", max: -3, want: ""},
		{name: "empty body", body: "", max: 10, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Summary([]byte(tt.body), tt.max)
			if got != tt.want {
				t.Errorf("Summary(%q, %d) = %q, want %q", tt.body, tt.max, got, tt.want)
			}
		})
	}
}

// TestSummaryFixtures checks every fixture gives a valid one-line preview within the limit,
// cut with an ellipsis exactly when its compact JSON is longer than the limit.
func TestSummaryFixtures(t *testing.T) {
	const max = 120
	for _, name := range fixtureNames(t) {
		t.Run(name, func(t *testing.T) {
			body := mustReadFixture(t, name)
			var compact bytes.Buffer
			if err := json.Compact(&compact, body); err != nil {
				t.Fatalf("compact fixture: %v", err)
			}

			got := Summary(body, max)
			want := compact.String()
			if utf8.RuneCount(compact.Bytes()) > max {
				want = string([]rune(want)[:max-1]) + "…"
			}
			if got != want {
				t.Errorf("Summary = %q, want %q", got, want)
			}
			if n := utf8.RuneCountInString(got); n > max || !strings.HasPrefix(got, `{"event`) {
				t.Errorf("Summary = %q (%d runes), want at most %d runes starting with the event",
					got, n, max)
			}
		})
	}
}

// TestDocSummary checks that a decoded body's Summary, which compacts only as much of the body
// as the preview reaches, is exactly the package Summary, for every fixture and for bodies whose
// preview reaches past the first part compacted.
func TestDocSummary(t *testing.T) {
	bodies := map[string][]byte{}
	for _, name := range fixtureNames(t) {
		bodies[name] = mustReadFixture(t, name)
	}
	long := strings.Repeat(" ", 5000)
	for i, b := range []string{
		`{"a":"` + long + `x"}`,
		`{"a":` + long + `"x",` + long + `"b": [1, 2]}`,
		"\ufeff" + `{ "a" : "b\" \\ c" , "d" : { } }`,
		`{"s":"` + strings.Repeat("é\t\n ", 900) + `"}`,
		`{"bidi":"\u202e` + strings.Repeat("ab", 200) + `"}`,
		`{"k":"` + strings.Repeat("日本語", 300) + `"}`,
		`{}`,
		`[1, 2, 3]`,   // not an object: the package Summary
		`{"a": 1} {}`, // not one document
		`not json at all`,
	} {
		bodies[fmt.Sprintf("body %d", i)] = []byte(b)
	}
	// Multi-byte characters across the first part compacted, at every alignment: a part of
	// one must not show as a replacement character.
	for pad := range 12 {
		for _, ch := range []string{"😀", "日", "é"} {
			b := "{" + strings.Repeat(" ", 600+pad) + `"a":"` + strings.Repeat("x", 192) + strings.Repeat(ch, 10) + `"}`
			bodies[fmt.Sprintf("pad %d %s", pad, ch)] = []byte(b)
		}
	}
	for name, body := range bodies {
		for _, max := range []int{0, 1, 2, 10, 80, 200, 1000} {
			want := Summary(body, max)
			if got := Decode(body).Summary(body, max); got != want {
				t.Errorf("%s, max %d: Doc.Summary = %q, want %q", name, max, got, want)
			}
		}
	}
}
