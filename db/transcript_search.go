package db

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// TranscriptFilter selects transcripts for FindTranscripts. Nil and empty fields are unset.
type TranscriptFilter struct {
	Status      *string    // one of the Transcript* statuses
	Language    *string    // language code as sent, e.g. "ja"
	Since       *time.Time // occurred at or after
	Until       *time.Time // occurred before
	RecordingID *int64
	// Terms is a full-text search: a transcript matches when one of its segments contains
	// every term (case-insensitive substrings, any script). Each match carries its first
	// matching segment in Hit.
	Terms []string
	After string // cursor from the previous page, "" for the first
	Limit int    // at most 500; 0 means 50
}

// minTrigram is the shortest term the trigram index can find; shorter terms are matched with
// LIKE over the segments.
const minTrigram = 3

// FindTranscripts returns one page of transcripts and the cursor of the next page ("" when this
// is the last one). Without search terms they come newest first. With terms they come in the
// order their matching segments were stored, newest first: that order is the search index's
// own, so a page costs about the same however many segments match. Segments are not loaded.
// It returns a *ValidationError for a cursor it did not produce.
func (db *DB) FindTranscripts(ctx context.Context, f TranscriptFilter) ([]Transcript, string, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	var terms []string
	for _, t := range f.Terms {
		if t = strings.TrimSpace(t); t != "" {
			terms = append(terms, t)
		}
	}
	if len(terms) > 0 {
		return db.searchTranscripts(ctx, f, terms)
	}

	// List mode: keyset pagination on (occurred_at, id), served by transcripts_list.
	where, args := transcriptWhere(f)
	if f.After != "" {
		at, id, err := parseTimeCursor(f.After)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "(t.occurred_at, t.id) < (?, ?)")
		args = append(args, at, id)
	}
	q := `SELECT ` + transcriptListColumns + `
		FROM transcripts t
		JOIN recordings r ON r.id = t.recording_id`
	if len(where) > 0 {
		q += "\n\t\tWHERE " + strings.Join(where, " AND ")
	}
	q += "\n\t\tORDER BY t.occurred_at DESC, t.id DESC LIMIT ?"
	args = append(args, f.Limit+1)
	out, err := db.queryTranscripts(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("find transcripts: %w", err)
	}

	// One row more than asked tells whether a next page exists.
	next := ""
	if len(out) > f.Limit {
		out = out[:f.Limit]
		last := out[len(out)-1]
		next = timeCursor(micros(last.OccurredAt), last.ID)
	}
	if err := db.loadSpeakerNames(ctx, out); err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// transcriptListColumns are transcriptColumns without the full text, which lists never show.
var transcriptListColumns = strings.Replace(transcriptColumns, "t.text", "''", 1)

// transcriptWhere turns the filter's plain conditions into SQL.
func transcriptWhere(f TranscriptFilter) ([]string, []any) {
	var where []string
	var args []any
	if f.Status != nil {
		where = append(where, "t.status = ?")
		args = append(args, *f.Status)
	}
	if f.Language != nil {
		where = append(where, "t.language = ?")
		args = append(args, *f.Language)
	}
	if f.Since != nil {
		where = append(where, "t.occurred_at >= ?")
		args = append(args, micros(*f.Since))
	}
	if f.Until != nil {
		where = append(where, "t.occurred_at < ?")
		args = append(args, micros(*f.Until))
	}
	if f.RecordingID != nil {
		where = append(where, "t.recording_id = ?")
		args = append(args, *f.RecordingID)
	}
	return where, args
}

