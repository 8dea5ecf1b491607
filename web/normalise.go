package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
	"github.com/plaudhook/plaudhook/web/live"
	"github.com/plaudhook/plaudhook/web/plaud"
)

// Normalising turns a stored event into recordings, timelines and transcripts. It runs after
// the webhook was acknowledged, from the stored body, so it can never lose or delay a
// delivery, and `plaudhook reindex` re-runs it over every stored event (after an upgrade that
// reads payloads better, say). It is idempotent: running it twice changes nothing.

// NormaliseStore is what normalising one event needs from storage.
type NormaliseStore interface {
	CreateRecordingEvent(ctx context.Context, ev db.RecordingEvent) (db.RecordingEventResult, error)
}

// Normalise stores what one event says about a recording and its transcript. ok is false when
// the event is about no recording (a battery report, say) and nothing was stored.
func Normalise(ctx context.Context, st NormaliseStore, e db.Event, body []byte) (res db.RecordingEventResult, ok bool, err error) {
	return normaliseDoc(ctx, st, e, plaud.Decode(body))
}

// normaliseDoc is Normalise for a body already decoded.
func normaliseDoc(ctx context.Context, st NormaliseStore, e db.Event, doc plaud.Doc) (res db.RecordingEventResult, ok bool, err error) {
	ev, ok := recordingEvent(e, doc)
	if !ok {
		return res, false, nil
	}
	res, err = st.CreateRecordingEvent(ctx, ev)
	if err != nil {
		return res, true, fmt.Errorf("normalise event %d: %w", e.ID, err)
	}
	return res, true, nil
}

// recordingEvent reads what a body says about a recording: its ids, the status it implies and
// the transcript it carries. A transcript that says nothing readable (no status, text,
// segments or error) is left out; the event page explains what it lacked.
func recordingEvent(e db.Event, doc plaud.Doc) (db.RecordingEvent, bool) {
	env := doc.Envelope()
	ev := db.RecordingEvent{
		EventID:         e.ID,
		FileID:          env.FileID,
		TranscriptionID: env.TranscriptionID,
		Title:           env.Title,
		OccurredAt:      env.OccurredAt,
		ReceivedAt:      e.FirstReceivedAt,
	}
	// A workflow id names the transcription job of the legacy API.
	if ev.TranscriptionID == "" {
		ev.TranscriptionID = env.WorkflowID
	}
	// Without a time of its own, an event happened when it arrived.
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = e.FirstReceivedAt
	}

	// What the event name says about the audio.
	switch strings.ToLower(strings.TrimSpace(env.EventType)) {
	case "device.synced":
		ev.Status, ev.Uploaded = db.RecordingUploaded, true
	case "device.recording_completed":
		ev.Status, ev.Uploaded = db.RecordingRecorded, true
	}

	// What the transcript, if any, says.
	tr, carries := doc.Transcript()
	if carries && readable(tr) {
		ev.Transcript = transcriptContent(tr)
		switch tr.Status {
		case plaud.StatusCompleted:
			ev.Status = db.RecordingTranscribed
		case plaud.StatusFailed:
			ev.Status = db.RecordingFailed
		case plaud.StatusProcessing:
			if ev.Status == "" || ev.Status == db.RecordingUploaded ||
				ev.Status == db.RecordingRecorded {
				ev.Status = db.RecordingTranscribing
			}
		}
	}
	about := ev.FileID != "" || ev.TranscriptionID != "" || ev.Transcript != nil
	return ev, about
}

// readable reports whether a parsed transcript says anything worth storing: text, segments,
// an error, or a status the payload stated. A "completed" the parser only assumed from the
// event name, with nothing else, is not a transcript: scheme A may send only ids and leave the
// transcript to be fetched. An assumed failure is kept: that the job failed is the news.
func readable(t plaud.Transcript) bool {
	if t.Text != "" || len(t.Segments) > 0 || t.ErrorCode != "" || t.ErrorMessage != "" {
		return true
	}
	assumed := slices.ContainsFunc(t.Missing, func(m string) bool {
		return strings.HasPrefix(m, "no status; assumed")
	})
	return t.Status != "" && (!assumed || t.Status == plaud.StatusFailed)
}

// transcriptContent converts a parsed transcript into what storage keeps. A transcript with
// text but no segments is stored as one segment holding the whole text, so that it is found by
// search and exported like any other (its Missing notes still say "no segments").
func transcriptContent(t plaud.Transcript) *db.TranscriptContent {
	c := &db.TranscriptContent{
		Status:       t.Status,
		Language:     t.Language,
		DurationMS:   t.DurationMS,
		Text:         t.Text,
		ErrorCode:    t.ErrorCode,
		ErrorMessage: t.ErrorMessage,
		Missing:      t.Missing,
	}
	for _, s := range t.Segments {
		c.Segments = append(c.Segments, db.Segment{Index: s.Index, StartMS: s.StartMS,
			EndMS: s.EndMS, Speaker: s.Speaker, Text: s.Text})
	}
	if len(c.Segments) == 0 && strings.TrimSpace(t.Text) != "" {
		c.Segments = []db.Segment{{Index: 0, EndMS: t.DurationMS, Text: t.Text}}
	}
	return c
}

