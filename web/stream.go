package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
	"github.com/plaudhook/plaudhook/web/live"
)

// resumeWindow is how many missed deliveries a reconnecting stream is sent from the database;
// one that missed more is told to reload instead.
const resumeWindow = 1000

// streamBatchBytes caps one write of queued messages to a stream.
const streamBatchBytes = 256 << 10

// publishDelivery renders the live messages for a committed delivery and hands them to the hub.
func (s *Server) publishDelivery(ctx context.Context, d db.Delivery, out db.IngestResult) {
	// Nobody watching: skip rendering (and its read) altogether. A stream that opens right now
	// subscribes before reading its backlog, so it still gets this delivery from the database.
	if s.hub.Len() == 0 {
		return
	}
	for _, m := range s.renderDelivery(ctx, d) {
		s.hub.Publish(m)
	}
}

// renderDelivery turns one delivery into the stream messages that describe it: the delivery row,
// and for a verified one its event row (new, or a replacement when it repeats an event). The
// same function serves live publishing and replay from the database on reconnect.
func (s *Server) renderDelivery(ctx context.Context, d db.Delivery) []live.Message {
	var msgs []live.Message
	var buf bytes.Buffer

	name := "delivery-rejected"
	if d.Verdict == db.Verified {
		name = "delivery-verified"
	}
	views.DeliveryRow(d).Render(ctx, &buf)
	msgs = append(msgs, live.Message{ID: d.ID, Name: name, Data: buf.String(),
		EndpointID: d.EndpointID, EventID: d.EventID})

	if d.Verdict != db.Verified || d.EventID == 0 {
		return msgs
	}
	e, err := s.store.FindEventByID(ctx, d.EventID)
	if err != nil {
		s.log.Warn("render live event", "event_id", d.EventID, "error", err)
		return msgs
	}
	// A live row is marked for schema drift like a row of a page load (explorer.go).
	es := []db.Event{e}
	if err := s.store.FillDrift(ctx, es); err != nil {
		s.log.Warn("mark schema drift", "event_id", e.ID, "error", err)
	}
	e = es[0]
	buf.Reset()
	name = "event-new"
	if d.Duplicate {
		name = "event-update"
	}
	views.EventRow(e, d.Duplicate).Render(ctx, &buf)
	msgs = append(msgs, live.Message{ID: d.ID, Name: name, Data: buf.String(),
		EndpointID: e.EndpointID, EventType: e.EventType, EventID: e.ID})
	return msgs
}

