package plaud

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"strings"
)

// utf8BOM is stripped before parsing: some senders and editors prepend it, and JSON has no
// use for it.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// maxMS bounds every millisecond value the parser produces (about 285 000 years), so that
// converting a float to int64 never overflows and absurd inputs are reported instead.
const maxMS = 1 << 53

// Doc is a webhook body decoded once, for a caller that reads several kinds of facts from it
// (its envelope, its transcript) without parsing the JSON again for each. The zero Doc is a
// body that is not a JSON object.
type Doc struct {
	root map[string]any // read only, never changed
	ok   bool
}

// Decode parses body for Doc's readers.
func Decode(body []byte) Doc {
	root, ok := decodeObject(body)
	return Doc{root: root, ok: ok}
}

// decodeObject parses body as exactly one JSON object. Numbers stay as json.Number so ids
// and times keep their exact text. Invalid UTF-8 inside strings becomes U+FFFD (encoding/json
// does that); anything else that is not one well-formed object gives ok=false.
func decodeObject(body []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(body, utf8BOM)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}

	// Trailing bytes after the value mean the body is not one JSON document.
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	m, ok := v.(map[string]any)
	return m, ok
}

// objectAt returns m[key] when it is a JSON object, else nil.
func objectAt(m map[string]any, key string) map[string]any {
	o, _ := m[key].(map[string]any)
	return o
}

// text returns v as text when it is a string or a number (number text kept as sent).
func text(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

// firstString returns the first non-empty string value among keys in m.
func firstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := m[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// firstText is firstString that also accepts numbers, for ids that may be numeric.
func firstText(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := text(m[k]); ok && s != "" {
			return s
		}
	}
	return ""
}

// firstTextIn returns the first non-empty firstText over the objects, in order.
func firstTextIn(objs []map[string]any, keys ...string) string {
	for _, o := range objs {
		if s := firstText(o, keys...); s != "" {
			return s
		}
	}
	return ""
}

// isDecimal reports whether s is a plain decimal number ("12", "-3.5", "1e3"). It rejects the
// extra forms strconv.ParseFloat accepts (hex, "Inf", "NaN", underscores), which no sender
// means as a number.
func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	digits := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = true
		case c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-':
		default:
			return false
		}
	}
	return digits
}

// number returns v as a float when it is a JSON number or a decimal string.
func number(v any) (float64, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	default:
		return 0, false
	}
	if !isDecimal(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// toMS converts a number in the given unit (1000 for seconds, 1 for milliseconds) to whole
// milliseconds, rounding to the nearest. ok=false for negative or out-of-range values.
func toMS(v any, perUnit float64) (int64, bool) {
	f, ok := number(v)
	if !ok {
		return 0, false
	}
	ms := math.Round(f * perUnit)
	if ms < 0 || ms > maxMS {
		return 0, false
	}
	return int64(ms), true
}
