package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Transcript statuses.
const (
	TranscriptCompleted  = "completed"
	TranscriptFailed     = "failed"
	TranscriptProcessing = "processing"
)

// MaxSpeakerName is the longest speaker name accepted, in characters.
const MaxSpeakerName = 80

// TranscriptContent is a transcript as read from a payload: what CreateRecordingEvent stores.
type TranscriptContent struct {
	Status       string // TranscriptCompleted, TranscriptFailed or TranscriptProcessing
	Language     string
	DurationMS   int64
	Text         string
	ErrorCode    string
	ErrorMessage string
	Missing      []string // what the payload lacked, in plain words
	Segments     []Segment
}

// Segment is one timed piece of a transcript.
type Segment struct {
	Index   int    // position in the payload's array
	StartMS int64  // offset from the start of the audio
	EndMS   int64  //
	Speaker string // the original label ("" when none), never renamed
	Text    string
}

// Speaker is one speaker label of a transcript and the name the team gave it.
type Speaker struct {
	Label string // as sent by Plaud, e.g. "Speaker 1"
	// Name is the team's name for the speaker, or Label when nobody renamed it.
	Name      string
	Renamed   bool
	RenamedBy string
	RenamedAt time.Time
}

// Transcript is a stored transcript with the facts its list and page show.
type Transcript struct {
	ID              int64
	RecordingID     int64
	EventID         int64 // the event its content comes from
	FirstEventID    int64 // the event that created it
	TranscriptionID string
	FileID          string // the recording's file id
	Title           string // the recording's title or file name, "" when none
	TranscriptContent
	// Speakers are the distinct labels in order of first appearance, with their names.
	Speakers     []Speaker
	SegmentCount int
	OccurredAt   time.Time // when its source event happened
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// Hit is the first matching segment of a full-text search; nil otherwise.
	Hit *SearchHit
}

// SpeakerName returns the team's name for a label, or the label itself.
func (t Transcript) SpeakerName(label string) string {
	for _, s := range t.Speakers {
		if s.Label == label {
			return s.Name
		}
	}
	return label
}

// SpeakerIndex returns the position of label among the transcript's speakers (its colour), or
// -1 when the label is not one of them.
func (t Transcript) SpeakerIndex(label string) int {
	for i, s := range t.Speakers {
		if s.Label == label {
			return i
		}
	}
	return -1
}

// Block is a run of consecutive segments of one speaker: how a transcript is read.
type Block struct {
	Speaker  string // the original label
	Segments []Segment
}

// Blocks merges consecutive segments of the same speaker label into blocks.
func (t Transcript) Blocks() []Block {
	var out []Block
	for _, s := range t.Segments {
		if n := len(out); n > 0 && out[n-1].Speaker == s.Speaker {
			out[n-1].Segments = append(out[n-1].Segments, s)
			continue
		}
		out = append(out, Block{Speaker: s.Speaker, Segments: []Segment{s}})
	}
	return out
}

// SearchHit is a segment that matched a full-text search.
type SearchHit struct {
	SegmentIndex int
	StartMS      int64
	Speaker      string
	Text         string
	Matches      int // matching segments in this transcript (at least 1)
}

// transcriptRank orders transcript statuses: a final status outranks progress, so a
// "processing" event that arrives after the "completed" one does not undo it.
func transcriptRank(status string) int {
	switch status {
	case TranscriptCompleted, TranscriptFailed:
		return 2
	case TranscriptProcessing:
		return 1
	}
	return 0
}

