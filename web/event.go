package web

import (
	"context"

	"github.com/a-h/templ"
	"net/http"
	"strconv"

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
	pretty, _ := plaud.Pretty(first.Body)
	props := views.EventPageProps{Event: e, Body: first.Body, Pretty: pretty, Deliveries: ds,
		First: first}
	s.eventTranscript(r.Context(), &props) // its recording and transcript (transcript.go)
	// Drift, the JSON tree and the previous event of its type (explorer.go).
	s.eventExplorer(r.Context(), &props)
	if props.Replay, err = s.eventReplayProps(r, e, first); err != nil { // replay_handlers.go
		s.respondError(w, r, err)
		return
	}
	s.render(w, r, views.EventPage(s.page(r, views.EventTypeLabel(e), "events"), props))
}

// handleEventBody sends an event's body, byte for byte, as a download.
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
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", "attachment; filename=\"event-"+strconv.FormatInt(id, 10)+".body\"")
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
	props := views.DeliveryPageProps{Delivery: d, Pretty: pretty, Notice: deliveryNotice(r)}

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
