package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/plaudhook/plaudhook/db"
)

// The read API: JSON under /api/v1/, for a session or an API token (see auth.go). Field names
// are snake_case; times are RFC 3339 in UTC; lists are newest first and page with an opaque
// cursor (next_cursor is null on the last page); errors are {"error": "...", "code": "..."}.
// The README's "API" section documents every route; keep the two in step.

// apiEvent is an event as the API shows it.
type apiEvent struct {
	ID              int64     `json:"id"`
	Endpoint        string    `json:"endpoint"`
	EventType       string    `json:"event_type"`
	EnvelopeID      string    `json:"envelope_id"`
	FileID          string    `json:"file_id"`
	TranscriptionID string    `json:"transcription_id"`
	DeviceID        string    `json:"device_id"`
	ReceivedAt      time.Time `json:"received_at"`
	LastReceivedAt  time.Time `json:"last_received_at"`
	DeliveryCount   int       `json:"delivery_count"`
	Size            int64     `json:"size"`
	IsJSON          bool      `json:"is_json"`
	Summary         string    `json:"summary"`
	BodyURL         string    `json:"body_url"`
}

func toAPIEvent(e db.Event) apiEvent {
	return apiEvent{ID: e.ID, Endpoint: e.Endpoint, EventType: e.EventType,
		EnvelopeID: e.EnvelopeID, FileID: e.FileID, TranscriptionID: e.TranscriptionID,
		DeviceID: e.DeviceID, ReceivedAt: e.FirstReceivedAt, LastReceivedAt: e.LastReceivedAt,
		DeliveryCount: e.DeliveryCount, Size: e.Size, IsJSON: e.JSON, Summary: e.Summary,
		BodyURL: "/api/v1/events/" + strconv.FormatInt(e.ID, 10) + "/body"}
}

// apiDelivery is a delivery as the API shows it (without its body or headers).
type apiDelivery struct {
	ID              int64     `json:"id"`
	Endpoint        string    `json:"endpoint"`
	EventID         *int64    `json:"event_id"` // null when rejected
	ReceivedAt      time.Time `json:"received_at"`
	Verdict         string    `json:"verdict"`
	Reason          string    `json:"reason,omitempty"` // only on rejected deliveries
	Scheme          string    `json:"scheme"`
	SecretLabel     string    `json:"secret_label,omitempty"`
	Duplicate       bool      `json:"duplicate"`
	Size            int64     `json:"size"`
	BodySHA256      string    `json:"body_sha256"`
	BodyTruncated   bool      `json:"body_truncated"`
	ContentType     string    `json:"content_type"`
	ContentEncoding string    `json:"content_encoding"`
	Method          string    `json:"method"`
	Path            string    `json:"path"`
	RemoteAddr      string    `json:"remote_addr"`
	SenderTimestamp string    `json:"sender_timestamp"`
	SkewMS          *int64    `json:"skew_ms"`
}

func toAPIDelivery(d db.Delivery) apiDelivery {
	a := apiDelivery{ID: d.ID, Endpoint: d.Endpoint, ReceivedAt: d.ReceivedAt,
		Verdict: string(d.Verdict), Reason: d.Reason, Scheme: d.Scheme,
		SecretLabel: d.SecretLabel, Duplicate: d.Duplicate, Size: d.Size,
		BodySHA256: d.BodySHA256, BodyTruncated: d.BodyTruncated, ContentType: d.ContentType,
		ContentEncoding: d.ContentEncoding, Method: d.Method, Path: d.Path,
		RemoteAddr: d.RemoteAddr, SenderTimestamp: d.SenderTimestamp, SkewMS: d.SkewMS}
	if d.EventID != 0 {
		id := d.EventID
		a.EventID = &id
	}
	return a
}

// badRequest is a 400 for a malformed query parameter.
func badRequest(msg string) error {
	return &httpError{status: http.StatusBadRequest, code: "bad_request", msg: msg}
}

// apiPage reads the limit (1–500, default 50) and cursor parameters of a list.
func apiPage(r *http.Request) (limit int, before int64, err error) {
	q := r.URL.Query()
	limit = 50
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 500 {
			return 0, 0, badRequest("limit must be a whole number from 1 to 500")
		}
	}
	if v := q.Get("cursor"); v != "" {
		if before, err = strconv.ParseInt(v, 10, 64); err != nil || before < 1 {
			return 0, 0, badRequest("cursor must be a next_cursor value from a previous page")
		}
	}
	return limit, before, nil
}

// apiTime reads a time parameter: RFC 3339 (2026-01-31T09:00:00Z) or Unix seconds.
func apiTime(r *http.Request, name string) (*time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return nil, nil
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		t := time.Unix(secs, 0).UTC()
		return &t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, badRequest(name + " must be an RFC 3339 time (2026-01-31T09:00:00Z) or Unix seconds")
	}
	return &t, nil
}

// cursorOf renders the next page's cursor, or null when there is none.
func cursorOf(next int64) *string {
	if next == 0 {
		return nil
	}
	c := strconv.FormatInt(next, 10)
	return &c
}

