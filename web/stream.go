package web

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
	"github.com/plaudhook/plaudhook/web/live"
)

// resumeWindow is how many missed deliveries a reconnecting stream is sent from the database;
// one that missed more is told to reload instead.
const resumeWindow = 1000

// streamBatchBytes caps one write of new rows to a stream; rows that do not fit are counted as
// skipped.
const streamBatchBytes = 256 << 10

// streamRowsMax is the most rows of one kind a stream writes at once: a live list holds back at
// most this many new rows (PENDING_MAX in app.js) and asks for a reload beyond that, so older
// ones would be thrown away by the browser anyway. They are counted in a "skipped" message
// instead.
const streamRowsMax = 50

// streamChecksMax bounds the filter queries one write of a filtered stream may make, for rows
// whose facts cannot say whether they match (a search); rows left unchecked are counted as
// skipped, as if they matched.
const streamChecksMax = 1024

// streamRenderTimeout bounds the read behind a live row rendered on demand: the streams that
// write the row wait for it, and a row it could not render is left out.
const streamRenderTimeout = 5 * time.Second

// The groups of live messages (live.Message.Group): each kind of row has its own limit per
// write, and its own count of rows skipped.
const (
	groupDelivery    = iota // delivery-verified, delivery-rejected: rows of the delivery list
	groupEventNew           // event-new: a row of the event list
	groupEventUpdate        // event-update: a replacement for a row already shown
	groupTranscript         // transcript-new: a row of the transcript list
	groupOther
)

// publishDelivery hands the live messages of a committed delivery to the hub. Nothing is
// rendered or read here: each row is rendered when a stream first writes it, and a row no
// stream writes (a burst larger than any list shows) is never rendered at all.
func (s *Server) publishDelivery(ctx context.Context, d db.Delivery, out db.IngestResult) {
	// Nobody watching: skip it altogether. A stream that opens right now subscribes before
	// reading its backlog, so it still gets this delivery from the database.
	if s.hub.Len() == 0 {
		return
	}
	for _, it := range s.deliveryItems(ctx, d, out.EventType) {
		s.hub.Add(it)
	}
}

// deliveryItems returns the hub items of a delivery: its row, and for a verified one its event's
// row (new, or a replacement when it repeats an event). typ is the stored event's type, as the
// commit returned it ("" for a rejected delivery).
func (s *Server) deliveryItems(ctx context.Context, d db.Delivery, typ string) []*live.Item {
	// The rows show neither body nor headers, and the hub must not hold on to them.
	d.Body, d.Header = nil, nil

	row, ev, hasEvent := deliveryHeads(d)
	row.EventType, row.TypeKnown = typ, true
	items := []*live.Item{live.NewItem(row, func() (string, bool) { return s.renderDeliveryRow(ctx, d) })}
	if !hasEvent {
		return items
	}
	ev.EventType, ev.TypeKnown = typ, true
	if !d.Duplicate {
		ev.Received = d.ReceivedAt // a new event was first received now
	}
	id, dup := d.EventID, d.Duplicate
	items = append(items, live.NewItem(ev, func() (string, bool) {
		// Every stream that writes the row waits for this read: bound it.
		rctx, cancel := context.WithTimeout(ctx, streamRenderTimeout)
		defer cancel()
		data, _, ok := s.renderEventRow(rctx, id, dup)
		return data, ok
	}))
	return items
}

// deliveryHeads returns the facts of a delivery's row and, when it is verified, of its event's
// row: everything but the rendered data.
func deliveryHeads(d db.Delivery) (row, ev live.Message, hasEvent bool) {
	row = live.Message{ID: d.ID, Name: "delivery-rejected", Group: groupDelivery,
		EndpointID: d.EndpointID, Endpoint: d.Endpoint, EventID: d.EventID,
		Verdict: string(d.Verdict), Reason: d.Reason, Duplicate: d.Duplicate, Received: d.ReceivedAt}
	if d.Verdict == db.Verified {
		row.Name = "delivery-verified"
	}
	if d.Verdict != db.Verified || d.EventID == 0 {
		return row, ev, false
	}
	ev = live.Message{ID: d.ID, Name: "event-new", Group: groupEventNew,
		EndpointID: d.EndpointID, Endpoint: d.Endpoint, EventID: d.EventID,
		Verdict: string(d.Verdict), Duplicate: d.Duplicate}
	if d.Duplicate {
		ev.Name, ev.Group = "event-update", groupEventUpdate
	}
	return row, ev, true
}