// saveTranscript stores the transcript ev carries, under the key of its transcription id (or
// of the event when it has none). An existing transcript takes the new content only when the
// new source outranks its current one: a higher status rank, or the same rank and a later
// occurrence (the event id breaking ties), or the same event re-run. Unchanged content is not
// rewritten, so re-running keeps segment ids and the search index as they are.
func (db *DB) saveTranscript(ctx context.Context, tx *sql.Tx, ev RecordingEvent, res *RecordingEventResult) error {
	c := ev.Transcript
	key := "event:" + strconv.FormatInt(ev.EventID, 10)
	if ev.TranscriptionID != "" {
		key = "transcription:" + ev.TranscriptionID
	}
	hash, err := contentHash(c)
	if err != nil {
		return err
	}
	missing, _ := json.Marshal(nonNil(c.Missing))
	speakers, _ := json.Marshal(speakerLabels(c.Segments))
	now := micros(db.now())

	// The transcript stored under this key, if any.
	var cur struct {
		id, eventID, occurred int64
		status, hash          string
	}
	err = tx.QueryRowContext(ctx, `SELECT id, event_id, occurred_at, status, content_hash
		FROM transcripts WHERE source_key = ?`, key).
		Scan(&cur.id, &cur.eventID, &cur.occurred, &cur.status, &cur.hash)
	if errors.Is(err, sql.ErrNoRows) {
		r, err := tx.ExecContext(ctx, `
			INSERT INTO transcripts (recording_id, source_key, event_id, first_event_id,
				transcription_id, status, language, duration_ms, text, error_code, error_message,
				missing, speakers, segment_count, content_hash, occurred_at, created_at,
				updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			res.RecordingID, key, ev.EventID, ev.EventID, ev.TranscriptionID, c.Status,
			c.Language, c.DurationMS, c.Text, c.ErrorCode, c.ErrorMessage, string(missing),
			string(speakers), len(c.Segments), hash, micros(ev.OccurredAt), now, now)
		if err != nil {
			return fmt.Errorf("create transcript: %w", conflict(err))
		}
		if res.TranscriptID, err = r.LastInsertId(); err != nil {
			return fmt.Errorf("create transcript: %w", err)
		}
		res.TranscriptCreated = true
		return insertSegments(ctx, tx, res.TranscriptID, c.Segments)
	}
	if err != nil {
		return fmt.Errorf("find transcript %s: %w", key, err)
	}
	res.TranscriptID = cur.id

	// Decide whether the new source replaces the current one.
	occurred := micros(ev.OccurredAt)
	newRank, curRank := transcriptRank(c.Status), transcriptRank(cur.status)
	wins := ev.EventID == cur.eventID || newRank > curRank ||
		(newRank == curRank && (occurred > cur.occurred ||
			(occurred == cur.occurred && ev.EventID > cur.eventID)))
	if !wins {
		_, err := tx.ExecContext(ctx, `UPDATE transcripts SET recording_id = ? WHERE id = ?`,
			res.RecordingID, cur.id)
		if err != nil {
			return fmt.Errorf("move transcript %d: %w", cur.id, err)
		}
		return nil
	}
	if hash == cur.hash {
		_, err := tx.ExecContext(ctx, `UPDATE transcripts SET recording_id = ?, event_id = ?,
			occurred_at = ? WHERE id = ?`, res.RecordingID, ev.EventID, occurred, cur.id)
		if err != nil {
			return fmt.Errorf("update transcript %d: %w", cur.id, err)
		}
		return nil
	}

	// New content: replace the row's content and its segments (the triggers keep the index).
	_, err = tx.ExecContext(ctx, `
		UPDATE transcripts SET recording_id = ?, event_id = ?, transcription_id = ?, status = ?,
			language = ?, duration_ms = ?, text = ?, error_code = ?, error_message = ?,
			missing = ?, speakers = ?, segment_count = ?, content_hash = ?, occurred_at = ?,
			updated_at = ?
		WHERE id = ?`,
		res.RecordingID, ev.EventID, ev.TranscriptionID, c.Status, c.Language, c.DurationMS,
		c.Text, c.ErrorCode, c.ErrorMessage, string(missing), string(speakers), len(c.Segments),
		hash, occurred, now, cur.id)
	if err != nil {
		return fmt.Errorf("update transcript %d: %w", cur.id, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM segments WHERE transcript_id = ?`,
		cur.id); err != nil {
		return fmt.Errorf("update transcript %d: %w", cur.id, err)
	}
	res.TranscriptChanged = true
	return insertSegments(ctx, tx, cur.id, c.Segments)
}

// insertSegments writes a transcript's segments; the insert trigger indexes their text.
func insertSegments(ctx context.Context, tx *sql.Tx, transcriptID int64, segs []Segment) error {
	if len(segs) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO segments (transcript_id, idx, start_ms,
		end_ms, speaker, text) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("insert segments: %w", err)
	}
	defer stmt.Close()
	for _, s := range segs {
		if _, err := stmt.ExecContext(ctx, transcriptID, s.Index, s.StartMS, s.EndMS, s.Speaker,
			s.Text); err != nil {
			return fmt.Errorf("insert segment %d: %w", s.Index, conflict(err))
		}
	}
	return nil
}

