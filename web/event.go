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

// handleEventIndex lists events, newest first; the first page updates live.
func (s *Server) handleEventIndex(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := db.EventFilter{Limit: 100}
	f.Before, _ = strconv.ParseInt(q.Get("before"), 10, 64)
	props := views.EventListProps{Type: q.Get("type"), Live: f.Before == 0,
		SendCommand: s.cfg.SendCommand}
	if props.Type != "" {
		f.EventType = &props.Type
		props.Live = false // live rows are not filtered yet
	}

	events, next, err := s.store.FindEvents(r.Context(), f)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	props.Events, props.Next = events, next
	s.render(w, r, views.EventList(s.page(r, "Events", "events"), props))
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
	s.render(w, r, views.EventPage(s.page(r, views.EventTypeLabel(e), "events"),
		views.EventPageProps{Event: e, Body: first.Body, Pretty: pretty, Deliveries: ds, First: first}))
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

// handleDeliveryIndex lists deliveries, optionally only verified or rejected ones.
func (s *Server) handleDeliveryIndex(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := db.DeliveryFilter{Limit: 100}
	f.Before, _ = strconv.ParseInt(q.Get("before"), 10, 64)
	props := views.DeliveryListProps{Live: f.Before == 0}
	switch v := db.Verdict(q.Get("verdict")); v {
	case db.Verified, db.Rejected:
		f.Verdict = &v
		props.Verdict = string(v)
	case "":
	default:
		s.respondError(w, r, &db.ValidationError{Message: "verdict must be verified or rejected"})
		return
	}

	// One row more than shown tells whether an older page exists.
	f.Limit++
	ds, err := s.store.FindDeliveries(r.Context(), f)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	if len(ds) == f.Limit {
		ds = ds[:len(ds)-1]
		props.Next = ds[len(ds)-1].ID
	}
	props.Deliveries = ds
	nav := "deliveries"
	if props.Verdict == "rejected" {
		nav = "rejected"
	}
	s.render(w, r, views.DeliveryList(s.page(r, "Deliveries", nav), props))
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
	s.render(w, r, views.DeliveryPage(s.page(r, "Delivery", ""), d, pretty))
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
