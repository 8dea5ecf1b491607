package plaud

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Envelope is what plaudhook reads from any body, whatever the event: the event name, the
// ids that tie deliveries together, when it happened and a title for list rows. Fields that
// the body does not carry are left at their zero value.
type Envelope struct {
	// EventType is the event name from event_type, then event, then type; "" if none.
	EventType string
	// EnvelopeID is the delivery's own id from the top-level id or event_id, else
	// data.event_id; "" if none. Plaud documents no event id, so it is often empty.
	EnvelopeID string
	// JSON reports whether the body parsed as one JSON object. When false every other field
	// is empty.
	JSON bool
	// FileID, TranscriptionID, DeviceID and WorkflowID are Plaud ids, in snake_case or
	// camelCase, looked up in data, then in data.transcript, data.result and data.data, then
	// at the top level. Numeric ids are kept as their JSON text.
	FileID, TranscriptionID, DeviceID, WorkflowID string
	// OccurredAt is when the event happened, in UTC: the first parseable of the top-level
	// timestamp or createdAt-style fields, then data's completedAt, failedAt, syncedAt,
	// createdAt and the like. It accepts ISO-8601 strings and Unix seconds or milliseconds,
	// as numbers or strings. Zero if none.
	OccurredAt time.Time
	// Title is data.title, file_name, fileName or filename when present.
	Title string
}

// Event-name keys, in the order PLAUD.md §3.1 recommends.
var eventTypeKeys = []string{"event_type", "eventType", "event", "type"}

// Envelope id keys, tried at the top level and then inside data.
var envelopeIDKeys = []string{"id", "event_id", "eventId"}

// Time keys at the top level: the envelope's own send or creation time.
var topTimeKeys = []string{
	"timestamp", "occurred_at", "occurredAt", "event_time", "eventTime",
	"created_at", "createdAt", "time", "sent_at", "sentAt",
}

// Time keys inside data, the moment of the event first and the creation time last.
var dataTimeKeys = []string{
	"timestamp", "occurred_at", "occurredAt",
	"completed_at", "completedAt", "failed_at", "failedAt", "synced_at", "syncedAt",
	"paired_at", "pairedAt", "updated_at", "updatedAt", "created_at", "createdAt",
}

// ParseEnvelope reads the envelope facts from a raw webhook body. It never fails: a body that
// is not a JSON object gives an Envelope with JSON=false and nothing else set.
func ParseEnvelope(body []byte) Envelope { return Decode(body).Envelope() }

// Envelope reads the envelope facts from the decoded body (see ParseEnvelope).
func (d Doc) Envelope() Envelope {
	root := d.root
	if !d.ok {
		return Envelope{}
	}
	e := Envelope{JSON: true, EventType: firstString(root, eventTypeKeys...)}

	// The envelope id belongs to the top level; data.event_id is a fallback some senders use.
	data := objectAt(root, "data")
	e.EnvelopeID = firstText(root, envelopeIDKeys...)
	if e.EnvelopeID == "" && data != nil {
		e.EnvelopeID = firstText(data, "event_id", "eventId")
	}

	// Resource ids live in data (or an object nested in it), sometimes at the top level.
	scopes := idScopes(root, data)
	e.FileID = firstTextIn(scopes, "file_id", "fileId")
	e.TranscriptionID = firstTextIn(scopes, "transcription_id", "transcriptionId")
	e.DeviceID = firstTextIn(scopes, "device_id", "deviceId")
	e.WorkflowID = firstTextIn(scopes, "workflow_id", "workflowId")

	// One community receiver reads data.id as the workflow id of workflow.completed.
	if e.WorkflowID == "" && data != nil && normEvent(e.EventType) == "workflow.completed" {
		e.WorkflowID = firstText(data, "id")
	}

	e.OccurredAt = occurredAt(root, data)
	e.Title = firstTextIn(scopes[:len(scopes)-1], "title", "file_name", "fileName", "filename")
	return e
}

// idScopes lists where resource ids are looked up, most specific first; root is always last.
func idScopes(root, data map[string]any) []map[string]any {
	scopes := make([]map[string]any, 0, 5)
	if data != nil {
		scopes = append(scopes, data)
		for _, k := range []string{"transcript", "result", "data"} {
			if o := objectAt(data, k); o != nil {
				scopes = append(scopes, o)
			}
		}
	}
	return append(scopes, root)
}

// normEvent gives the event name in the form used for matching: trimmed, lower case.
func normEvent(event string) string {
	return strings.ToLower(strings.TrimSpace(event))
}

// occurredAt returns the first parseable time among the top-level, then data's, time keys.
func occurredAt(root, data map[string]any) time.Time {
	for _, k := range topTimeKeys {
		if t, ok := parseTime(root[k]); ok {
			return t
		}
	}
	for _, k := range dataTimeKeys {
		if t, ok := parseTime(data[k]); ok {
			return t
		}
	}
	return time.Time{}
}

// timeLayouts are the ISO-8601 forms accepted; a value without a zone is taken as UTC.
var timeLayouts = []string{
	time.RFC3339,
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
	"2006-01-02",
	time.RFC1123Z,
	time.RFC1123,
}

// parseTime reads v as an ISO-8601 string or a Unix time (number or decimal string) and
// returns it in UTC.
func parseTime(v any) (time.Time, bool) {
	s, ok := text(v)
	if !ok {
		return time.Time{}, false
	}
	s = strings.TrimSpace(s)
	if isDecimal(s) {
		return unixTime(s)
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// unixTime reads a positive Unix time and guesses its unit from its size: below 1e11 it is
// seconds (up to the year 5138), then milliseconds, microseconds and nanoseconds.
func unixTime(s string) (time.Time, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f <= 0 || f >= 1e20 {
		return time.Time{}, false
	}

	// Work in nanoseconds per unit; integer input keeps exact precision.
	var perUnit int64
	switch {
	case f < 1e11:
		perUnit = int64(time.Second)
	case f < 1e14:
		perUnit = int64(time.Millisecond)
	case f < 1e17:
		perUnit = int64(time.Microsecond)
	default:
		perUnit = 1
	}

	// Plain decimals are split at the point and read as integers, so that a fraction such
	// as .25 stays exact; exponent forms and overlong integers fall back to the float.
	intPart, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(intPart, 10, 64)
	if err == nil && !strings.ContainsAny(s, "eE+-") {
		unitsPerSec := int64(time.Second) / perUnit
		frac = (frac + "000000000")[:9]
		fracNanos, err := strconv.ParseInt(frac, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		nsec := n%unitsPerSec*perUnit + fracNanos*perUnit/int64(time.Second)
		return time.Unix(n/unitsPerSec, nsec).UTC(), true
	}
	secs := f * float64(perUnit) / float64(time.Second)
	whole := math.Floor(secs)
	return time.Unix(int64(whole), int64(math.Round((secs-whole)*1e9))).UTC(), true
}
