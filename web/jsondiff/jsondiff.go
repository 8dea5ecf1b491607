// Package jsondiff compares two JSON documents by structure: objects member by member
// (whatever their order), arrays element by element, scalars by value. It reports each path
// that was added, removed or changed, with the values on each side, outermost first: an object
// present on one side only is one change, not one per member inside it.
//
// It imports nothing from plaudhook.
package jsondiff

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
)

// Kind says how a path differs.
type Kind string

// The kinds of change.
const (
	Added   Kind = "added"   // only in the second document
	Removed Kind = "removed" // only in the first document
	Changed Kind = "changed" // in both, with different values (or types)
)

// Change is one difference between two documents.
type Change struct {
	Path string // e.g. `data.segments[2].text`, `data["odd key"]`; "" for the whole document
	Kind Kind
	Old  string // compact JSON of the first document's value ("" when added)
	New  string // compact JSON of the second document's value ("" when removed)
}

// ErrNotJSON is returned (wrapped) when a document is not one JSON value.
var ErrNotJSON = errors.New("not JSON")

// maxChanges bounds the result: two unrelated documents could otherwise differ in every leaf.
const maxChanges = 2000

// Diff compares documents a and b. It returns ErrNotJSON (wrapped, naming the side) when either
// is not a single JSON value. At most 2,000 changes are returned; truncated says more exist.
func Diff(a, b []byte) (changes []Change, truncated bool, err error) {
	va, err := parse(a)
	if err != nil {
		return nil, false, fmt.Errorf("first document: %w", err)
	}
	vb, err := parse(b)
	if err != nil {
		return nil, false, fmt.Errorf("second document: %w", err)
	}
	d := &differ{}
	d.compare("", va, vb)
	return d.out, d.truncated, nil
}

// object keeps members in document order, so that changes are listed in the order a reader
// meets them.
type object struct {
	keys []string
	vals map[string]any
}

// parse reads one JSON value with object order kept and numbers as written.
func parse(doc []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(doc, []byte("\xEF\xBB\xBF"))))
	dec.UseNumber()
	v, err := parseValue(dec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotJSON, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the value", ErrNotJSON)
	}
	return v, nil
}

func parseValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			var arr []any
			for dec.More() {
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			_, err := dec.Token() // ]
			return arr, err
		}
		o := &object{vals: map[string]any{}}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k, _ := kt.(string)
			v, err := parseValue(dec)
			if err != nil {
				return nil, err
			}
			// A repeated key: the last one wins, as in most parsers.
			if _, dup := o.vals[k]; !dup {
				o.keys = append(o.keys, k)
			}
			o.vals[k] = v
		}
		_, err := dec.Token() // }
		return o, err
	default:
		return t, nil // string, json.Number, bool or nil
	}
}

type differ struct {
	out       []Change
	truncated bool
}

func (d *differ) add(c Change) {
	if len(d.out) >= maxChanges {
		d.truncated = true
		return
	}
	d.out = append(d.out, c)
}

// compare records how b differs from a at path.
func (d *differ) compare(path string, a, b any) {
	switch x := a.(type) {
	case *object:
		y, ok := b.(*object)
		if !ok {
			d.add(Change{Path: path, Kind: Changed, Old: compact(a), New: compact(b)})
			return
		}
		for _, k := range x.keys {
			p := join(path, k)
			if yv, ok := y.vals[k]; ok {
				d.compare(p, x.vals[k], yv)
			} else {
				d.add(Change{Path: p, Kind: Removed, Old: compact(x.vals[k])})
			}
		}
		for _, k := range y.keys {
			if _, ok := x.vals[k]; !ok {
				d.add(Change{Path: join(path, k), Kind: Added, New: compact(y.vals[k])})
			}
		}
	case []any:
		y, ok := b.([]any)
		if !ok {
			d.add(Change{Path: path, Kind: Changed, Old: compact(a), New: compact(b)})
			return
		}
		for i := 0; i < max(len(x), len(y)); i++ {
			p := path + "[" + strconv.Itoa(i) + "]"
			switch {
			case i >= len(y):
				d.add(Change{Path: p, Kind: Removed, Old: compact(x[i])})
			case i >= len(x):
				d.add(Change{Path: p, Kind: Added, New: compact(y[i])})
			default:
				d.compare(p, x[i], y[i])
			}
		}
	default:
		if !scalarEqual(a, b) {
			d.add(Change{Path: path, Kind: Changed, Old: compact(a), New: compact(b)})
		}
	}
}

// scalarEqual compares two scalars; numbers by value, so 1, 1.0 and 1e0 are the same.
func scalarEqual(a, b any) bool {
	na, aok := a.(json.Number)
	nb, bok := b.(json.Number)
	if aok && bok {
		fa, _, errA := big.ParseFloat(string(na), 10, 200, big.ToNearestEven)
		fb, _, errB := big.ParseFloat(string(nb), 10, 200, big.ToNearestEven)
		if errA == nil && errB == nil {
			return fa.Cmp(fb) == 0
		}
		return na == nb
	}
	if aok != bok {
		return false
	}
	switch a.(type) {
	case *object, []any:
		return false
	}
	return a == b
}

// join appends member k to path: dotted when k is a plain name, bracketed and quoted otherwise.
func join(path, k string) string {
	if isIdent(k) {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	return path + "[" + quote(k) + "]"
}

func isIdent(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		ok := r == '_' || r == '$' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') ||
			(i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// compact renders a parsed value back as compact JSON, members in document order.
func compact(v any) string {
	var b strings.Builder
	write(&b, v)
	return b.String()
}

func write(b *strings.Builder, v any) {
	switch x := v.(type) {
	case *object:
		b.WriteByte('{')
		for i, k := range x.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(quote(k))
			b.WriteByte(':')
			write(b, x.vals[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			write(b, e)
		}
		b.WriteByte(']')
	case json.Number:
		b.WriteString(string(x))
	case nil:
		b.WriteString("null")
	case string:
		b.WriteString(quote(x))
	default:
		q, _ := json.Marshal(x)
		b.Write(q)
	}
}

// quote renders s as a JSON string, leaving <, > and & as they are: the result is shown as
// text (escaped by the page), never parsed as HTML.
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