// handleEventStream serves GET /events/stream: server-sent events for every stored delivery.
// A browser that reconnects with Last-Event-ID first gets what it missed, from the database.
// A list page passes list=events|deliveries and its filters: the stream then sends only the
// rows of that list that match them (explorer.go).
func (s *Server) handleEventStream(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	sf, err := s.parseStreamFilter(r.URL.Query())
	if err != nil {
		s.respondError(w, r, err)
		return
	}

	// This stream outlives the server's write timeout by design: clear it for this response
	// only.
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		s.log.Debug("stream write deadline", "error", err)
	}
	// However the stream ends, finishing the response (the last chunk) must not block on a
	// client that stopped reading, or its connection and goroutine would live forever.
	defer func() { rc.SetWriteDeadline(time.Now().Add(s.cfg.StreamWriteTimeout)) }()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Connection", "keep-alive")

	// Subscribe before reading the backlog, so nothing falls between the two.
	sub := s.hub.Subscribe()
	defer sub.Cancel()
	s.log.Debug("stream opened", "open_streams", s.hub.Len(), slogRequest(r))
	defer s.log.Debug("stream closed", slogRequest(r))

	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 2000\n\n")
	last, _ := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64)
	if last > 0 {
		var err error
		if last, err = s.replayMissed(ctx, w, last, sf); err != nil {
			return
		}
	}
	if err := rc.Flush(); err != nil {
		return
	}

	a, _ := ctx.Value(authKey{}).(*auth)
	var batch strings.Builder
	tick := time.NewTicker(s.cfg.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.streams.Done():
			// The server is shutting down: end the stream so Shutdown need not wait for it.
			return
		case <-sub.Dropped:
			// Fell behind: end the stream; the browser reconnects with Last-Event-ID.
			s.log.Warn("stream dropped for falling behind", slogRequest(r))
			return
		case m := <-sub.C:
			// Take every message already waiting and send them in one write: under load a
			// stream costs one write per burst, not one per message.
			batch.Reset()
			for more := true; more; {
				if (m.ID > last || m.ID == 0) && // not already sent from the backlog
					s.streamWants(ctx, sf, m) { // a row of this list, and not filtered out
					batch.WriteString(m.Frame())
				}
				if batch.Len() >= streamBatchBytes {
					break
				}
				select {
				case m = <-sub.C:
				default:
					more = false
				}
			}
			if batch.Len() == 0 {
				continue
			}
			if err := s.writeRaw(w, rc, batch.String()); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					// The client stopped reading: drop the stream, as the hub does with one
					// whose buffer is full.
					sub.Drop()
					s.log.Warn("stream dropped for not reading", slogRequest(r))
				}
				return
			}
		case <-tick.C:
			// A heartbeat keeps proxies from closing an idle stream, and the session check
			// ends the stream of a user who signed out or was disabled.
			if a != nil && !s.sessionStillValid(ctx, a) {
				return
			}
			if err := s.writeRaw(w, rc, ": heartbeat\n\n"); err != nil {
				return
			}
		}
	}
}

// replayMissed sends the deliveries after last from the database, or a resync message when
// there are too many. It returns the id of the last delivery sent.
func (s *Server) replayMissed(ctx context.Context, w http.ResponseWriter, last int64, sf *streamFilter) (int64, error) {
	ds, err := s.store.FindDeliveries(ctx, db.DeliveryFilter{After: last, Limit: resumeWindow + 1})
	if err != nil {
		return last, err
	}
	rc := http.NewResponseController(w)
	if len(ds) > resumeWindow {
		newest, err := s.store.LastDeliveryID(ctx)
		if err != nil {
			return last, err
		}
		return newest, s.writeMessage(w, rc, live.Message{ID: newest, Name: "resync", Data: "reload"})
	}
	for _, d := range ds {
		for _, m := range s.renderDelivery(ctx, d) {
			if !s.streamWants(ctx, sf, m) {
				continue
			}
			if err := s.writeMessage(w, nil, m); err != nil {
				return last, err
			}
		}
		// A transcript the event created (normalise.go publishes it live separately).
		if m, ok := s.missedTranscript(ctx, d); ok {
			if err := s.writeMessage(w, nil, m); err != nil {
				return last, err
			}
		}
		last = d.ID
	}
	return last, nil
}

// writeMessage writes one server-sent event and flushes it (rc nil: no flush). Each write gets
// its own deadline, so a client that stopped reading cannot hold the handler for long.
func (s *Server) writeMessage(w http.ResponseWriter, rc *http.ResponseController, m live.Message) error {
	return s.writeRaw(w, rc, m.Frame())
}

func (s *Server) writeRaw(w http.ResponseWriter, rc *http.ResponseController, text string) error {
	if rc != nil {
		rc.SetWriteDeadline(time.Now().Add(s.cfg.StreamWriteTimeout))
	}
	if _, err := w.Write([]byte(text)); err != nil {
		return err
	}
	if rc == nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return err
	}
	return rc.SetWriteDeadline(time.Time{})
}

// CloseStreams ends every open event stream, now and from then on. http.Server.Shutdown waits
// for handlers to return, and a stream's handler would otherwise only return when its browser
// leaves: register this with RegisterOnShutdown. Browsers reconnect (to the next server) with
// Last-Event-ID.
func (s *Server) CloseStreams() { s.stopStreams() }