// renderDelivery turns one delivery into the stream messages that describe it, rendered now:
// what a reconnecting stream is sent from the database, and what re-verifying a delivery
// publishes.
func (s *Server) renderDelivery(ctx context.Context, d db.Delivery) []live.Message {
	var msgs []live.Message
	row, ev, hasEvent := deliveryHeads(d)
	if d.Verdict != db.Verified {
		row.TypeKnown = true // a rejected delivery has no event, so no type
	}
	if data, ok := s.renderDeliveryRow(ctx, d); ok {
		row.Data = data
		msgs = append(msgs, row)
	}
	if !hasEvent {
		return msgs
	}
	data, e, ok := s.renderEventRow(ctx, d.EventID, d.Duplicate)
	if !ok {
		return msgs
	}
	ev.Data = data
	ev.EndpointID, ev.Endpoint, ev.EventType, ev.TypeKnown = e.EndpointID, e.Endpoint, e.EventType, true
	ev.Received, ev.Duplicate = e.FirstReceivedAt, e.DeliveryCount > 1
	return append(msgs, ev)
}

func (s *Server) renderDeliveryRow(ctx context.Context, d db.Delivery) (string, bool) {
	var buf bytes.Buffer
	if err := views.DeliveryRow(d).Render(ctx, &buf); err != nil {
		s.log.Warn("render live delivery", "delivery_id", d.ID, "error", err)
		return "", false
	}
	return buf.String(), true
}

// renderEventRow reads an event back and renders its row (oob: as a replacement for the row
// already shown), marked for schema drift like a row of a page load (explorer.go).
func (s *Server) renderEventRow(ctx context.Context, id int64, oob bool) (string, db.Event, bool) {
	e, err := s.store.FindEventByID(ctx, id)
	if err != nil {
		s.log.Warn("render live event", "event_id", id, "error", err)
		return "", e, false
	}
	es := []db.Event{e}
	if err := s.store.FillDrift(ctx, es); err != nil {
		s.log.Warn("mark schema drift", "event_id", e.ID, "error", err)
	}
	e = es[0]
	var buf bytes.Buffer
	if err := views.EventRow(e, oob).Render(ctx, &buf); err != nil {
		s.log.Warn("render live event", "event_id", id, "error", err)
		return "", e, false
	}
	return buf.String(), e, true
}

// handleEventStream serves GET /events/stream: server-sent events for every stored delivery.
// A browser that reconnects with Last-Event-ID first gets what it missed, from the database.
// A list page passes list=events|deliveries and its filters: the stream then sends only the
// rows of that list that match them (explorer.go).
//
// A quiet stream writes a new row the moment it is published. Under a burst it writes at most
// every StreamInterval, and then only the newest rows of each kind (streamRowsMax), followed by
// a "skipped" message counting the rows it left out: a browser cannot show more than that, and
// the list asks for a reload to see them (app.js). A stream that reads slower than deliveries
// arrive is therefore never dropped for it; only one whose client stops reading is.
func (s *Server) handleEventStream(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sf, err := s.parseStreamFilter(r.URL.Query())
	if err != nil {
		s.respondError(w, r, err)
		return
	}

	// Subscribe before reading the backlog, so nothing falls between the two.
	sub := s.hub.Subscribe()
	defer sub.Cancel()
	s.log.Debug("stream opened", "open_streams", s.hub.Len(), slogRequest(r))
	defer s.log.Debug("stream closed", slogRequest(r))

	// This stream outlives the server's write timeout by design (startStream clears it for this
	// response only). However the stream ends, finishing the response (the last chunk) must not
	// block on a client that stopped reading, or its connection and goroutine would live forever.
	w.Header().Set("Connection", "keep-alive")
	rc := s.startStream(w, r)
	defer func() { rc.SetWriteDeadline(time.Now().Add(s.cfg.StreamWriteTimeout)) }()
	last, _ := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64)
	if last > 0 {
		var err error
		if last, err = s.replayMissed(ctx, w, rc, last, sf); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				sub.Drop()
				s.log.Warn("stream dropped for not reading", slogRequest(r))
			}
			return
		}
	}
	if err := s.writeChunk(w, rc, nil); err != nil { // flush, under the write deadline
		return
	}

	st := &eventStream{s: s, ctx: ctx, sf: sf, sub: sub, replayed: last, lastID: last,
		updated: map[int64]bool{}}
	a, _ := ctx.Value(authKey{}).(*auth)
	tick := time.NewTicker(s.cfg.Heartbeat)
	defer tick.Stop()
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	defer pause.Stop()
	// wrote is when rows were last written (zero: the stream has been quiet); a write made on
	// the beat counts as made on it, so a busy stream keeps to the beat.
	var wrote, beat time.Time
	var paused <-chan time.Time
	for {
		// While waiting out the interval the stream does not listen to the hub: however many
		// rows arrive meanwhile, it wakes once.
		var ready <-chan struct{}
		if paused == nil {
			ready = sub.Ready()
		}
		select {
		case <-ctx.Done():
			return
		case <-s.streams.Done():
			// The server is shutting down: end the stream so Shutdown need not wait for it.
			return
		case <-tick.C:
			// A heartbeat keeps proxies from closing an idle stream, and the session check
			// ends the stream of a user who signed out or was disabled.
			if a != nil && !s.sessionStillValid(ctx, a) {
				return
			}
			if err := s.writeRaw(w, rc, ": heartbeat\n\n"); err != nil {
				return
			}
			continue
		case <-ready:
			if beat = s.nextStreamWrite(wrote); time.Now().Before(beat) {
				pause.Reset(time.Until(beat))
				paused = pause.C
				continue
			}
			beat = time.Now()
		case <-paused:
			paused = nil
		}
		if !st.take() {
			continue
		}
		if err := s.writeWith(w, rc, st.writeTo); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// The client stopped reading: drop the stream (DroppedCount counts it).
				sub.Drop()
				s.log.Warn("stream dropped for not reading", slogRequest(r))
			}
			return
		}
		wrote = beat
	}
}

