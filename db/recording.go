package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Recording statuses, from the least to the most advanced. A recording's status is that of
// its most advanced event, so an older event that arrives last never moves it back.
// RecordingTranscribed and RecordingFailed are both final; between them the later occurrence
// wins (a transcription retried after a failure).
const (
	RecordingUploaded     = "uploaded"     // device.synced: the audio reached Plaud's cloud
	RecordingRecorded     = "recorded"     // device.recording_completed without a transcript
	RecordingTranscribing = "transcribing" // a transcription job reported progress
	RecordingTranscribed  = "transcribed"  // a completed transcript exists
	RecordingFailed       = "failed"       // the transcription failed
)

// TranscriptDeadline is how long after upload a recording may stay without a transcript
// before it is flagged.
const TranscriptDeadline = time.Hour

// statusRankSQL orders recording statuses in SQL; see the constants above.
const statusRankSQL = `CASE status WHEN 'uploaded' THEN 1 WHEN 'recorded' THEN 2
	WHEN 'transcribing' THEN 3 WHEN 'transcribed' THEN 4 WHEN 'failed' THEN 4 ELSE 0 END`

// Recording is what Plaud's file id and transcription ids refer to: one audio recording, the
// events about it and its transcripts.
type Recording struct {
	ID              int64
	FileID          string // the first file id seen, "" when no event named one
	TranscriptionID string // the first transcription id seen
	Title           string // the latest title or file name sent, "" when none
	Status          string // one of the Recording* statuses, "" when no event implied one
	// UploadedAt is when the audio was first reported to exist (synced or recording
	// completed), or else the occurrence of its first event.
	UploadedAt    time.Time
	LastEventAt   time.Time // the latest occurrence among its events
	HasTranscript bool      // a completed transcript exists
	CreatedAt     time.Time
}

// Overdue reports whether the recording is still without a transcript TranscriptDeadline after
// its upload (a failed transcription is not overdue: it has its own status).
func (r Recording) Overdue(now time.Time) bool {
	return !r.HasTranscript && r.Status != RecordingFailed &&
		now.Sub(r.UploadedAt) > TranscriptDeadline
}

// RecordingEvent is what one stored event says about a recording. CreateRecordingEvent takes
// the facts; queries fill the rest.
type RecordingEvent struct {
	EventID         int64
	FileID          string
	TranscriptionID string
	Title           string
	// Status is the recording status this event implies, "" when none (an event that only
	// names the recording).
	Status string
	// Uploaded reports that the event says the audio exists (synced, recording completed).
	Uploaded   bool
	OccurredAt time.Time // when the event happened, by the sender's clock
	ReceivedAt time.Time // when plaudhook first received it
	// Transcript is the transcript the event carries, nil when none (or none readable).
	Transcript *TranscriptContent

	// Filled by queries.
	RecordingID  int64
	TranscriptID int64  // the transcript this event contributed to, 0 when none
	EventType    string // from the event
	// Late marks an event received after another event of the recording that happened later:
	// it arrived out of order.
	Late bool
}

// RecordingEventResult says what CreateRecordingEvent changed.
type RecordingEventResult struct {
	RecordingID  int64
	TranscriptID int64 // 0 when the event carried no transcript
	// TranscriptCreated is true when the event created its transcript; TranscriptChanged when
	// it replaced the content of an existing one.
	TranscriptCreated, TranscriptChanged bool
}

// CreateRecordingEvent stores what one event says about a recording: it finds the recording
// by file id or transcription id (merging two recordings that an event shows to be one),
// records the event on its timeline, stores the transcript it carries and recomputes the
// recording's status. Calling it again for the same event updates what it stored before, so
// it can be re-run over every event (reindex) and gives the same result in any order.
func (db *DB) CreateRecordingEvent(ctx context.Context, ev RecordingEvent) (RecordingEventResult, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return RecordingEventResult{}, fmt.Errorf("create recording event %d: %w", ev.EventID, unavailable(err))
	}
	defer tx.Rollback()
	res, err := db.createRecordingEvent(ctx, tx, ev)
	if err != nil {
		return res, err
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("create recording event %d: %w", ev.EventID, unavailable(err))
	}
	return res, nil
}