func (db *DB) queryTranscripts(ctx context.Context, q string, args ...any) ([]Transcript, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Transcript
	for rows.Next() {
		t, err := scanTranscript(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// searchTranscripts runs a full-text search. Terms of three or more characters go to the
// trigram index (as quoted phrases, so nothing in them is FTS5 syntax); shorter ones, which a
// trigram index cannot find, are matched with LIKE on the segments the index returned, or over
// all segments when every term is short. Hits come in segment id order, newest first, and are
// grouped by transcript: a transcript's segments have consecutive ids (they are written in one
// transaction by the single writer), so its hits are adjacent.
func (db *DB) searchTranscripts(ctx context.Context, f TranscriptFilter, terms []string) ([]Transcript, string, error) {
	var phrases, likes []string
	for _, t := range terms {
		if utf8.RuneCountInString(t) >= minTrigram {
			phrases = append(phrases, `"`+strings.ReplaceAll(t, `"`, `""`)+`"`)
		} else {
			likes = append(likes, "%"+escapeLike(t)+"%")
		}
	}
	where, args := transcriptWhere(f)
	before := int64(0)
	if f.After != "" {
		var err error
		if before, err = parseSearchCursor(f.After); err != nil {
			return nil, "", err
		}
	}

	// Drive the query from the index when there is a phrase, else from the segments.
	var q string
	var qargs []any
	idCol := "s.id"
	if len(phrases) > 0 {
		idCol = "segments_fts.rowid"
		q = `SELECT s.id, s.transcript_id, s.idx, s.start_ms, s.speaker, s.text
			FROM segments_fts
			JOIN segments s ON s.id = segments_fts.rowid
			JOIN transcripts t ON t.id = s.transcript_id
			WHERE segments_fts MATCH ?`
		qargs = append(qargs, strings.Join(phrases, " "))
	} else {
		q = `SELECT s.id, s.transcript_id, s.idx, s.start_ms, s.speaker, s.text
			FROM segments s
			JOIN transcripts t ON t.id = s.transcript_id
			WHERE 1`
	}
	for _, l := range likes {
		q += ` AND s.text LIKE ? ESCAPE '\'`
		qargs = append(qargs, l)
	}
	for _, w := range where {
		q += " AND " + w
	}
	qargs = append(qargs, args...)
	if before > 0 {
		q += " AND " + idCol + " < ?"
		qargs = append(qargs, before)
	}
	q += " ORDER BY " + idCol + " DESC"

	// Read hits until one more transcript than the page holds shows up.
	order, hits, more, err := db.groupHits(ctx, f.Limit, q, qargs)
	if err != nil {
		return nil, "", fmt.Errorf("search transcripts: %w", err)
	}
	if len(order) == 0 {
		return nil, "", nil
	}

	// Load the transcripts of the page and attach their hits, in hit order.
	ids := make([]any, len(order))
	for i, id := range order {
		ids[i] = id
	}
	list, err := db.queryTranscripts(ctx, `SELECT `+transcriptListColumns+`
		FROM transcripts t
		JOIN recordings r ON r.id = t.recording_id
		WHERE t.id IN (?`+strings.Repeat(",?", len(ids)-1)+`)`, ids...)
	if err != nil {
		return nil, "", fmt.Errorf("search transcripts: %w", err)
	}
	byID := make(map[int64]Transcript, len(list))
	for _, t := range list {
		byID[t.ID] = t
	}
	out := make([]Transcript, 0, len(order))
	for _, id := range order {
		t, ok := byID[id]
		if !ok {
			continue // deleted between the two queries
		}
		t.Hit = hits[id]
		out = append(out, t)
	}
	if err := db.loadSpeakerNames(ctx, out); err != nil {
		return nil, "", err
	}

	// The next page starts below the last transcript's lowest segment id.
	next := ""
	if more {
		var min int64
		err := db.r.QueryRowContext(ctx, `SELECT min(id) FROM segments WHERE transcript_id = ?`,
			order[len(order)-1]).Scan(&min)
		if err != nil {
			return nil, "", fmt.Errorf("search transcripts: %w", err)
		}
		next = "s" + strconv.FormatInt(min, 10)
	}
	return out, next, nil
}

// groupHits reads matching segments newest first and groups them by transcript, keeping each
// transcript's earliest matching segment. It stops at the first hit of the transcript after
// limit, and reports that one exists.
func (db *DB) groupHits(ctx context.Context, limit int, q string, args []any) ([]int64, map[int64]*SearchHit, bool, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, false, err
	}
	defer rows.Close()
	var order []int64
	hits := map[int64]*SearchHit{}
	for rows.Next() {
		var segID, tid int64
		var h SearchHit
		if err := rows.Scan(&segID, &tid, &h.SegmentIndex, &h.StartMS, &h.Speaker,
			&h.Text); err != nil {
			return nil, nil, false, err
		}
		if prev, ok := hits[tid]; ok {
			h.Matches = prev.Matches + 1
			*prev = h // later rows are earlier segments
			continue
		}
		if len(order) == limit {
			return order, hits, true, nil
		}
		h.Matches = 1
		order = append(order, tid)
		hits[tid] = &h
	}
	return order, hits, false, rows.Err()
}

// escapeLike escapes LIKE's wildcards for ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// parseSearchCursor decodes a search page cursor ("s<segment id>").
func parseSearchCursor(c string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimPrefix(c, "s"), 10, 64)
	if !strings.HasPrefix(c, "s") || err != nil || n <= 0 {
		return 0, &ValidationError{Message: "invalid page cursor"}
	}
	return n, nil
}