// nextStreamWrite is when a stream that last wrote rows at wrote may write again: at least
// StreamInterval later, and on the interval's beat, so that busy streams write at the same
// moments, pick the same newest rows and share their rendering. A stream that has been quiet
// longer than the interval may write at once.
func (s *Server) nextStreamWrite(wrote time.Time) time.Time {
	iv := s.cfg.StreamInterval
	due := wrote.Add(iv)
	at := due.Truncate(iv)
	if at.Before(due) {
		at = at.Add(iv)
	}
	return at
}

// eventStream is what one open event stream keeps between writes.
type eventStream struct {
	s        *Server
	ctx      context.Context
	sf       *streamFilter
	sub      *live.Subscription
	replayed int64 // newest delivery id sent from the database: live copies up to it are not resent
	lastID   int64 // id of the newest delivery the stream accounted for

	picks   []*live.Item   // the rows of the next write, newest first; reused between writes
	skipped int            // rows the next write counts instead of carrying
	updated map[int64]bool // events whose replacement row this write already carries
}

// take takes what was published since the last write and chooses what to write now (writeTo
// writes it); it reports whether there is anything. Per kind of row it chooses the newest
// streamRowsMax that the stream wants, written oldest first, then one "skipped" message with
// the number of rows it left out: those beyond the limit, and those the hub's ring lost before
// the stream came to read them (for a filtered list, lost rows are counted as if they matched).
func (st *eventStream) take() bool {
	st.skipped = 0
	b := st.sub.Take()
	if b.Len() == 0 {
		return false
	}
	// Whether a row is wanted follows from its kind alone on an unfiltered stream: once every
	// kind has its rows, older ones need not even be looked at (they are counted, not read).
	exact := st.sf == nil || st.sf.all
	var sent, ruledOut, seen [live.Groups]int
	checks, size := streamChecksMax, 0
	picks := st.picks[:0]
	clear(st.updated)
	newest := int64(0)

	b.Newest(func(it *live.Item) bool {
		m := it.Head()
		g := m.Group
		seen[g]++
		newest = max(newest, m.ID)
		if !st.sf.wantsGroup(g) {
			return true
		}
		if m.ID != 0 && m.ID <= st.replayed {
			ruledOut[g]++ // sent from the database already
			return true
		}
		full := sent[g] >= streamRowsMax || size >= streamBatchBytes
		if !exact {
			ok, decided := st.sf.matchFacts(m)
			if !decided && checks > 0 {
				checks--
				ok, decided = st.s.streamWants(st.ctx, st.sf, *m), true
			}
			if !decided {
				return true // not known: counted as skipped
			}
			if !ok {
				ruledOut[g]++
				return true
			}
		}
		if full {
			return !exact || !st.allSent(b, &sent, &seen)
		}
		if g == groupEventUpdate && st.updated[m.EventID] {
			ruledOut[g]++ // a newer replacement of the same row is already in this write
			return true
		}
		frame, ok := it.Frame()
		if !ok {
			ruledOut[g]++
			return true
		}
		if g == groupEventUpdate {
			st.updated[m.EventID] = true
		}
		picks = append(picks, it)
		sent[g]++
		size += len(frame)
		return !exact || !st.allSent(b, &sent, &seen)
	})
	skipped := 0
	for g := range live.Groups {
		// A replacement row left out only leaves an older copy of the row on the page: it is
		// not a row the list is missing.
		if g == groupEventUpdate || !st.sf.wantsGroup(g) {
			continue
		}
		skipped += b.Count(g) - sent[g] - ruledOut[g]
	}
	st.lastID = max(st.lastID, newest)
	st.skipped = max(skipped, 0)
	// Handlers publish a committed batch in whatever order they finish: write the rows in
	// delivery order (a delivery's row before its event's), so that ids only grow.
	slices.SortStableFunc(picks, func(a, b *live.Item) int { return cmp.Compare(b.Head().ID, a.Head().ID) })
	st.picks = picks
	return len(picks) > 0 || st.skipped > 0
}

