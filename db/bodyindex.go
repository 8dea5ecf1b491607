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

	"github.com/go-json-experiment/json/jsontext"
)

// The index facts of a body (BodyIndex) are defined by bodyIndexQuery, the SQL the triggers
// run: SQLite's json_tree over the body. Asking SQLite for them on every webhook walked each body
// twice in C and cost a reader round trip, a fifth of the server's time at full speed. indexBody
// works out the same facts in Go, from one pass of a JSON tokenizer (jsontext, of the Go
// team's encoding/json v2 work, which hands over each value's source text), for the bodies
// webhooks really carry. Where the two could disagree it declines, and the query is asked
// instead:
//   - a body that is empty, over the size limit, not valid UTF-8 or JSON, or nested very deep;
//   - a real number outside the range where SQLite's rendering of it is reproduced here
//     (renderReal) or written with more digits than SQLite reads (maxRealDigits), or an
//     integer that does not fit 64 bits;
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
	w.text.Grow(min(len(body), 4*maxIndexText)) // the text is at most about the body's size
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
	text, n := w.text.String(), 0
	for i := range text { // substr counts characters
		if n == maxIndexText {
			text = text[:i]
			break
		}
		n++
	}
	return &BodyIndex{Paths: strings.TrimSuffix(buf.String(), "\n"), Text: text}, true
}

// indexWalk is one pass over a body's tokens.
type indexWalk struct {
	body   []byte
	buf    []byte // a string value, unquoted
	stack  []indexFrame
	paths  map[string]struct{}
	text   strings.Builder
	texts  int // values added to text
	values int // top-level values read
}

func (w *indexWalk) run() error {
	dec := jsontext.NewDecoder(bytes.NewReader(w.body), jsontext.AllowDuplicateNames(true))
	for {
		k := dec.PeekKind()
		if k == 0 { // the end, or an error
			if _, err := dec.ReadToken(); err != io.EOF {
				return errDeclined
			}
			break
		}
		if k == '}' || k == ']' {
			if _, err := dec.ReadToken(); err != nil {
				return errDeclined
			}
			w.stack = w.stack[:len(w.stack)-1]
			w.valueDone()
			continue
		}
		if n := len(w.stack); n > 0 && w.stack[n-1].wantKey {
			// A member name: its path element is written from its source text, as SQLite does.
			raw, err := dec.ReadValue()
			if err != nil {
				return errDeclined
			}
			key, err := memberName(raw)
			if err != nil {
				return err
			}
			w.stack[n-1].key, w.stack[n-1].wantKey = key, false
			continue
		}
		if len(w.stack) == 0 {
			if w.values > 0 {
				return errDeclined // a second document: not JSON to SQLite
			}
			w.values++
		}
		path := w.valuePath()
		// Only each array's first element stands for its kind (bodyIndexQuery).
		if path != "$" && !hasLaterIndex(path) {
			w.paths[strings.ReplaceAll(path, "[0]", "[]")] = struct{}{}
		}
		switch k {
		case '{', '[':
			if _, err := dec.ReadToken(); err != nil {
				return errDeclined
			}
			if len(w.stack) >= maxIndexDepth {
				return errDeclined
			}
			w.stack = append(w.stack, indexFrame{path: path, array: k == '[', wantKey: k == '{'})
			continue
		case '"':
			raw, err := dec.ReadValue()
			if err != nil {
				return errDeclined
			}
			if err := checkEscapes(raw); err != nil {
				return err
			}
			w.buf, err = jsontext.AppendUnquote(w.buf[:0], raw)
			if err != nil {
				return errDeclined
			}
			w.addText(w.buf)
		case '0':
			raw, err := dec.ReadValue()
			if err != nil {
				return errDeclined
			}
			text, err := renderNumber(string(raw))
			if err != nil {
				return err
			}
			w.addText([]byte(text))
		default: // true, false, null: a path, no text
			if _, err := dec.ReadToken(); err != nil {
				return errDeclined
			}
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

func (w *indexWalk) addText(s []byte) {
	if w.texts > 0 {
		w.text.WriteByte(' ')
	}
	w.texts++
	w.text.Write(s)
}

// memberName is the path element of a member named by raw, the name as quoted in the source:
// ".name" for an ASCII letter followed by letters and digits, else the name's source text in
// double quotes, escapes and all.
func memberName(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", errDeclined
	}
	name := raw[1 : len(raw)-1]
	if bytes.Contains(name, []byte("\u2028")) || bytes.Contains(name, []byte("\u2029")) {
		return "", errDeclined // Go's JSON escapes these two in the path list and SQLite's does not
	}
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
// and UTF-16 surrogates (raw is the string as quoted in the source).
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
	if significantDigits(lit) > maxRealDigits {
		return "", errDeclined
	}
	if neg, digits, e, ok := plainDecimal(lit); ok {
		if s, ok := layoutReal(neg, digits, e); ok {
			return s, nil
		}
		return "", errDeclined
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

// maxRealDigits is the most significant digits a real's text may have for indexBody to read it.
// SQLite reads only the first 19 or so and ignores the rest, where Go rounds on all of them, so
// 0.99999999999999994448884876874217297881841659545898 is 1.0 to Go and 0.99999999999999989
// to SQLite.
const maxRealDigits = 17

// significantDigits counts the digits of a number's text before any exponent, without the
// zeros that lead or trail.
func significantDigits(lit string) int {
	mant, _, _ := strings.Cut(strings.ToLower(lit), "e")
	mant = strings.Trim(strings.Replace(strings.TrimPrefix(mant, "-"), ".", "", 1), "0")
	return len(mant)
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
	if err != nil {
		return "", false
	}
	return layoutReal(neg, digits, e)
}

// plainDecimal reads a number written as digits, a point and digits (the way webhook bodies
// write times and scores) without converting it: its significant digits and decimal exponent.
// With 13 digits or fewer these are exactly the shortest digits of the float it reads as, so
// layoutReal gives what renderReal would. ok is false for any other form (an exponent, or more
// digits), and for zero, which renderReal handles.
func plainDecimal(lit string) (neg bool, digits string, e int, ok bool) {
	neg = strings.HasPrefix(lit, "-")
	intPart, frac, found := strings.Cut(strings.TrimPrefix(lit, "-"), ".")
	if !found || intPart == "" || frac == "" || strings.ContainsFunc(intPart+frac, func(r rune) bool { return r < '0' || r > '9' }) {
		return false, "", 0, false
	}
	all := strings.TrimLeft(intPart+frac, "0")
	lead := len(intPart+frac) - len(all) // zeros before the first significant digit
	all = strings.TrimRight(all, "0")
	if all == "" || len(all) > 13 {
		return false, "", 0, false
	}
	return neg, all, len(intPart) - lead - 1, true
}

// layoutReal writes significant digits with decimal exponent e (the value is d.ddd × 10^e) as
// SQLite's "%!.17g" does, for the range renderReal describes; false outside it.
func layoutReal(neg bool, digits string, e int) (string, bool) {
	if len(digits) > 13 || e < -4 || e > 16 || (e == -4 && digits[0] == '9') {
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