// normaliseAfterCommit normalises a committed delivery in the background: only the first
// delivery of a verified event (a repeat carries the same body). The sender has its answer
// already; a failure here is logged and left for `plaudhook reindex`. A transcript it creates
// is published live.
func (s *Server) normaliseAfterCommit(ctx context.Context, d db.Delivery, doc plaud.Doc) {
	if d.Verdict != db.Verified || d.Duplicate || d.EventID == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	s.after.Go(func() {
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("panic while normalising", "event_id", d.EventID, "error", v)
			}
		}()
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()

		// The event is the one this delivery just created, so what normalising reads of it
		// is known without reading it back: one query less per delivery on the busy path.
		received := time.UnixMicro(d.ReceivedAt.UnixMicro()).UTC() // as stored
		e := db.Event{ID: d.EventID, EndpointID: d.EndpointID, Endpoint: d.Endpoint,
			Size: d.Size, FirstReceivedAt: received, LastReceivedAt: received,
			DeliveryCount: 1, BodyDeliveryID: d.ID}
		res, _, err := normaliseDoc(ctx, s.store, e, doc)
		if err != nil {
			s.log.Error("normalise event", "event_id", d.EventID, "error", err)
			return
		}
		if res.TranscriptCreated && s.hub.Len() > 0 {
			// Read and rendered only if a stream writes it; not under this work's deadline,
			// which ends when it returns.
			rctx := context.WithoutCancel(ctx)
			s.hub.Add(live.NewItem(live.Message{ID: d.ID, Name: "transcript-new",
				Group: groupTranscript}, func() (string, bool) {
				rctx, cancel := context.WithTimeout(rctx, streamRenderTimeout)
				defer cancel()
				m, ok := s.transcriptMessage(rctx, d.ID, d.EventID)
				return m.Data, ok
			}))
		}
	})
}

// Wait blocks until the after-commit work started so far (normalising transcripts) is done.
// Call it after the HTTP server stopped and before closing the store.
func (s *Server) Wait() { s.after.Wait() }

// transcriptMessage renders the live "transcript-new" message for the transcript an event
// created, keyed by the delivery id like every stream message. ok is false when the event
// created none.
func (s *Server) transcriptMessage(ctx context.Context, deliveryID, eventID int64) (live.Message, bool) {
	t, err := s.store.FindTranscriptByEventID(ctx, eventID)
	if err != nil {
		if !errors.Is(err, db.ErrNotFound) {
			s.log.Warn("render live transcript", "event_id", eventID, "error", err)
		}
		return live.Message{}, false
	}
	if t.FirstEventID != eventID {
		return live.Message{}, false // the event only added to an existing transcript
	}
	var buf bytes.Buffer
	if err := views.TranscriptRow(t, nil).Render(ctx, &buf); err != nil {
		s.log.Warn("render live transcript", "event_id", eventID, "error", err)
		return live.Message{}, false
	}
	return live.Message{ID: deliveryID, Name: "transcript-new", Data: buf.String()}, true
}

// ReindexStore is what Reindex needs from storage.
type ReindexStore interface {
	NormaliseStore
	FindEvents(ctx context.Context, f db.EventFilter) ([]db.Event, int64, error)
	FindDeliveryByID(ctx context.Context, id int64) (db.Delivery, error)
}

// ReindexStats counts what Reindex did.
type ReindexStats struct {
	Events       int // events read
	Recordings   int // events about a recording
	Transcripts  int // events that carry a readable transcript
	Created      int // transcripts created
	Changed      int // transcripts whose content was replaced
	Failed       int // events that could not be stored (logged)
	Unreferenced int // events about no recording
}

// Reindex normalises every stored event again, newest first. An event that fails is logged and
// counted, and the run goes on; storage that is unavailable stops it.
func Reindex(ctx context.Context, st ReindexStore, log *slog.Logger) (ReindexStats, error) {
	var stats ReindexStats
	f := db.EventFilter{Limit: 500}
	for {
		events, next, err := st.FindEvents(ctx, f)
		if err != nil {
			return stats, fmt.Errorf("reindex: %w", err)
		}
		for _, e := range events {
			stats.Events++
			d, err := st.FindDeliveryByID(ctx, e.BodyDeliveryID)
			if err != nil {
				return stats, fmt.Errorf("reindex event %d: %w", e.ID, err)
			}
			res, ok, err := Normalise(ctx, st, e, d.Body)
			switch {
			case errors.Is(err, db.ErrUnavailable) || ctx.Err() != nil:
				return stats, fmt.Errorf("reindex: %w", errors.Join(err, ctx.Err()))
			case err != nil:
				stats.Failed++
				log.Error("reindex event", "event_id", e.ID, "error", err)
				continue
			case !ok:
				stats.Unreferenced++
				continue
			}
			stats.Recordings++
			if res.TranscriptID != 0 {
				stats.Transcripts++
			}
			if res.TranscriptCreated {
				stats.Created++
			}
			if res.TranscriptChanged {
				stats.Changed++
			}
		}
		if next == 0 {
			return stats, nil
		}
		f.Before = next
	}
}

// missedTranscript is the "transcript-new" message a reconnecting stream missed for delivery d,
// if d is the first delivery of an event that created a transcript.
func (s *Server) missedTranscript(ctx context.Context, d db.Delivery) (live.Message, bool) {
	if d.Verdict != db.Verified || d.Duplicate || d.EventID == 0 {
		return live.Message{}, false
	}
	return s.transcriptMessage(ctx, d.ID, d.EventID)
}
