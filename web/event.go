package web

import (
	"context"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/a-h/templ"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
	"github.com/plaudhook/plaudhook/web/plaud"
)

// eventStore is what the event and delivery pages need from storage.
type eventStore interface {
	FindEvents(ctx context.Context, f db.EventFilter) ([]db.Event, int64, error)
	FindEventByID(ctx context.Context, id int64) (db.Event, error)
	FindDeliveries(ctx context.Context, f db.DeliveryFilter) ([]db.Delivery, error)
	FindDeliveryByID(ctx context.Context, id int64) (db.Delivery, error)
	LastDeliveryID(ctx context.Context) (int64, error)
}

// handleEventView shows one event with its body and deliveries.
func (s *Server) handleEventView(w http.ResponseWriter, r *http.Request) {
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
	first, err := s.store.FindDeliveryByID(r.Context(), e.BodyDeliveryID)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	ds, err := s.store.FindDeliveries(r.Context(), db.DeliveryFilter{EventID: &id, Limit: 1000})
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	props := views.EventPageProps{Event: e, Body: first.Body, Deliveries: ds, First: first}

	// Views of the body for reading, only for a body the page shows inline (views.MaxInlineBody):
	// a larger one is linked and loaded on demand.
	inline := len(first.Body) <= views.MaxInlineBody
	if inline {
		props.Pretty, _ = plaud.Pretty(first.Body)
		props.Form, props.FormPartial = formFields(first)
	}
	s.eventTranscript(r.Context(), &props) // its recording and transcript (transcript.go)
	// Drift, the JSON tree and the previous event of its type (explorer.go).
	s.eventExplorer(r.Context(), &props)
	if props.Replay, err = s.eventReplayProps(r, e, first); err != nil { // replay_handlers.go
		s.respondError(w, r, err)
		return
	}

	// The replay form must not carry a large body either: the edited mode then starts empty, and
	// copy-as-curl reads the body from the file the page's download link saves.
	if !inline {
		props.Tree = nil
		props.Replay.EditBody = ""
		if props.Replay.Curl != "" {
			props.Replay.Curl = curlFromFile(r, e, first)
		}
	}
	s.render(w, r, views.EventPage(s.page(r, views.EventTypeLabel(e), "events"), props))
}

// formFields decodes a form-encoded body (application/x-www-form-urlencoded) into its pairs,
// keys sorted, for the event page's decoded view. It returns nil for any other content type.
// partial reports pairs that url.ParseQuery could not decode and left out.
func formFields(d db.Delivery) (fields []views.FormField, partial bool) {
	mt, _, err := mime.ParseMediaType(d.ContentType)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, false
	}
	vals, err := url.ParseQuery(string(d.Body))
	fields = []views.FormField{}
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		for _, v := range vals[k] {
			// Decoded bytes need not be UTF-8; the page shows text.
			fields = append(fields, views.FormField{Key: strings.ToValidUTF8(k, "\uFFFD"),
				Value: strings.ToValidUTF8(v, "\uFFFD")})
		}
	}
	return fields, err != nil
}

// curlFromFile is copy-as-curl for a body too large to put on the page: the command posts the
// file the body download saves (event-<id>.body) instead of carrying the body inline.
func curlFromFile(r *http.Request, e db.Event, first db.Delivery) string {
	// NOTE: CurlCommand inlines every body a shell argument can hold; a lone NUL byte cannot be
	// held, so it stands in for the body and makes the command read the file.
	return views.CurlCommand(requestOrigin(r)+first.Path, outboundHeader(first.Header),
		[]byte{0}, fmt.Sprintf("event-%d.body", e.ID))
}

// handleEventBody sends an event's body, byte for byte: as a download, or with ?view=raw for
// reading in the browser (plain text when it is UTF-8; the bytes are the same either way).
func (s *Server) handleEventBody(w http.ResponseWriter, r *http.Request) {
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
	name := "event-" + strconv.FormatInt(id, 10) + ".body"
	if r.URL.Query().Get("view") == "raw" && utf8.Valid(d.Body) {
		// Shown as text, never as HTML: nosniff is set on every response (middleware.go).
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Disposition", "inline; filename=\""+name+"\"")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", "attachment; filename=\""+name+"\"")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(d.Body)))
	w.Write(d.Body)
}

// handleDeliveryView shows one delivery, verified or rejected, with its headers and body.
func (s *Server) handleDeliveryView(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	d, err := s.store.FindDeliveryByID(r.Context(), id)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	pretty, _ := plaud.Pretty(d.Body)
	props := views.DeliveryPageProps{Delivery: d, Pretty: pretty, Notice: deliveryNotice(r),
		BodyLimit: s.cfg.BodyLimit}

	// A rejected delivery gets the signature debugger (debugger.go).
	if props.Debugger, err = s.deliveryDebugger(r.Context(), d); err != nil {
		s.respondError(w, r, err)
		return
	}
	s.render(w, r, views.DeliveryPage(s.page(r, "Delivery", ""), props))
}

// handleHealth answers 200 while the process serves requests.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte("ok\n"))
}

// render writes a templ component as an HTML response.
func (s *Server) render(w http.ResponseWriter, r *http.Request, c templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := c.Render(r.Context(), w); err != nil {
		// The status line is gone already; all that is left is to log it.
		s.log.Error("render page", "error", err, slogRequest(r))
	}
}
