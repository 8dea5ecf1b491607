package db

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The index facts of a body (BodyIndex) are defined by bodyIndexQuery, the SQL the triggers
// run: SQLite's json_tree over the body. Asking SQLite for them on every webhook walked each body
// twice in C and cost a reader round trip, a fifth of the server's time at full speed. indexBody
// works out the same facts in Go, from one pass of encoding/json's tokenizer, for the bodies
// webhooks really carry. Where the two could disagree it declines, and the query is asked
// instead:
//   - a body that is empty, over the size limit, not valid UTF-8 or JSON, or nested very deep;
//   - a real number outside the range where SQLite's rendering of it is reproduced here
//     (renderReal), or an integer that does not fit 64 bits;
//   - a string with a \u0000 or surrogate escape, or a field path SQLite would quote another way.
//
// TestBodyIndexMatchesQuery holds the two to the same answers over the Plaud fixtures and
// generated documents, and FuzzBodyIndex over whatever the fuzzer finds.

const (
	maxIndexedBody = 4194304 // bodies above it are indexed as text (bodyIndexQuery)
	maxIndexText   = 65536   // characters of search text kept
	maxIndexPaths  = 256     // distinct field paths kept
	maxIndexDepth  = 500     // deeper documents are left to SQLite (its own limit is 1000)
)

// errDeclined stops indexBody's walk when only SQLite can be trusted with the body.
var errDeclined = errors.New("body left to SQLite")

// indexFrame is an open object or array in indexBody's walk.
type indexFrame struct {
	path    string // the container's own full key
	array   bool
	n       int    // elements seen, for an array
	key     string // the pending member's path element, for an object
	wantKey bool   // an object's next string token is a member name
}

// indexBody returns body's index facts as bodyIndexQuery would, or false when it declines.
func indexBody(body []byte) (*BodyIndex, bool) {
	if len(body) == 0 || len(body) > maxIndexedBody || !utf8.Valid(body) {
		return nil, false
	}
	w := indexWalk{body: body, paths: map[string]struct{}{}}
	if err := w.run(); err != nil {
		return nil, false
	}
	paths := make([]string, 0, len(w.paths))
	for p := range w.paths {
		paths = append(paths, p)
	}
	slices.Sort(paths) // SQLite's BINARY collation: byte order, as Go compares strings
	if len(paths) > maxIndexPaths {
		paths = paths[:maxIndexPaths]
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // SQLite escapes only quotes, backslashes and control characters
	if err := enc.Encode(paths); err != nil {
		return nil, false
	}
	text := w.text.String()
	if utf8.RuneCountInString(text) > maxIndexText { // substr counts characters
		n := 0
		for i := range text {
			if n == maxIndexText {
				text = text[:i]
				break
			}
			n++
		}
	}
	return &BodyIndex{Paths: strings.TrimSuffix(buf.String(), "\n"), Text: text}, true
}

// indexWalk is one pass over a body's tokens.
type indexWalk struct {
	body   []byte
	dec    *json.Decoder
	stack  []indexFrame
	paths  map[string]struct{}
	text   strings.Builder
	texts  int // values added to text
	values int // top-level values read
}

func (w *indexWalk) run() error {
	w.dec = json.NewDecoder(bytes.NewReader(w.body))
	w.dec.UseNumber()
	for {
		start := w.dec.InputOffset()
		tok, err := w.dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		raw := w.body[start:w.dec.InputOffset()]
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			w.stack = w.stack[:len(w.stack)-1]
			w.valueDone()
			continue
		}
		if n := len(w.stack); n > 0 && w.stack[n-1].wantKey {
			// A member name: its path element is written from the raw text, as SQLite does.
			k, err := memberName(raw)
			if err != nil {
				return err
			}
			w.stack[n-1].key, w.stack[n-1].wantKey = k, false
			continue
		}
		if len(w.stack) == 0 {
			if w.values > 0 {
				return errDeclined // a second document: not JSON to SQLite
			}
			w.values++
		}
		path := w.valuePath()
		if path != "$" {
			if strings.ContainsAny(path, "\u2028\u2029") {
				return errDeclined // Go's JSON escapes these two and SQLite's does not
			}
			// Only each array's first element stands for its kind (bodyIndexQuery).
			if !hasLaterIndex(path) {
				w.paths[strings.ReplaceAll(path, "[0]", "[]")] = struct{}{}
			}
		}
		switch t := tok.(type) {
		case json.Delim: // '{' or '['
			if len(w.stack) >= maxIndexDepth {
				return errDeclined
			}
			w.stack = append(w.stack, indexFrame{path: path, array: t == '[', wantKey: t == '{'})
			continue
		case string:
			if err := checkEscapes(raw); err != nil {
				return err
			}
			w.addText(t)
		case json.Number:
			s, err := renderNumber(string(t))
			if err != nil {
				return err
			}
			w.addText(s)
		}
		w.valueDone()
	}
	if len(w.stack) != 0 || w.values != 1 {
		return errDeclined // unfinished, or only spaces
	}
	return nil
}