// contentHash fingerprints transcript content, to skip rewriting what did not change.
func contentHash(c *TranscriptContent) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("hash transcript: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// speakerLabels lists the distinct non-empty speaker labels in order of first appearance.
func speakerLabels(segs []Segment) []string {
	labels := []string{}
	seen := map[string]bool{}
	for _, s := range segs {
		if s.Speaker != "" && !seen[s.Speaker] {
			seen[s.Speaker] = true
			labels = append(labels, s.Speaker)
		}
	}
	return labels
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const transcriptColumns = `t.id, t.recording_id, t.event_id, t.first_event_id,
	t.transcription_id, r.file_id, r.title, t.status, t.language, t.duration_ms, t.text,
	t.error_code, t.error_message, t.missing, t.speakers, t.segment_count, t.occurred_at,
	t.created_at, t.updated_at`

func scanTranscript(s interface{ Scan(...any) error }, extra ...any) (Transcript, error) {
	var t Transcript
	var missing, speakers string
	var occurred, created, updated int64
	dest := []any{&t.ID, &t.RecordingID, &t.EventID, &t.FirstEventID, &t.TranscriptionID,
		&t.FileID, &t.Title, &t.Status, &t.Language, &t.DurationMS, &t.Text, &t.ErrorCode,
		&t.ErrorMessage, &missing, &speakers, &t.SegmentCount, &occurred, &created, &updated}
	if err := s.Scan(append(dest, extra...)...); err != nil {
		return t, err
	}
	t.OccurredAt, t.CreatedAt, t.UpdatedAt = fromMicros(occurred), fromMicros(created),
		fromMicros(updated)
	var labels []string
	if err := json.Unmarshal([]byte(missing), &t.Missing); err != nil {
		return t, fmt.Errorf("decode missing of transcript %d: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(speakers), &labels); err != nil {
		return t, fmt.Errorf("decode speakers of transcript %d: %w", t.ID, err)
	}
	for _, l := range labels {
		t.Speakers = append(t.Speakers, Speaker{Label: l, Name: l})
	}
	return t, nil
}

// FindTranscriptByID returns one transcript with its segments, or ErrNotFound.
func (db *DB) FindTranscriptByID(ctx context.Context, id int64) (Transcript, error) {
	t, err := scanTranscript(db.r.QueryRowContext(ctx, `SELECT `+transcriptColumns+`
		FROM transcripts t
		JOIN recordings r ON r.id = t.recording_id
		WHERE t.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("transcript %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("find transcript %d: %w", id, err)
	}

	// Segments in the order they were sent.
	rows, err := db.r.QueryContext(ctx, `SELECT idx, start_ms, end_ms, speaker, text
		FROM segments WHERE transcript_id = ? ORDER BY idx`, id)
	if err != nil {
		return t, fmt.Errorf("find transcript %d segments: %w", id, err)
	}
	defer rows.Close()
	t.Segments = make([]Segment, 0, t.SegmentCount)
	for rows.Next() {
		var s Segment
		if err := rows.Scan(&s.Index, &s.StartMS, &s.EndMS, &s.Speaker, &s.Text); err != nil {
			return t, fmt.Errorf("find transcript %d segments: %w", id, err)
		}
		t.Segments = append(t.Segments, s)
	}
	if err := rows.Err(); err != nil {
		return t, fmt.Errorf("find transcript %d segments: %w", id, err)
	}

	ts := []Transcript{t}
	if err := db.loadSpeakerNames(ctx, ts); err != nil {
		return t, err
	}
	return ts[0], nil
}

// FindTranscriptByEventID returns the transcript an event contributed to (without segments),
// or ErrNotFound when it contributed none.
func (db *DB) FindTranscriptByEventID(ctx context.Context, eventID int64) (Transcript, error) {
	t, err := scanTranscript(db.r.QueryRowContext(ctx, `SELECT `+transcriptColumns+`
		FROM recording_events re
		JOIN transcripts t ON t.id = re.transcript_id
		JOIN recordings r ON r.id = t.recording_id
		WHERE re.event_id = ?`, eventID))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("transcript of event %d: %w", eventID, ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("find transcript of event %d: %w", eventID, err)
	}
	ts := []Transcript{t}
	if err := db.loadSpeakerNames(ctx, ts); err != nil {
		return t, err
	}
	return ts[0], nil
}

// loadSpeakerNames fills the team's speaker names into ts.
func (db *DB) loadSpeakerNames(ctx context.Context, ts []Transcript) error {
	if len(ts) == 0 {
		return nil
	}
	byID := make(map[int64]*Transcript, len(ts))
	args := make([]any, len(ts))
	for i := range ts {
		byID[ts[i].ID] = &ts[i]
		args[i] = ts[i].ID
	}
	rows, err := db.r.QueryContext(ctx, `SELECT transcript_id, label, name, renamed_by, renamed_at
		FROM speaker_names
		WHERE transcript_id IN (?`+strings.Repeat(",?", len(ts)-1)+`)`, args...)
	if err != nil {
		return fmt.Errorf("find speaker names: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, at int64
		var label, name, by string
		if err := rows.Scan(&id, &label, &name, &by, &at); err != nil {
			return fmt.Errorf("find speaker names: %w", err)
		}
		t := byID[id]
		for i := range t.Speakers {
			if t.Speakers[i].Label == label {
				t.Speakers[i] = Speaker{Label: label, Name: name, Renamed: true, RenamedBy: by,
					RenamedAt: fromMicros(at)}
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("find speaker names: %w", err)
	}
	return nil
}

// UpdateSpeakerName gives a speaker label of a transcript a name for the whole team, recording
// who did it; an empty name restores the original label. The label itself is never changed. It
// returns ErrNotFound when the transcript does not exist and a *ValidationError when the label
// is not one of its speakers or the name is too long.
func (db *DB) UpdateSpeakerName(ctx context.Context, transcriptID int64, label, name, actor string, actorID int64) error {
	name = strings.TrimSpace(name)
	if utf8.RuneCountInString(name) > MaxSpeakerName {
		return &ValidationError{Message: fmt.Sprintf("a speaker name has at most %d characters",
			MaxSpeakerName)}
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rename speaker: %w", unavailable(err))
	}
	defer tx.Rollback()

	// The label must be one the transcript has.
	var speakers string
	err = tx.QueryRowContext(ctx, `SELECT speakers FROM transcripts WHERE id = ?`, transcriptID).
		Scan(&speakers)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("transcript %d: %w", transcriptID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("rename speaker: %w", err)
	}
	var labels []string
	if err := json.Unmarshal([]byte(speakers), &labels); err != nil {
		return fmt.Errorf("rename speaker: %w", err)
	}
	known := false
	for _, l := range labels {
		known = known || l == label
	}
	if !known {
		return &ValidationError{Message: "no such speaker in this transcript"}
	}

	// An empty name, or the label itself, removes the rename.
	if name == "" || name == label {
		_, err = tx.ExecContext(ctx, `DELETE FROM speaker_names WHERE transcript_id = ?
			AND label = ?`, transcriptID, label)
	} else {
		var byID sql.NullInt64
		if actorID != 0 {
			byID = sql.NullInt64{Int64: actorID, Valid: true}
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO speaker_names (transcript_id, label, name, renamed_by, renamed_by_id,
				renamed_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (transcript_id, label) DO UPDATE SET name = excluded.name,
				renamed_by = excluded.renamed_by, renamed_by_id = excluded.renamed_by_id,
				renamed_at = excluded.renamed_at`,
			transcriptID, label, name, actor, byID, micros(db.now()))
	}
	if err != nil {
		return fmt.Errorf("rename speaker: %w", conflict(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("rename speaker: %w", unavailable(err))
	}
	return nil
}

// FindUserBlurTranscripts reports whether a user asked for transcript text to be blurred
// until clicked. It returns ErrNotFound for an unknown user.
func (db *DB) FindUserBlurTranscripts(ctx context.Context, userID int64) (bool, error) {
	var on bool
	err := db.r.QueryRowContext(ctx, `SELECT blur_transcripts FROM users WHERE id = ?`, userID).
		Scan(&on)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("user %d: %w", userID, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("find blur setting of user %d: %w", userID, err)
	}
	return on, nil
}

// UpdateUserBlurTranscripts stores a user's blur setting. It returns ErrNotFound for an
// unknown user.
func (db *DB) UpdateUserBlurTranscripts(ctx context.Context, userID int64, on bool) error {
	res, err := db.w.ExecContext(ctx, `UPDATE users SET blur_transcripts = ? WHERE id = ?`,
		on, userID)
	if err != nil {
		return fmt.Errorf("update blur setting of user %d: %w", userID, unavailable(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("user %d: %w", userID, ErrNotFound)
	}
	return nil
}