// createRecordingEvent is CreateRecordingEvent inside the caller's transaction.
func (db *DB) createRecordingEvent(ctx context.Context, tx *sql.Tx, ev RecordingEvent) (RecordingEventResult, error) {
	var res RecordingEventResult

	// The recording this event belonged to before (a re-run), and the one it belongs to now.
	var prev int64
	err := tx.QueryRowContext(ctx, `SELECT recording_id FROM recording_events WHERE event_id = ?`,
		ev.EventID).Scan(&prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return res, fmt.Errorf("create recording event %d: %w", ev.EventID, err)
	}
	if res.RecordingID, err = db.recordingFor(ctx, tx, ev, prev); err != nil {
		return res, fmt.Errorf("create recording event %d: %w", ev.EventID, err)
	}

	// The timeline entry.
	_, err = tx.ExecContext(ctx, `
		INSERT INTO recording_events (event_id, recording_id, file_id, transcription_id, title,
			status, uploaded, occurred_at, received_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (event_id) DO UPDATE SET
			recording_id = excluded.recording_id, file_id = excluded.file_id,
			transcription_id = excluded.transcription_id, title = excluded.title,
			status = excluded.status, uploaded = excluded.uploaded,
			occurred_at = excluded.occurred_at, received_at = excluded.received_at`,
		ev.EventID, res.RecordingID, ev.FileID, ev.TranscriptionID, ev.Title, ev.Status,
		ev.Uploaded, micros(ev.OccurredAt), micros(ev.ReceivedAt))
	if err != nil {
		return res, fmt.Errorf("create recording event %d: %w", ev.EventID, conflict(err))
	}

	// The transcript it carries, if any.
	if ev.Transcript != nil {
		if err := db.saveTranscript(ctx, tx, ev, &res); err != nil {
			return res, fmt.Errorf("create recording event %d: %w", ev.EventID, err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE recording_events SET transcript_id = ?
			WHERE event_id = ?`, res.TranscriptID, ev.EventID)
		if err != nil {
			return res, fmt.Errorf("create recording event %d: %w", ev.EventID, err)
		}
	}

	// Recompute the recording from all its events, and the one the event left, if it moved.
	if err := refreshRecording(ctx, tx, res.RecordingID); err != nil {
		return res, fmt.Errorf("create recording event %d: %w", ev.EventID, err)
	}
	if prev != 0 && prev != res.RecordingID {
		if err := refreshRecording(ctx, tx, prev); err != nil {
			return res, fmt.Errorf("create recording event %d: %w", ev.EventID, err)
		}
	}
	return res, nil
}

// recordingFor returns the recording that ev's ids name. When they name two recordings (a
// synced event knew only the file id, a transcription event only its own id, and now one event
// names both), the two are merged into the older one. Without any match the event keeps the
// recording it had (prev, on a re-run), or a recording is created.
func (db *DB) recordingFor(ctx context.Context, tx *sql.Tx, ev RecordingEvent, prev int64) (int64, error) {
	var ids []int64
	for _, q := range []struct{ col, val string }{
		{"file_id", ev.FileID}, {"transcription_id", ev.TranscriptionID},
	} {
		if q.val == "" {
			continue
		}
		rows, err := tx.QueryContext(ctx, `SELECT DISTINCT recording_id FROM recording_events
			WHERE `+q.col+` = ? AND event_id != ?`, q.val, ev.EventID)
		if err != nil {
			return 0, fmt.Errorf("find recording: %w", err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return 0, fmt.Errorf("find recording: %w", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, fmt.Errorf("find recording: %w", err)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)

	// A new recording when nothing matches.
	if len(ids) == 0 && prev != 0 {
		return prev, nil
	}
	if len(ids) == 0 {
		at := micros(ev.OccurredAt)
		res, err := tx.ExecContext(ctx, `INSERT INTO recordings (uploaded_at, last_event_at,
			created_at) VALUES (?, ?, ?)`, at, at, micros(db.now()))
		if err != nil {
			return 0, fmt.Errorf("create recording: %w", err)
		}
		return res.LastInsertId()
	}

	// Merge every other match into the oldest.
	keep := ids[0]
	for _, other := range ids[1:] {
		for _, q := range []string{
			`UPDATE recording_events SET recording_id = ? WHERE recording_id = ?`,
			`UPDATE transcripts SET recording_id = ? WHERE recording_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, keep, other); err != nil {
				return 0, fmt.Errorf("merge recording %d into %d: %w", other, keep, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM recordings WHERE id = ?`, other); err != nil {
			return 0, fmt.Errorf("merge recording %d into %d: %w", other, keep, err)
		}
	}
	return keep, nil
}

// refreshRecording recomputes a recording from its events, or deletes it when none is left.
// The status is that of the most advanced event, the latest occurrence breaking ties, so the
// result does not depend on the order in which events arrived.
func refreshRecording(ctx context.Context, tx *sql.Tx, id int64) error {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM recording_events
		WHERE recording_id = ?`, id).Scan(&n)
	if err != nil {
		return fmt.Errorf("refresh recording %d: %w", id, err)
	}
	if n == 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM recordings WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete empty recording %d: %w", id, err)
		}
		return nil
	}
	_, err = tx.ExecContext(ctx, `
		UPDATE recordings SET
			status = coalesce((SELECT status FROM recording_events
				WHERE recording_id = ?1 AND status != ''
				ORDER BY `+statusRankSQL+` DESC, occurred_at DESC, event_id DESC LIMIT 1), ''),
			title = coalesce((SELECT title FROM recording_events
				WHERE recording_id = ?1 AND title != ''
				ORDER BY occurred_at DESC, event_id DESC LIMIT 1), ''),
			file_id = coalesce((SELECT file_id FROM recording_events
				WHERE recording_id = ?1 AND file_id != ''
				ORDER BY occurred_at, event_id LIMIT 1), ''),
			transcription_id = coalesce((SELECT transcription_id FROM recording_events
				WHERE recording_id = ?1 AND transcription_id != ''
				ORDER BY occurred_at, event_id LIMIT 1), ''),
			uploaded_at = coalesce(
				(SELECT min(occurred_at) FROM recording_events
					WHERE recording_id = ?1 AND uploaded),
				(SELECT min(occurred_at) FROM recording_events WHERE recording_id = ?1)),
			last_event_at = (SELECT max(occurred_at) FROM recording_events
				WHERE recording_id = ?1),
			has_transcript = EXISTS (SELECT 1 FROM transcripts
				WHERE recording_id = ?1 AND status = 'completed')
		WHERE id = ?1`, id)
	if err != nil {
		return fmt.Errorf("refresh recording %d: %w", id, err)
	}
	return nil
}

const recordingColumns = `r.id, r.file_id, r.transcription_id, r.title, r.status, r.uploaded_at,
	r.last_event_at, r.has_transcript, r.created_at`

func scanRecording(s interface{ Scan(...any) error }) (Recording, error) {
	var r Recording
	var uploaded, last, created int64
	err := s.Scan(&r.ID, &r.FileID, &r.TranscriptionID, &r.Title, &r.Status, &uploaded, &last,
		&r.HasTranscript, &created)
	r.UploadedAt, r.LastEventAt, r.CreatedAt = fromMicros(uploaded), fromMicros(last),
		fromMicros(created)
	return r, err
}

// FindRecordingByID returns one recording, or ErrNotFound.
func (db *DB) FindRecordingByID(ctx context.Context, id int64) (Recording, error) {
	r, err := scanRecording(db.r.QueryRowContext(ctx, `SELECT `+recordingColumns+`
		FROM recordings r WHERE r.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("recording %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("find recording %d: %w", id, err)
	}
	return r, nil
}

// RecordingFilter selects recordings for FindRecordings. Nil fields are unset.
type RecordingFilter struct {
	// OverdueAt keeps only recordings without a transcript (and not failed) that were
	// uploaded before it: pass now minus TranscriptDeadline.
	OverdueAt *time.Time
	After     string // cursor from the previous page, "" for the first
	Limit     int    // at most 500; 0 means 50
}

// FindRecordings returns one page of recordings, the most recently active first, and the
// cursor of the next page ("" when this is the last one).
func (db *DB) FindRecordings(ctx context.Context, f RecordingFilter) ([]Recording, string, error) {
	var where []string
	var args []any
	if f.OverdueAt != nil {
		where = append(where, "NOT r.has_transcript AND r.status != 'failed' AND r.uploaded_at < ?")
		args = append(args, micros(*f.OverdueAt))
	}
	if f.After != "" {
		at, id, err := parseTimeCursor(f.After)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "(r.last_event_at, r.id) < (?, ?)")
		args = append(args, at, id)
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	q := `SELECT ` + recordingColumns + ` FROM recordings r`
	if len(where) > 0 {
		q += "\n\t\tWHERE " + strings.Join(where, " AND ")
	}
	q += "\n\t\tORDER BY r.last_event_at DESC, r.id DESC LIMIT ?"
	args = append(args, f.Limit+1)

	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("find recordings: %w", err)
	}
	defer rows.Close()
	var out []Recording
	for rows.Next() {
		r, err := scanRecording(rows)
		if err != nil {
			return nil, "", fmt.Errorf("find recordings: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("find recordings: %w", err)
	}

	// One row more than asked tells whether a next page exists.
	next := ""
	if len(out) > f.Limit {
		out = out[:f.Limit]
		last := out[len(out)-1]
		next = timeCursor(micros(last.LastEventAt), last.ID)
	}
	return out, next, nil
}

// FindRecordingEvents returns the timeline of a recording: its events in order of occurrence
// (receipt order breaking ties), each marked Late when it arrived after an event that happened
// later than it. It returns ErrNotFound when the recording does not exist.
func (db *DB) FindRecordingEvents(ctx context.Context, recordingID int64) ([]RecordingEvent, error) {
	if _, err := db.FindRecordingByID(ctx, recordingID); err != nil {
		return nil, err
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+recordingEventColumns+`
		FROM recording_events re
		JOIN events v ON v.id = re.event_id
		WHERE re.recording_id = ?
		ORDER BY re.occurred_at, re.received_at, re.event_id`, recordingID)
	if err != nil {
		return nil, fmt.Errorf("find recording %d events: %w", recordingID, err)
	}
	defer rows.Close()
	var out []RecordingEvent
	for rows.Next() {
		ev, err := scanRecordingEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("find recording %d events: %w", recordingID, err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find recording %d events: %w", recordingID, err)
	}
	markLate(out)
	return out, nil
}

// markLate marks the events that arrived after an event which happened later than them.
func markLate(evs []RecordingEvent) {
	byReceipt := make([]*RecordingEvent, len(evs))
	for i := range evs {
		byReceipt[i] = &evs[i]
	}
	slices.SortStableFunc(byReceipt, func(a, b *RecordingEvent) int {
		if c := a.ReceivedAt.Compare(b.ReceivedAt); c != 0 {
			return c
		}
		return int(a.EventID - b.EventID)
	})
	var latest time.Time
	for _, ev := range byReceipt {
		ev.Late = ev.OccurredAt.Before(latest)
		if ev.OccurredAt.After(latest) {
			latest = ev.OccurredAt
		}
	}
}

const recordingEventColumns = `re.event_id, re.recording_id, coalesce(re.transcript_id, 0),
	re.file_id, re.transcription_id, re.title, re.status, re.uploaded, re.occurred_at,
	re.received_at, v.event_type`

func scanRecordingEvent(s interface{ Scan(...any) error }) (RecordingEvent, error) {
	var ev RecordingEvent
	var occurred, received int64
	err := s.Scan(&ev.EventID, &ev.RecordingID, &ev.TranscriptID, &ev.FileID,
		&ev.TranscriptionID, &ev.Title, &ev.Status, &ev.Uploaded, &occurred, &received,
		&ev.EventType)
	ev.OccurredAt, ev.ReceivedAt = fromMicros(occurred), fromMicros(received)
	return ev, err
}

// FindRecordingEventByEventID returns what an event contributed to a recording, or ErrNotFound
// when the event is not about one (or was not normalised yet).
func (db *DB) FindRecordingEventByEventID(ctx context.Context, eventID int64) (RecordingEvent, error) {
	ev, err := scanRecordingEvent(db.r.QueryRowContext(ctx, `SELECT `+recordingEventColumns+`
		FROM recording_events re
		JOIN events v ON v.id = re.event_id
		WHERE re.event_id = ?`, eventID))
	if errors.Is(err, sql.ErrNoRows) {
		return ev, fmt.Errorf("recording event %d: %w", eventID, ErrNotFound)
	}
	if err != nil {
		return ev, fmt.Errorf("find recording event %d: %w", eventID, err)
	}
	return ev, nil
}

// timeCursor encodes a keyset position (time in microseconds, id) for a next-page link.
func timeCursor(at, id int64) string {
	return strconv.FormatInt(at, 10) + "." + strconv.FormatInt(id, 10)
}

// parseTimeCursor decodes timeCursor's output; anything else is a validation error.
func parseTimeCursor(c string) (at, id int64, err error) {
	a, b, ok := strings.Cut(c, ".")
	at, err1 := strconv.ParseInt(a, 10, 64)
	id, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, &ValidationError{Message: "invalid page cursor"}
	}
	return at, id, nil
}