// handleAPIEventIndex is GET /api/v1/events: one page of events, newest first.
func (s *Server) handleAPIEventIndex(w http.ResponseWriter, r *http.Request) {
	f := db.EventFilter{}
	var err error
	if f.Limit, f.Before, err = apiPage(r); err != nil {
		s.respondError(w, r, err)
		return
	}
	q := r.URL.Query()
	if v := q.Get("type"); v != "" {
		f.EventType = &v
	}
	if v := q.Get("endpoint"); v != "" {
		f.EndpointSlug = &v
	}
	if f.Since, err = apiTime(r, "since"); err != nil {
		s.respondError(w, r, err)
		return
	}
	if f.Until, err = apiTime(r, "until"); err != nil {
		s.respondError(w, r, err)
		return
	}
	// The explorer's filters (q, dup, range) and the streamed export (?format=ndjson|csv).
	if err := s.apiEventFilter(q, &f); err != nil {
		s.respondError(w, r, err)
		return
	}
	if format := q.Get("format"); format != "" {
		s.apiExport(w, r, format, func(format string) { s.exportEvents(w, r, f, format, q.Get("body") == "1") })
		return
	}

	events, next, err := s.store.FindEvents(r.Context(), f)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	out := make([]apiEvent, len(events))
	for i, e := range events {
		out[i] = toAPIEvent(e)
	}
	writeJSON(w, http.StatusOK, struct {
		Events     []apiEvent `json:"events"`
		NextCursor *string    `json:"next_cursor"`
	}{out, cursorOf(next)})
}

// handleAPIEventView is GET /api/v1/events/{id}: an event with every delivery of it.
func (s *Server) handleAPIEventView(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	e, err := s.store.FindEventByID(r.Context(), id)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	ds, err := s.store.FindDeliveries(r.Context(), db.DeliveryFilter{EventID: &id, Limit: 5000})
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	out := struct {
		apiEvent
		Deliveries []apiDelivery `json:"deliveries"`
	}{apiEvent: toAPIEvent(e), Deliveries: make([]apiDelivery, len(ds))}
	for i, d := range ds {
		out.Deliveries[i] = toAPIDelivery(d)
	}
	writeJSON(w, http.StatusOK, out)
}

// handleAPIEventBody is GET /api/v1/events/{id}/body: the event's body exactly as stored.
func (s *Server) handleAPIEventBody(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	e, err := s.store.FindEventByID(r.Context(), id)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	d, err := s.store.FindDeliveryByID(r.Context(), e.BodyDeliveryID)
	if err != nil {
		s.respondError(w, r, err)
		return
	}

	// Never the sender's Content-Type: a body claiming text/html must not render as a page
	// on this origin.
	ct := "application/octet-stream"
	if e.JSON {
		ct = "application/json"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(d.Body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Body-SHA256", d.BodySHA256)
	w.Write(d.Body)
}

// handleAPIDeliveryIndex is GET /api/v1/deliveries: one page of deliveries, newest first,
// optionally only verified or rejected ones.
func (s *Server) handleAPIDeliveryIndex(w http.ResponseWriter, r *http.Request) {
	f := db.DeliveryFilter{}
	var err error
	if f.Limit, f.Before, err = apiPage(r); err != nil {
		s.respondError(w, r, err)
		return
	}
	switch v := db.Verdict(r.URL.Query().Get("verdict")); v {
	case db.Verified, db.Rejected:
		f.Verdict = &v
	case "":
	default:
		s.respondError(w, r, badRequest("verdict must be verified or rejected"))
		return
	}
	// The explorer's filters and the streamed export (explorer.go).
	q := r.URL.Query()
	if err := s.apiDeliveryFilter(q, &f); err != nil {
		s.respondError(w, r, err)
		return
	}
	if format := q.Get("format"); format != "" {
		s.apiExport(w, r, format, func(format string) { s.exportDeliveries(w, r, f, format) })
		return
	}

	// One row more than asked tells whether an older page exists.
	limit := f.Limit
	f.Limit++
	ds, err := s.store.FindDeliveries(r.Context(), f)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	var next int64
	if len(ds) > limit {
		ds = ds[:limit]
		next = ds[limit-1].ID
	}
	out := make([]apiDelivery, len(ds))
	for i, d := range ds {
		out[i] = toAPIDelivery(d)
	}
	writeJSON(w, http.StatusOK, struct {
		Deliveries []apiDelivery `json:"deliveries"`
		NextCursor *string       `json:"next_cursor"`
	}{out, cursorOf(next)})
}

// handleAPINotFound answers API paths that name no route, in the API's JSON form.
func (s *Server) handleAPINotFound(w http.ResponseWriter, r *http.Request) {
	msg := "no such API route: " + r.Method + " " + r.URL.Path
	if strings.ContainsAny(msg, "\r\n") {
		msg = "no such API route"
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"error": msg, "code": "not_found"})
}
