package plaud

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"
)

// prettyMaxDepth is the deepest nesting Pretty indents. Indentation grows with depth times
// the number of tokens, so a 20 KB body nested 10 000 deep would indent to about 100 MB.
// Plaud payloads are a handful of levels deep.
const prettyMaxDepth = 64

// Pretty returns body as JSON indented by two spaces, for the event detail view. Key order
// and number text are kept exactly as sent (json.Indent re-spaces, it does not re-encode). A
// leading UTF-8 byte-order mark and trailing whitespace are dropped, and invalid UTF-8 inside
// strings becomes U+FFFD so the result is always valid UTF-8. A body nested deeper than 64
// levels is returned compacted instead, to bound the output size. ok is false when body is
// not JSON; any JSON value (object, array, scalar) is accepted.
func Pretty(body []byte) (string, bool) {
	body = bytes.TrimPrefix(body, utf8BOM)
	if !json.Valid(body) {
		return "", false
	}

	var buf bytes.Buffer
	var err error
	if depth(body) > prettyMaxDepth {
		err = json.Compact(&buf, body)
	} else {
		err = json.Indent(&buf, body, "", "  ")
	}
	if err != nil {
		return "", false
	}
	out := strings.TrimRightFunc(buf.String(), unicode.IsSpace)
	return strings.ToValidUTF8(out, "\uFFFD"), true
}

// depth returns the deepest nesting of arrays and objects in a valid JSON document.
func depth(body []byte) int {
	d, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range body {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			d++
			deepest = max(deepest, d)
		case c == ']' || c == '}':
			d--
		}
	}
	return deepest
}

// Summary returns a one-line preview of body of at most max runes, for list rows. JSON is
// compacted first (so the preview starts at the first key, not at indentation); any other
// body is shown as text. Every run of whitespace, control or bidi-control characters becomes
// one space, each invalid byte becomes U+FFFD, and a cut preview ends in "…" (counted in
// max). It returns "" when max <= 0.
func Summary(body []byte, max int) string {
	if max <= 0 {
		return ""
	}
	body = bytes.TrimPrefix(body, utf8BOM)
	var buf bytes.Buffer
	if json.Compact(&buf, body) == nil {
		body = buf.Bytes()
	}
	line, _ := previewLine(body, max)
	return line
}

// Summary is the package's Summary of body, the body d was decoded from. When d is a JSON
// object, json.Compact could only drop the spaces between its tokens: that is done here for
// as much of the body as the preview reaches, not the whole body, validated all over again.
func (d Doc) Summary(body []byte, max int) string {
	if !d.ok || max <= 0 {
		return Summary(body, max)
	}
	body = bytes.TrimPrefix(body, utf8BOM)
	for n := 4 * (max + 1); ; n *= 4 {
		if n >= len(body) {
			line, _ := previewLine(compactValid(body), max)
			return line
		}
		// Cut at the start of a character: a part of one would read as replacement runes.
		for n > 0 && !utf8.RuneStart(body[n]) {
			n--
		}
		if line, cut := previewLine(compactValid(body[:n]), max); cut {
			return line
		}
	}
}

// compactValid is json.Compact of valid JSON, or of the start of it: the bytes with every
// space, tab and line break outside strings dropped.
func compactValid(b []byte) []byte {
	out := make([]byte, 0, len(b))
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			if escaped {
				escaped = false
			} else if c == '\\' {
				escaped = true
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		}
		out = append(out, c)
	}
	return out
}

// previewLine builds Summary's line from text that is already compacted. cut says the line
// was cut short, so no more of the text could change it.
func previewLine(body []byte, max int) (line string, cut bool) {
	// Build the line rune by rune and stop as soon as it is one rune over max, so a huge body
	// costs no more than its preview.
	runes := make([]rune, 0, min(max+1, len(body)))
	space := false
	for len(body) > 0 && len(runes) <= max {
		r, size := utf8.DecodeRune(body)
		body = body[size:]
		// Bidi controls could reorder the rest of a list row, so they go too.
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			space = len(runes) > 0
			continue
		}
		if space {
			runes = append(runes, ' ')
			space = false
		}
		// DecodeRune reports an invalid byte as utf8.RuneError with size 1.
		runes = append(runes, r)
	}
	if len(runes) <= max {
		return string(runes), false
	}

	// Cut to leave room for the ellipsis, without a dangling space before it.
	return strings.TrimRightFunc(string(runes[:max-1]), unicode.IsSpace) + "…", true
}
