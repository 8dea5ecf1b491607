package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
)

// mustCreateEvent stores a verified delivery with a unique dedupe key and returns its event id.
func mustCreateEvent(tb testing.TB, d *DB, key string) int64 {
	tb.Helper()
	res, err := d.CreateDelivery(context.Background(), verified([]byte(`{"k":"`+key+`"}`), key))
	if err != nil {
		tb.Fatal(err)
	}
	return res.EventID
}

// mustRecord stores a recording event and returns the result.
func mustRecord(tb testing.TB, d *DB, ev RecordingEvent) RecordingEventResult {
	tb.Helper()
	res, err := d.CreateRecordingEvent(context.Background(), ev)
	if err != nil {
		tb.Fatalf("CreateRecordingEvent(%d): %v", ev.EventID, err)
	}
	return res
}

// content builds a completed transcript whose segments alternate between speakers.
func content(status string, texts ...string) *TranscriptContent {
	c := &TranscriptContent{Status: status, Language: "en", DurationMS: int64(len(texts)) * 1000}
	for i, s := range texts {
		c.Segments = append(c.Segments, Segment{Index: i, StartMS: int64(i) * 1000,
			EndMS: int64(i)*1000 + 900, Speaker: fmt.Sprintf("Speaker %d", i%2+1), Text: s})
	}
	c.Text = strings.Join(texts, " ")
	return c
}

func at(hour, min int) time.Time { return time.Date(2026, 3, 24, hour, min, 0, 0, time.UTC) }

// ftsIntegrity runs FTS5's own consistency check of the index against the segments table.
func ftsIntegrity(tb testing.TB, d *DB) {
	tb.Helper()
	if _, err := d.w.Exec(`INSERT INTO segments_fts (segments_fts, rank)
		VALUES ('integrity-check', 1)`); err != nil {
		tb.Fatalf("FTS index out of step with segments: %v", err)
	}
}

// TestRecordingTimeline plays the events of one recording out of order: the recording is
// merged from two partial ones, its status never regresses, and late arrivals are marked.
func TestRecordingTimeline(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	synced := mustCreateEvent(t, d, "synced")
	txn := mustCreateEvent(t, d, "txn")
	recorded := mustCreateEvent(t, d, "recorded")
	progress := mustCreateEvent(t, d, "progress")

	// A transcription event knows only its transcription id: a recording of its own.
	r1 := mustRecord(t, d, RecordingEvent{EventID: txn, TranscriptionID: "T",
		Status: RecordingTranscribed, OccurredAt: at(10, 2), ReceivedAt: at(10, 3),
		Transcript: content(TranscriptCompleted, "hello there", "general kenobi")})
	if !r1.TranscriptCreated || r1.TranscriptID == 0 {
		t.Fatalf("first transcript: %+v, want created", r1)
	}

	// device.synced knows only the file id: another recording.
	r2 := mustRecord(t, d, RecordingEvent{EventID: synced, FileID: "F", Title: "Weekly sync.opus",
		Status: RecordingUploaded, Uploaded: true, OccurredAt: at(9, 58), ReceivedAt: at(10, 5)})
	if r2.RecordingID == r1.RecordingID {
		t.Fatalf("synced joined the transcription's recording before anything linked them")
	}

	// device.recording_completed names both: the two recordings become one (the older id).
	r3 := mustRecord(t, d, RecordingEvent{EventID: recorded, FileID: "F", TranscriptionID: "T",
		Status: RecordingRecorded, Uploaded: true, OccurredAt: at(10, 1), ReceivedAt: at(10, 6)})
	if r3.RecordingID != r1.RecordingID {
		t.Errorf("merged recording = %d, want the older %d", r3.RecordingID, r1.RecordingID)
	}
	if _, err := d.FindRecordingByID(ctx, r2.RecordingID); !errors.Is(err, ErrNotFound) {
		t.Errorf("merged-away recording: err = %v, want ErrNotFound", err)
	}

	// A progress report that happened before completion arrives last: no regression.
	mustRecord(t, d, RecordingEvent{EventID: progress, TranscriptionID: "T",
		Status: RecordingTranscribing, OccurredAt: at(10, 0), ReceivedAt: at(10, 7),
		Transcript: &TranscriptContent{Status: TranscriptProcessing}})

	rec, err := d.FindRecordingByID(ctx, r1.RecordingID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != RecordingTranscribed || !rec.HasTranscript {
		t.Errorf("status = %q (has transcript %v), want transcribed", rec.Status, rec.HasTranscript)
	}
	if rec.FileID != "F" || rec.TranscriptionID != "T" || rec.Title != "Weekly sync.opus" {
		t.Errorf("recording = %+v, want file F, transcription T, the synced title", rec)
	}
	if !rec.UploadedAt.Equal(at(9, 58)) || !rec.LastEventAt.Equal(at(10, 2)) {
		t.Errorf("uploaded %v, last event %v; want 09:58 and 10:02", rec.UploadedAt, rec.LastEventAt)
	}
	if rec.Overdue(at(12, 0)) {
		t.Errorf("a transcribed recording is flagged overdue")
	}

	// The transcript kept the completed content.
	tr, err := d.FindTranscriptByID(ctx, r1.TranscriptID)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Status != TranscriptCompleted || len(tr.Segments) != 2 || tr.RecordingID != rec.ID {
		t.Errorf("transcript = %s with %d segments in recording %d, want completed, 2, %d",
			tr.Status, len(tr.Segments), tr.RecordingID, rec.ID)
	}

	// The timeline is in order of occurrence, late arrivals marked.
	evs, err := d.FindRecordingEvents(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, fmt.Sprintf("%d late=%v", ev.EventID, ev.Late))
	}
	want := []string{
		fmt.Sprintf("%d late=true", synced),   // happened first, arrived after txn
		fmt.Sprintf("%d late=true", progress), // happened at 10:00, arrived last
		fmt.Sprintf("%d late=true", recorded), // 10:01, arrived after txn (10:02)
		fmt.Sprintf("%d late=false", txn),
	}
	if !slices.Equal(got, want) {
		t.Errorf("timeline = %q, want %q", got, want)
	}

	// The event links resolve to the recording and, for transcript carriers, the transcript.
	link, err := d.FindRecordingEventByEventID(ctx, txn)
	if err != nil || link.RecordingID != rec.ID || link.TranscriptID != tr.ID {
		t.Errorf("event link = %+v, %v; want recording %d transcript %d", link, err, rec.ID, tr.ID)
	}
	if _, err := d.FindRecordingEventByEventID(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown event link err = %v, want ErrNotFound", err)
	}
	ftsIntegrity(t, d)
}