// streamBuffers lend a write buffer to a stream only while it writes, so that a write costs few
// system calls without each of hundreds of open streams keeping a buffer of its own.
var streamBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}

// writeTo writes what take chose to w.
func (st *eventStream) writeTo(w io.Writer) (err error) {
	picks := st.picks
	bw := streamBuffers.Get().(*bufio.Writer)
	bw.Reset(w)
	w = bw
	defer func() {
		if err == nil {
			err = bw.Flush()
		}
		bw.Reset(nil)
		streamBuffers.Put(bw)
		clear(picks) // the ring alone decides how long items live
		st.picks = picks[:0]
	}()
	for i := len(picks) - 1; i >= 0; i-- {
		frame, _ := picks[i].Frame()
		if _, err := io.WriteString(w, frame); err != nil {
			return err
		}
	}
	if st.skipped == 0 {
		return nil
	}
	// Its id is the newest delivery this write accounts for, so a reconnect resumes after it
	// rather than replaying the rows left out.
	if st.lastID > 0 {
		_, err = fmt.Fprintf(w, "id: %d\nevent: skipped\ndata: %d\n\n", st.lastID, st.skipped)
	} else {
		_, err = fmt.Fprintf(w, "event: skipped\ndata: %d\n\n", st.skipped)
	}
	return err
}

// allSent reports whether every kind the stream wants has all the rows one write may carry, or
// has none left in the batch to look at.
func (st *eventStream) allSent(b live.Batch, sent, seen *[live.Groups]int) bool {
	for g := range live.Groups {
		if st.sf.wantsGroup(g) && sent[g] < streamRowsMax && seen[g] < b.Count(g) {
			return false
		}
	}
	return true
}

// replayMissed sends the deliveries after last from the database, or a resync message when
// there are too many. It returns the id of the last delivery sent.
//
// Every write has the stream's write deadline, as live writes do: a client that reconnects and
// then stops reading is dropped here too, however much it had missed.
func (s *Server) replayMissed(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController, last int64, sf *streamFilter) (int64, error) {
	ds, err := s.store.FindDeliveries(ctx, db.DeliveryFilter{After: last, Limit: resumeWindow + 1})
	if err != nil {
		return last, err
	}
	put := func(m live.Message) error {
		rc.SetWriteDeadline(time.Now().Add(s.cfg.StreamWriteTimeout))
		_, err := io.WriteString(w, m.Frame())
		return err
	}
	if len(ds) > resumeWindow {
		newest, err := s.store.LastDeliveryID(ctx)
		if err != nil {
			return last, err
		}
		return newest, s.writeMessage(w, rc, live.Message{ID: newest, Name: "resync", Data: "reload"})
	}
	for _, d := range ds {
		if err := context.Cause(ctx); err != nil {
			return last, err
		}
		if s.streams.Err() != nil { // shutting down
			return last, context.Canceled
		}
		var rows []live.Message
		if sf == nil || sf.list != "transcripts" { // a transcript list shows no delivery or event rows
			rows = s.renderDelivery(ctx, d)
		}
		for _, m := range rows {
			if !s.streamWants(ctx, sf, m) {
				continue
			}
			if err := put(m); err != nil {
				return last, err
			}
		}
		// A transcript the event created (normalise.go publishes it live separately).
		if m, ok := s.missedTranscript(ctx, d); ok && s.streamWants(ctx, sf, m) {
			if err := put(m); err != nil {
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
	return s.writeChunk(w, rc, []byte(text))
}

func (s *Server) writeChunk(w http.ResponseWriter, rc *http.ResponseController, p []byte) error {
	return s.writeWith(w, rc, func(w io.Writer) error { _, err := w.Write(p); return err })
}

// writeWith runs write on w under the stream's write deadline, then flushes.
func (s *Server) writeWith(w http.ResponseWriter, rc *http.ResponseController, write func(io.Writer) error) error {
	if rc != nil {
		rc.SetWriteDeadline(time.Now().Add(s.cfg.StreamWriteTimeout))
	}
	if err := write(w); err != nil {
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
