package views

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/plaudhook/plaudhook/db"
)

// Page carries what every full page needs besides its own content.
type Page struct {
	Title  string
	User   *db.User // nil on the sign-in page
	Nav    string   // active navigation entry: "events", "rejected"
	Static string   // URL prefix of the versioned static files, e.g. "/static/3f2a9c1d"
	Flash  string   // one-time notice shown at the top

	// DiskWarning, when set, warns that the database's disk is nearly full.
	DiskWarning string
	// ClockWarning, when set, says this server's clock may be off: many recent deliveries were
	// rejected for timestamp skew (web/endpoint.go).
	ClockWarning string
}

// StaticURL returns the versioned URL of a static file.
func (p Page) StaticURL(name string) string { return p.Static + "/" + name }

// FormatTime renders t in UTC as plaudhook shows times everywhere.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

// ISOTime renders t for a datetime attribute.
func ISOTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// HumanSize renders a byte count with a binary unit.
func HumanSize(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1024*1024:
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1024*1024))
	}
}

// EventTypeLabel names an event's type, or says why it has none.
func EventTypeLabel(e db.Event) string {
	switch {
	case e.EventType != "":
		return e.EventType
	case !e.JSON:
		return "unknown (non-JSON)"
	default:
		return "unknown (no event name)"
	}
}

// MaxInlineBody is the largest body an event's page shows inline. A larger one is linked
// instead, to be opened on demand: inline, a body appears twice (pretty and raw), so a 25 MiB
// transcript would otherwise make a 50 MB page.
const MaxInlineBody = 256 << 10

// BodyText returns body as text for display, and whether it had to be repaired because it is
// not valid UTF-8. templ escapes the result; nothing from a body is ever rendered as HTML.
func BodyText(body []byte) (string, bool) {
	if utf8.Valid(body) {
		return string(body), false
	}
	return strings.ToValidUTF8(string(body), "\uFFFD"), true
}

// ReasonText explains a rejection reason in plain words.
func ReasonText(reason string) string {
	switch reason {
	case "missing_signature":
		return "No Plaud-Signature header: the sender did not sign this request."
	case "malformed_signature":
		return "The Plaud-Signature header is not a hex HMAC-SHA256 digest (optionally prefixed sha256=)."
	case "signature_mismatch":
		return "The signature does not match the body under any secret of this endpoint. " +
			"The secret may be wrong, or the body was changed on the way."
	case "timestamp_out_of_tolerance":
		return "The signature is valid but Plaud-Timestamp is too far from this server's clock: " +
			"an old delivery replayed, or a clock that is off."
	case "bad_timestamp":
		return "Plaud-Timestamp is not a Unix time in seconds."
	case "missing_timestamp":
		return "The signature has the sha256= form of the embedded scheme but Plaud-Timestamp is missing."
	case "no_secret_configured":
		return "This endpoint has no signing secret, so nothing can be verified. " +
			"An admin adds the secret from Plaud's portal on the endpoint's page " +
			"(or sets PLAUD_WEBHOOK_SECRET for the default endpoint)."
	case "scheme_downgrade":
		return "The devguide signature matches, but the body starts with a timestamp and a dot: " +
			"it is the embedded scheme's signed text, sent without its Plaud-Timestamp. That is " +
			"how an expired timestamped delivery would be replayed, so it is refused."
	case "payload_too_large":
		return "The body is larger than the configured limit; only its beginning was kept."
	case "unsupported_encoding":
		return "The body uses a Content-Encoding plaudhook cannot decode (only gzip is supported)."
	case "bad_encoding":
		return "The body claims gzip encoding but is not valid gzip."
	case "":
		return ""
	}
	return reason
}

// credentialWords mark a header that carries somebody's credentials (a proxy's basic auth, a
// cookie, an API key or token) when a sender or a proxy adds it to a webhook request: such a
// header is stored as received and replayed in original mode, but never shown. Names are
// matched by these words, not by a list, since every gateway spells its own.
var credentialWords = []string{"auth", "cookie", "token", "secret", "password", "passwd",
	"session", "apikey", "credential", "private", "jwt", "bearer",
	"-key", "_key"} // X-Api-Key, X-Private-Key, X-Client-Key, X_access_key, ...

// isCredentialHeader reports whether a header's name says it carries credentials.
func isCredentialHeader(lowerName string) bool {
	for _, w := range credentialWords {
		if strings.Contains(lowerName, w) {
			return true
		}
	}
	return false
}

// MaskHeader is a received header value as pages show it: a credential header hidden (only
// its length is shown), signature values cut to their first 8 hex digits (enough to compare
// with a sender's log, not enough to be useful to anyone else), anything else as received.
func MaskHeader(name, value string) string {
	n := strings.ToLower(name)
	if isCredentialHeader(n) {
		return fmt.Sprintf("(hidden, %d bytes)", len(value))
	}
	if !strings.Contains(n, "signature") {
		return value
	}
	var parts []string
	for _, f := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' }) {
		prefix := ""
		if i := strings.IndexByte(f, '='); i >= 0 {
			prefix, f = f[:i+1], f[i+1:]
		}
		if len(f) > 8 {
			f = f[:8] + "…"
		}
		parts = append(parts, prefix+f)
	}
	return strings.Join(parts, " ")
}

// EventURL is the address of an event's page.
func EventURL(id int64) string { return fmt.Sprintf("/events/%d", id) }

// DeliveryURL is the address of a delivery's page.
func DeliveryURL(id int64) string { return fmt.Sprintf("/deliveries/%d", id) }

// EventRowID is the DOM id of an event's row, shared by page loads and live updates.
func EventRowID(id int64) string { return fmt.Sprintf("event-%d", id) }

// TooLargeText says how a payload_too_large delivery compared with the body limit: its whole
// size when the request declared it, else only that it was larger.
func TooLargeText(size, limit int64) string {
	if size > limit {
		return fmt.Sprintf("payload too large (%d > %d bytes)", size, limit)
	}
	return fmt.Sprintf("payload too large (more than %d bytes)", limit)
}