// TestRecordingOrderIndependent applies the same events in every order: the recording and its
// transcript end up the same.
func TestRecordingOrderIndependent(t *testing.T) {
	type step struct {
		key string
		ev  RecordingEvent
	}
	steps := []step{
		{"synced", RecordingEvent{FileID: "F", Status: RecordingUploaded, Uploaded: true,
			OccurredAt: at(9, 0)}},
		{"failed", RecordingEvent{FileID: "F", TranscriptionID: "T", Status: RecordingFailed,
			OccurredAt: at(9, 30), Transcript: &TranscriptContent{Status: TranscriptFailed,
				ErrorCode: "E", ErrorMessage: "boom"}}},
		{"retried", RecordingEvent{TranscriptionID: "T", Status: RecordingTranscribed,
			OccurredAt: at(10, 0), Transcript: content(TranscriptCompleted, "finally")}},
	}
	orders := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, order := range orders {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			ctx := context.Background()
			d := mustOpenDB(t, Options{})
			ids := map[string]int64{}
			for _, s := range steps {
				ids[s.key] = mustCreateEvent(t, d, s.key)
			}
			var res RecordingEventResult
			for n, i := range order {
				ev := steps[i].ev
				ev.EventID = ids[steps[i].key]
				ev.ReceivedAt = at(11, n)
				res = mustRecord(t, d, ev)
			}
			rec, err := d.FindRecordingByID(ctx, res.RecordingID)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Status != RecordingTranscribed || !rec.HasTranscript {
				t.Errorf("status = %q, want transcribed", rec.Status)
			}
			ts, _, err := d.FindTranscripts(ctx, TranscriptFilter{})
			if err != nil || len(ts) != 1 {
				t.Fatalf("transcripts = %d (%v), want 1", len(ts), err)
			}
			if ts[0].Status != TranscriptCompleted || ts[0].EventID != ids["retried"] {
				t.Errorf("transcript = %s from event %d, want completed from %d",
					ts[0].Status, ts[0].EventID, ids["retried"])
			}
			recs, _, _ := d.FindRecordings(ctx, RecordingFilter{})
			if len(recs) != 1 {
				t.Errorf("recordings = %d, want 1", len(recs))
			}
		})
	}
}

