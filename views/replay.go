package views

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/plaudhook/plaudhook/db"
)

// AttemptOutcome names how an attempt ended, in a few words, and whether it went well: "200 OK",
// "500 failed", "timeout", "refused by policy"...
func AttemptOutcome(a db.Attempt) (string, bool) {
	switch a.ErrorKind {
	case "":
		text := strconv.Itoa(a.StatusCode) + " " + http.StatusText(a.StatusCode)
		if a.OK() {
			return strings.TrimSpace(text), true
		}
		return strconv.Itoa(a.StatusCode) + " failed", false
	case "refused_by_policy":
		return "refused by policy", false
	case "dns":
		return "DNS failure", false
	case "connection_refused":
		return "connection refused", false
	case "tls":
		return "TLS error", false
	case "timeout":
		return "timeout", false
	case "too_many_redirects":
		return "too many redirects", false
	case "invalid":
		return "not sent", false
	}
	return "failed", false
}

// AttemptDest names where an attempt went: its target's name, or the one-off URL.
func AttemptDest(a db.Attempt) string {
	if a.TargetName != "" {
		return a.TargetName
	}
	return a.URL
}

// FormatDuration renders a request duration in milliseconds.
func FormatDuration(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

// AttemptURL is the address of an attempt's page.
func AttemptURL(id int64) string { return fmt.Sprintf("/attempts/%d", id) }

// AttemptRowID is the DOM id of an attempt's row.
func AttemptRowID(id int64) string { return fmt.Sprintf("attempt-%d", id) }

// curlSkip are headers a curl command leaves to curl itself.
var curlSkip = map[string]bool{"Host": true, "Content-Length": true, "Transfer-Encoding": true,
	"Connection": true, "Content-Encoding": true, "Accept-Encoding": true}

// CurlCommand renders a shell command that sends body to url with headers h, byte for byte:
// printf '%s' feeds the body to curl's --data-binary @-, so no newline is added and nothing in
// the body is read as a curl option. Every value is single-quoted for a POSIX shell. A body that
// a shell argument cannot hold (NUL bytes, invalid UTF-8) is read from bodyFile instead, which
// the reader downloads first. The URL goes in a variable, so the command is easy to aim
// elsewhere.
func CurlCommand(url string, h http.Header, body []byte, bodyFile string) string {
	var b strings.Builder
	b.WriteString("URL=" + ShellQuote(url) + "\n")

	// The body: inline when a shell can carry it.
	inline := utf8.Valid(body) && !strings.ContainsRune(string(body), 0)
	if inline {
		b.WriteString("printf '%s' " + ShellQuote(string(body)) + " |\n")
	}
	b.WriteString(`curl -sS -X POST "$URL"`)

	// Headers in a stable order, as sent.
	keys := make([]string, 0, len(h))
	for k := range h {
		if !curlSkip[http.CanonicalHeaderKey(k)] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			b.WriteString(" \\\n  -H " + ShellQuote(k+": "+v))
		}
	}
	if inline {
		b.WriteString(" \\\n  --data-binary @-")
	} else {
		b.WriteString(" \\\n  --data-binary @" + ShellQuote(bodyFile))
	}
	return b.String()
}

// ShellQuote quotes s for a POSIX shell: inside single quotes, where only the quote itself needs
// care.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// HeaderLines lists a header's values as sorted "name: value" pairs for display, signature
// values masked to their first 8 hex digits.
func HeaderLines(h http.Header) [][2]string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out [][2]string
	for _, k := range keys {
		for _, v := range h[k] {
			out = append(out, [2]string{k, MaskHeader(k, v)})
		}
	}
	return out
}

// donePercent is done/total as a whole percentage, 0 when total is 0.
func donePercent(done, total int) int {
	if total <= 0 {
		return 0
	}
	return done * 100 / total
}
