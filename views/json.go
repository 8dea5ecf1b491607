package views

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"
)

// JSONKind is the type of one JSON value.
type JSONKind int

// The JSON value types.
const (
	JSONNull JSONKind = iota
	JSONBool
	JSONNumber
	JSONString
	JSONArray
	JSONObject
)

// JSONNode is one value of a parsed JSON body, in document order, ready to be shown as a
// highlighted tree whose objects and arrays fold (<details>: no script needed).
type JSONNode struct {
	Key      string // member name when the parent is an object
	InObject bool   // Key is meaningful
	Kind     JSONKind
	Text     string // scalars as JSON text: strings quoted and escaped, numbers as written
	Children []*JSONNode
}

// Limits of the tree view: deeper bodies are shown as indented text only, so one huge
// transcript never makes a page of a hundred thousand elements; bodies larger than the page
// shows inline are not parsed at all.
const (
	maxTreeBytes = MaxInlineBody
	maxTreeDepth = 64
)

// ParseJSON parses body for JSONTree. ok is false when the body is not a single JSON value or is
// too large or deep to show as a tree.
func ParseJSON(body []byte) (n *JSONNode, ok bool) {
	if len(body) > maxTreeBytes {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(body, []byte("\xEF\xBB\xBF"))))
	dec.UseNumber()
	n, err := parseNode(dec, 0)
	if err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return n, true
}

type errTooDeep struct{}

func (errTooDeep) Error() string { return "too deep" }

func parseNode(dec *json.Decoder, depth int) (*JSONNode, error) {
	if depth > maxTreeDepth {
		return nil, errTooDeep{}
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	n := &JSONNode{}
	switch t := tok.(type) {
	case json.Delim:
		n.Kind = JSONArray
		if t == '{' {
			n.Kind = JSONObject
		}
		for dec.More() {
			var key string
			if n.Kind == JSONObject {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, _ = kt.(string)
			}
			c, err := parseNode(dec, depth+1)
			if err != nil {
				return nil, err
			}
			c.Key, c.InObject = key, n.Kind == JSONObject
			n.Children = append(n.Children, c)
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
	case string:
		n.Kind, n.Text = JSONString, quoteJSON(t)
	case json.Number:
		n.Kind, n.Text = JSONNumber, string(t)
	case bool:
		n.Kind, n.Text = JSONBool, strconv.FormatBool(t)
	case nil:
		n.Kind, n.Text = JSONNull, "null"
	}
	return n, nil
}

// quoteJSON renders s as a JSON string literal without escaping <, > and &: it is shown as
// text, and templ escapes it for HTML.
func quoteJSON(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// jsonClass is the CSS class that colours a scalar.
func jsonClass(k JSONKind) string {
	switch k {
	case JSONString:
		return "j-str"
	case JSONNumber:
		return "j-num"
	case JSONBool:
		return "j-bool"
	}
	return "j-null"
}

// jsonBraces returns the opening and closing brackets of a container.
func jsonBraces(k JSONKind) (string, string) {
	if k == JSONObject {
		return "{", "}"
	}
	return "[", "]"
}

// jsonCount describes a folded container: "3 keys", "1 item".
func jsonCount(n *JSONNode) string {
	word := "item"
	if n.Kind == JSONObject {
		word = "key"
	}
	if len(n.Children) != 1 {
		word += "s"
	}
	return strconv.Itoa(len(n.Children)) + " " + word
}

// jsonOpen says whether a container starts unfolded: the first levels, unless long.
func jsonOpen(n *JSONNode, depth int) bool {
	return depth < 4 && len(n.Children) <= 50
}