// TestRecordingRerunIdempotent re-runs every event: ids, content and the index stay as they
// were, and an improved reading of the same event replaces the content.
func TestRecordingRerunIdempotent(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	e1 := mustCreateEvent(t, d, "e1")
	e2 := mustCreateEvent(t, d, "e2")
	ev1 := RecordingEvent{EventID: e1, FileID: "F", TranscriptionID: "T", Status: RecordingTranscribed,
		OccurredAt: at(9, 0), ReceivedAt: at(9, 1), Transcript: content(TranscriptCompleted, "alpha", "beta")}
	ev2 := RecordingEvent{EventID: e2, FileID: "G", Status: RecordingUploaded, Uploaded: true,
		OccurredAt: at(9, 0), ReceivedAt: at(9, 1)}
	first := mustRecord(t, d, ev1)
	only := mustRecord(t, d, ev2)

	var segIDs []int64
	segs := func() []int64 {
		rows, _ := d.r.Query(`SELECT id FROM segments ORDER BY id`)
		defer rows.Close()
		var ids []int64
		for rows.Next() {
			var id int64
			rows.Scan(&id)
			ids = append(ids, id)
		}
		return ids
	}
	segIDs = segs()

	again := mustRecord(t, d, ev1)
	if again.RecordingID != first.RecordingID || again.TranscriptID != first.TranscriptID ||
		again.TranscriptCreated || again.TranscriptChanged {
		t.Errorf("re-run = %+v, want the same ids and no change (first %+v)", again, first)
	}
	if again := mustRecord(t, d, ev2); again.RecordingID != only.RecordingID {
		t.Errorf("re-run of a lone event moved it to recording %d, want %d", again.RecordingID,
			only.RecordingID)
	}
	if got := segs(); !slices.Equal(got, segIDs) {
		t.Errorf("segment ids after re-run = %v, want unchanged %v", got, segIDs)
	}

	// A better reading of the same event (a parser upgrade) replaces the content.
	ev1.Transcript = content(TranscriptCompleted, "alpha", "beta", "gamma")
	changed := mustRecord(t, d, ev1)
	if !changed.TranscriptChanged || changed.TranscriptID != first.TranscriptID {
		t.Errorf("upgraded re-run = %+v, want changed in place", changed)
	}
	tr, _ := d.FindTranscriptByID(ctx, first.TranscriptID)
	if len(tr.Segments) != 3 || tr.SegmentCount != 3 {
		t.Errorf("segments = %d (count %d), want 3", len(tr.Segments), tr.SegmentCount)
	}
	ftsIntegrity(t, d)
}

// TestTranscriptPrecedence checks which source a transcript keeps when several events carry it.
func TestTranscriptPrecedence(t *testing.T) {
	tests := []struct {
		name       string
		first      *TranscriptContent
		firstAt    time.Time
		second     *TranscriptContent
		secondAt   time.Time
		wantStatus string
		wantText   string
	}{
		{"progress after completion is ignored", content(TranscriptCompleted, "done"), at(10, 0),
			&TranscriptContent{Status: TranscriptProcessing}, at(9, 0), TranscriptCompleted, "done"},
		{"completion after progress wins", &TranscriptContent{Status: TranscriptProcessing},
			at(9, 0), content(TranscriptCompleted, "done"), at(10, 0), TranscriptCompleted, "done"},
		{"a newer final status wins", content(TranscriptFailed), at(9, 0),
			content(TranscriptCompleted, "retry"), at(10, 0), TranscriptCompleted, "retry"},
		{"an older final status arriving last loses", content(TranscriptCompleted, "new"),
			at(10, 0), content(TranscriptCompleted, "old"), at(9, 0), TranscriptCompleted, "new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			d := mustOpenDB(t, Options{})
			a, b := mustCreateEvent(t, d, "a"), mustCreateEvent(t, d, "b")
			mustRecord(t, d, RecordingEvent{EventID: a, TranscriptionID: "T", OccurredAt: tt.firstAt,
				ReceivedAt: at(11, 0), Transcript: tt.first})
			res := mustRecord(t, d, RecordingEvent{EventID: b, TranscriptionID: "T",
				OccurredAt: tt.secondAt, ReceivedAt: at(11, 1), Transcript: tt.second})
			tr, err := d.FindTranscriptByID(ctx, res.TranscriptID)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Status != tt.wantStatus || tr.Text != tt.wantText {
				t.Errorf("transcript = %s %q, want %s %q", tr.Status, tr.Text, tt.wantStatus, tt.wantText)
			}
			// Both events link to the one transcript.
			for _, id := range []int64{a, b} {
				if got, err := d.FindTranscriptByEventID(ctx, id); err != nil || got.ID != tr.ID {
					t.Errorf("transcript of event %d = %d (%v), want %d", id, got.ID, err, tr.ID)
				}
			}
			ftsIntegrity(t, d)
		})
	}
}