// valuePath is the full key of the value about to be read, as json_tree writes it.
func (w *indexWalk) valuePath() string {
	n := len(w.stack)
	if n == 0 {
		return "$"
	}
	f := &w.stack[n-1]
	if f.array {
		return f.path + "[" + strconv.Itoa(f.n) + "]"
	}
	return f.path + f.key
}

// valueDone moves the enclosing container past a value just read.
func (w *indexWalk) valueDone() {
	n := len(w.stack)
	if n == 0 {
		return
	}
	f := &w.stack[n-1]
	if f.array {
		f.n++
	} else {
		f.wantKey = true
	}
}

func (w *indexWalk) addText(s string) {
	if w.texts > 0 {
		w.text.WriteByte(' ')
	}
	w.texts++
	w.text.WriteString(s)
}

// memberName is the path element of a member named by raw, the tokenizer's span ending in the
// quoted name (after any comma and spaces): ".name" for an ASCII letter followed by letters and
// digits, else the name's source text in double quotes, escapes and all.
func memberName(raw []byte) (string, error) {
	i := bytes.IndexByte(raw, '"')
	if i < 0 || len(raw) < i+2 || raw[len(raw)-1] != '"' {
		return "", errDeclined
	}
	name := raw[i+1 : len(raw)-1]
	plain := len(name) > 0 && isASCIILetter(name[0])
	for _, c := range name {
		if !isASCIILetter(c) && !('0' <= c && c <= '9') {
			plain = false
			break
		}
	}
	if plain {
		return "." + string(name), nil
	}
	return `."` + string(name) + `"`, nil
}

func isASCIILetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

// hasLaterIndex reports whether path names an array element past the first anywhere: "[" then
// a digit 1-9 (the query's GLOB '*[[][1-9]*', which also matches inside quoted names).
func hasLaterIndex(path string) bool {
	for i := 0; i+1 < len(path); i++ {
		if path[i] == '[' && '1' <= path[i+1] && path[i+1] <= '9' {
			return true
		}
	}
	return false
}

// checkEscapes declines a string whose \u escapes Go and SQLite could decode differently: NUL
// and UTF-16 surrogates (raw is the string token's source, possibly after a separator).
func checkEscapes(raw []byte) error {
	for {
		i := bytes.Index(raw, []byte(`\u`))
		if i < 0 {
			return nil
		}
		raw = raw[i+2:]
		if len(raw) < 4 {
			return errDeclined
		}
		v, err := strconv.ParseUint(string(raw[:4]), 16, 16)
		if err != nil || v == 0 || (0xD800 <= v && v <= 0xDFFF) {
			return errDeclined
		}
	}
}

// renderNumber is a JSON number as SQLite's text of its value: an integer in decimal, a real
// as renderReal.
func renderNumber(lit string) (string, error) {
	if !strings.ContainsAny(lit, ".eE") {
		n, err := strconv.ParseInt(lit, 10, 64)
		if err != nil {
			return "", errDeclined // past 64 bits SQLite reads it as a real
		}
		return strconv.FormatInt(n, 10), nil
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return "", errDeclined
	}
	s, ok := renderReal(f)
	if !ok {
		return "", errDeclined
	}
	return s, nil
}

// renderReal writes f as SQLite turns a REAL into text (printf "%!.17g", which falls back to the
// shortest digits that read back as f). That is reproduced here only where it was checked
// against SQLite, over a million values with no difference: at most 13 significant digits and
// a decimal exponent from -4 to 16, where SQLite writes fixed-point; ".0" marks a whole number.
// Other values, such as 1e20, 0.0000123 or a full-precision 0.1+0.2, are declined.
func renderReal(f float64) (string, bool) {
	if f == 0 {
		return "0.0", true // negative zero too
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // [-]d[.ddd]e±XX, the shortest that reads back
	mant, exp, _ := strings.Cut(s, "e")
	neg := strings.HasPrefix(mant, "-")
	digits := strings.Replace(strings.TrimPrefix(mant, "-"), ".", "", 1)
	e, err := strconv.Atoi(exp)
	if err != nil || len(digits) > 13 || e < -4 || e > 16 || (e == -4 && digits[0] == '9') {
		return "", false
	}
	var out string
	switch {
	case e < 0:
		out = "0." + strings.Repeat("0", -e-1) + digits
	case len(digits) <= e+1:
		out = digits + strings.Repeat("0", e+1-len(digits)) + ".0"
	default:
		out = digits[:e+1] + "." + digits[e+1:]
	}
	if neg {
		out = "-" + out
	}
	return out, true
}