func TestOverdueRecordings(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	old := mustCreateEvent(t, d, "old")
	fresh := mustCreateEvent(t, d, "fresh")
	failed := mustCreateEvent(t, d, "failed")
	mustRecord(t, d, RecordingEvent{EventID: old, FileID: "old", Status: RecordingUploaded,
		Uploaded: true, OccurredAt: at(9, 0), ReceivedAt: at(9, 0)})
	mustRecord(t, d, RecordingEvent{EventID: fresh, FileID: "fresh", Status: RecordingUploaded,
		Uploaded: true, OccurredAt: at(10, 30), ReceivedAt: at(10, 30)})
	mustRecord(t, d, RecordingEvent{EventID: failed, FileID: "failed", Status: RecordingFailed,
		OccurredAt: at(9, 0), ReceivedAt: at(9, 0),
		Transcript: &TranscriptContent{Status: TranscriptFailed, ErrorMessage: "x"}})

	now := at(11, 0)
	cutoff := now.Add(-TranscriptDeadline)
	recs, _, err := d.FindRecordings(ctx, RecordingFilter{OverdueAt: &cutoff})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].FileID != "old" || !recs[0].Overdue(now) {
		t.Errorf("overdue = %+v, want only the recording uploaded at 09:00", recs)
	}
	all, _, _ := d.FindRecordings(ctx, RecordingFilter{})
	for _, r := range all {
		if want := r.FileID == "old"; r.Overdue(now) != want {
			t.Errorf("recording %s Overdue = %v, want %v", r.FileID, r.Overdue(now), want)
		}
	}
}

// seedTranscripts stores n transcripts, each from its own event, with the given segment texts
// (%d replaced by the transcript number) and occurrence times a minute apart.
func seedTranscripts(tb testing.TB, d *DB, n int, texts ...string) []int64 {
	tb.Helper()
	var ids []int64
	for i := range n {
		e := mustCreateEvent(tb, d, fmt.Sprintf("seed-%d", i))
		var ts []string
		for _, s := range texts {
			ts = append(ts, strings.ReplaceAll(s, "%d", fmt.Sprint(i)))
		}
		c := content(TranscriptCompleted, ts...)
		if i%3 == 0 {
			c.Language = "ja"
		}
		res := mustRecord(tb, d, RecordingEvent{EventID: e, TranscriptionID: fmt.Sprintf("T%d", i),
			Status: RecordingTranscribed, OccurredAt: at(0, 0).Add(time.Duration(i) * time.Minute),
			ReceivedAt: at(0, 0), Transcript: c})
		ids = append(ids, res.TranscriptID)
	}
	return ids
}

func TestFindTranscriptsPages(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	ids := seedTranscripts(t, d, 23, "segment one of %d", "the hiring plan for team %d")

	// List mode: newest first, every transcript once.
	var seen []int64
	after := ""
	for page := 0; ; page++ {
		ts, next, err := d.FindTranscripts(ctx, TranscriptFilter{After: after, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range ts {
			seen = append(seen, tr.ID)
			if tr.Text != "" || tr.Hit != nil {
				t.Errorf("list row carries text %q / hit %v", tr.Text, tr.Hit)
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	want := slices.Clone(ids)
	slices.Reverse(want)
	if !slices.Equal(seen, want) {
		t.Errorf("list order = %v, want %v", seen, want)
	}

	// Search mode pages too: the same transcripts, no repeats.
	seen = nil
	after = ""
	for {
		ts, next, err := d.FindTranscripts(ctx, TranscriptFilter{Terms: []string{"hiring"},
			After: after, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range ts {
			seen = append(seen, tr.ID)
			if tr.Hit == nil || tr.Hit.SegmentIndex != 1 || tr.Hit.Matches != 1 {
				t.Errorf("hit = %+v, want segment 1, 1 match", tr.Hit)
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	if !slices.Equal(seen, want) {
		t.Errorf("search order = %v, want %v", seen, want)
	}

	// Filters, and a cursor of the wrong kind.
	ja := "ja"
	ts, _, err := d.FindTranscripts(ctx, TranscriptFilter{Language: &ja, Terms: []string{"team 9"}})
	if err != nil || len(ts) != 1 || ts[0].ID != ids[9] {
		t.Errorf("search team 9 in ja = %v (%v), want transcript %d", ts, err, ids[9])
	}
	since, until := at(0, 5), at(0, 8)
	ts, _, _ = d.FindTranscripts(ctx, TranscriptFilter{Since: &since, Until: &until})
	if len(ts) != 3 {
		t.Errorf("transcripts 00:05–00:08 = %d, want 3", len(ts))
	}
	var ve *ValidationError
	if _, _, err := d.FindTranscripts(ctx, TranscriptFilter{After: "s12"}); !errors.As(err, &ve) {
		t.Errorf("list with a search cursor: err = %v, want a validation error", err)
	}
	if _, _, err := d.FindTranscripts(ctx, TranscriptFilter{Terms: []string{"x"},
		After: "1.2"}); !errors.As(err, &ve) {
		t.Errorf("search with a list cursor: err = %v, want a validation error", err)
	}
}

// TestSearchTerms covers the term forms: long terms through the index, short ones through
// LIKE, FTS5 syntax taken literally, case-insensitivity.
func TestSearchTerms(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	ids := seedTranscripts(t, d, 1, "Quick memo: the loading dock door is sticking.",
		"価格は税込み 19,800 円です。", "投诉最多的问题是什么？", `He said "NEAR(a b)" and 100% * OR -x`)
	tests := []struct {
		terms []string
		want  int // matching segment index, -1 for no match
	}{
		{[]string{"LOADING dock"}, 0},
		{[]string{"loading", "sticking"}, 0},
		{[]string{"loading", "価格"}, -1}, // terms must share a segment
		{[]string{"税込み"}, 1},
		{[]string{"円"}, 1},        // one character: LIKE
		{[]string{"问题"}, 2},       // two characters: LIKE
		{[]string{"投诉", "什么"}, 2}, // LIKE only, two terms
		{[]string{`"NEAR(a b)"`}, 3},
		{[]string{"100%"}, 3},
		{[]string{"0%"}, 3},
		{[]string{"* OR -x"}, 3},
		{[]string{"%"}, 3},
		{[]string{"_"}, -1},
		{[]string{"absent words"}, -1},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.terms, "+"), func(t *testing.T) {
			ts, _, err := d.FindTranscripts(ctx, TranscriptFilter{Terms: tt.terms})
			if err != nil {
				t.Fatal(err)
			}
			if tt.want < 0 {
				if len(ts) != 0 {
					t.Errorf("found %d transcripts, want none", len(ts))
				}
				return
			}
			if len(ts) != 1 || ts[0].ID != ids[0] || ts[0].Hit == nil {
				t.Fatalf("found %v, want transcript %d with a hit", ts, ids[0])
			}
			if ts[0].Hit.SegmentIndex != tt.want {
				t.Errorf("hit segment = %d, want %d", ts[0].Hit.SegmentIndex, tt.want)
			}
		})
	}
}

func TestSpeakerRename(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	id := seedTranscripts(t, d, 1, "a", "b", "c")[0]

	if err := d.UpdateSpeakerName(ctx, id, "Speaker 2", "  Alice  ", "admin", 1); err != nil {
		t.Fatal(err)
	}
	tr, _ := d.FindTranscriptByID(ctx, id)
	want := []Speaker{{Label: "Speaker 1", Name: "Speaker 1"},
		{Label: "Speaker 2", Name: "Alice", Renamed: true, RenamedBy: "admin", RenamedAt: testNow}}
	if !slices.Equal(tr.Speakers, want) {
		t.Errorf("speakers = %+v, want %+v", tr.Speakers, want)
	}
	if tr.Segments[1].Speaker != "Speaker 2" || tr.SpeakerName("Speaker 2") != "Alice" {
		t.Errorf("segment label %q, name %q; the label must stay, the name change",
			tr.Segments[1].Speaker, tr.SpeakerName("Speaker 2"))
	}

	// The list shows the name too; an empty name restores the label.
	ts, _, _ := d.FindTranscripts(ctx, TranscriptFilter{})
	if ts[0].Speakers[1].Name != "Alice" {
		t.Errorf("list speaker = %q, want Alice", ts[0].Speakers[1].Name)
	}
	if err := d.UpdateSpeakerName(ctx, id, "Speaker 2", "", "admin", 1); err != nil {
		t.Fatal(err)
	}
	tr, _ = d.FindTranscriptByID(ctx, id)
	if tr.Speakers[1].Renamed || tr.Speakers[1].Name != "Speaker 2" {
		t.Errorf("after reset speaker = %+v, want the original label", tr.Speakers[1])
	}

	var ve *ValidationError
	if err := d.UpdateSpeakerName(ctx, id, "Speaker 9", "X", "admin", 1); !errors.As(err, &ve) {
		t.Errorf("unknown label: err = %v, want a validation error", err)
	}
	if err := d.UpdateSpeakerName(ctx, id, "Speaker 1", strings.Repeat("é", 81), "admin", 1); !errors.As(err, &ve) {
		t.Errorf("long name: err = %v, want a validation error", err)
	}
	if err := d.UpdateSpeakerName(ctx, 999, "Speaker 1", "X", "admin", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown transcript: err = %v, want ErrNotFound", err)
	}
}

func TestBlurSetting(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	u, err := d.CreateUser(ctx, "viewer", "hash", RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []bool{false, true, false} {
		if want {
			if err := d.UpdateUserBlurTranscripts(ctx, u.ID, true); err != nil {
				t.Fatal(err)
			}
		} else if err := d.UpdateUserBlurTranscripts(ctx, u.ID, false); err != nil {
			t.Fatal(err)
		}
		if got, err := d.FindUserBlurTranscripts(ctx, u.ID); err != nil || got != want {
			t.Errorf("blur = %v (%v), want %v", got, err, want)
		}
	}
	if err := d.UpdateUserBlurTranscripts(ctx, 999, true); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown user: err = %v, want ErrNotFound", err)
	}
}

// cjkSegments reads the segment texts of the Japanese and Chinese fixtures.
func cjkSegments(tb testing.TB) []string {
	tb.Helper()
	var out []string
	for _, name := range []string{"audio_transcribe.completed.cjk-ja.json",
		"transcription.completed.cjk-zh.json"} {
		b, err := os.ReadFile(filepath.Join("..", "web", "plaud", "testdata", name))
		if err != nil {
			tb.Fatal(err)
		}
		var body struct {
			Data struct {
				Segments []struct{ Text string } `json:"segments"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &body); err != nil {
			tb.Fatal(err)
		}
		for _, s := range body.Data.Segments {
			out = append(out, s.Text)
		}
	}
	return out
}

// TestTokenizerCJK measures why the index uses the trigram tokenizer: over the Japanese and
// Chinese fixtures it asks both tokenizers for every 3- and 4-character run of letters (the
// length of most CJK words and names) and counts how many each finds. unicode61 splits only at
// spaces and punctuation, so a sentence of CJK is one long token and words inside it are not
// found; trigram finds every one.
func TestTokenizerCJK(t *testing.T) {
	d := mustOpenDB(t, Options{})
	texts := cjkSegments(t)
	for _, tok := range []string{"trigram", "unicode61"} {
		if _, err := d.w.Exec(`CREATE VIRTUAL TABLE probe_` + tok + ` USING fts5 (text,
			tokenize = '` + tok + `')`); err != nil {
			t.Fatal(err)
		}
		for _, s := range texts {
			if _, err := d.w.Exec(`INSERT INTO probe_`+tok+` (text) VALUES (?)`, s); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Every run of 3 or 4 letters (no spaces or punctuation) is a query.
	queries := map[string]bool{}
	for _, s := range texts {
		r := []rune(s)
		for n := 3; n <= 4; n++ {
			for i := 0; i+n <= len(r); i++ {
				w := r[i : i+n]
				if !slices.ContainsFunc(w, func(c rune) bool { return !unicode.IsLetter(c) }) {
					queries[string(w)] = true
				}
			}
		}
	}
	found := map[string]int{}
	for q := range queries {
		for _, tok := range []string{"trigram", "unicode61"} {
			var n int
			err := d.r.QueryRow(`SELECT count(*) FROM probe_`+tok+` WHERE probe_`+tok+
				` MATCH ?`, `"`+q+`"`).Scan(&n)
			if err != nil {
				t.Fatalf("%s %q: %v", tok, q, err)
			}
			if n > 0 {
				found[tok]++
			}
		}
	}
	t.Logf("CJK words found: trigram %d of %d, unicode61 %d of %d", found["trigram"],
		len(queries), found["unicode61"], len(queries))
	if found["trigram"] != len(queries) {
		t.Errorf("trigram found %d of %d CJK words, want all", found["trigram"], len(queries))
	}
	if found["unicode61"]*10 > len(queries) {
		t.Errorf("unicode61 found %d of %d: the measurement no longer supports trigram",
			found["unicode61"], len(queries))
	}
}
