package web

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
	"github.com/plaudhook/plaudhook/web/plaud"
)

// transcriptStore is what the transcript and recording pages, their API and normalising need
// from storage.
type transcriptStore interface {
	CreateRecordingEvent(ctx context.Context, ev db.RecordingEvent) (db.RecordingEventResult, error)
	FindTranscripts(ctx context.Context, f db.TranscriptFilter) ([]db.Transcript, string, error)
	FindTranscriptByID(ctx context.Context, id int64) (db.Transcript, error)
	FindTranscriptByEventID(ctx context.Context, eventID int64) (db.Transcript, error)
	FindRecordingEventByEventID(ctx context.Context, eventID int64) (db.RecordingEvent, error)
	FindRecordings(ctx context.Context, f db.RecordingFilter) ([]db.Recording, string, error)
	FindRecordingByID(ctx context.Context, id int64) (db.Recording, error)
	FindRecordingEvents(ctx context.Context, recordingID int64) ([]db.RecordingEvent, error)
	UpdateSpeakerName(ctx context.Context, transcriptID int64, label, name, actor string, actorID int64) error
	FindUserBlurTranscripts(ctx context.Context, userID int64) (bool, error)
	UpdateUserBlurTranscripts(ctx context.Context, userID int64, on bool) error
}

// Search limits: enough for any real query, small enough to keep one query cheap.
const (
	maxSearchTerms = 10
	maxTermRunes   = 200
)

// searchTerms splits a search into terms: words separated by spaces, or "quoted phrases".
func searchTerms(q string) []string {
	var terms []string
	for len(terms) < maxSearchTerms {
		q = strings.TrimSpace(q)
		if q == "" {
			break
		}
		var term string
		if rest, ok := strings.CutPrefix(q, `"`); ok {
			term, q, _ = strings.Cut(rest, `"`)
		} else if i := strings.IndexAny(q, " \t\n\r\u3000"); i >= 0 {
			term, q = q[:i], q[i:]
		} else {
			term, q = q, ""
		}
		term = strings.Join(strings.Fields(term), " ")
		if utf8.RuneCountInString(term) > maxTermRunes {
			term = string([]rune(term)[:maxTermRunes])
		}
		if term != "" {
			terms = append(terms, term)
		}
	}
	return terms
}

// transcriptFilter reads the filters shared by the page and the API: status, language and a
// date range (from/to as dates on the page, since/until as times in the API).
func transcriptFilter(r *http.Request) (db.TranscriptFilter, error) {
	q := r.URL.Query()
	f := db.TranscriptFilter{Terms: searchTerms(q.Get("q"))}
	switch v := q.Get("status"); v {
	case "":
	case db.TranscriptCompleted, db.TranscriptFailed, db.TranscriptProcessing:
		f.Status = &v
	default:
		return f, badRequest("status must be completed, failed or processing")
	}
	if v := strings.TrimSpace(q.Get("language")); v != "" {
		f.Language = &v
	}
	for _, d := range []struct {
		name string
		dst  **time.Time
		add  time.Duration
	}{{"from", &f.Since, 0}, {"to", &f.Until, 24 * time.Hour}} {
		v := q.Get(d.name)
		if v == "" {
			continue
		}
		day, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return f, badRequest(d.name + " must be a date (2026-01-31)")
		}
		day = day.Add(d.add)
		*d.dst = &day
	}
	return f, nil
}

// userBlur reports whether the signed-in user wants transcript text blurred.
func (s *Server) userBlur(r *http.Request) bool {
	u, ok := userFrom(r.Context())
	if !ok {
		return false
	}
	on, err := s.store.FindUserBlurTranscripts(r.Context(), u.ID)
	if err != nil {
		s.log.Warn("read blur setting", "error", err)
	}
	return on
}

// handleTranscriptIndex lists transcripts, newest first, or searches them. The first
// unfiltered page gains new transcripts live.
func (s *Server) handleTranscriptIndex(w http.ResponseWriter, r *http.Request) {
	f, err := transcriptFilter(r)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	q := r.URL.Query()
	f.After, f.Limit = q.Get("after"), 50
	props := views.TranscriptListProps{Query: strings.TrimSpace(q.Get("q")), Terms: f.Terms,
		Status: q.Get("status"), Language: q.Get("language"), From: q.Get("from"),
		To: q.Get("to")}

	ts, next, err := s.store.FindTranscripts(r.Context(), f)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	props.Transcripts, props.Next = ts, next
	props.Live = f.After == "" && !props.Filtered()
	props.Blur = s.userBlur(r)
	s.render(w, r, views.TranscriptList(s.page(r, "Transcripts", "transcripts"), props))
}

// handleTranscriptView shows one transcript, highlighting an in-page search given as q.
func (s *Server) handleTranscriptView(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	t, err := s.store.FindTranscriptByID(r.Context(), id)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	query := strings.TrimSpace(r.URL.Query().Get("q"))
	props := views.TranscriptPageProps{Transcript: t, Query: query, Terms: searchTerms(query),
		Blur: s.userBlur(r)}
	props.Matches = views.CountMatches(t.Segments, props.Terms)
	if u, ok := userFrom(r.Context()); ok {
		props.CanRename = u.Role.Allows(db.RoleOperator)
	}
	s.render(w, r, views.TranscriptPage(s.page(r, views.TranscriptTitle(t), "transcripts"), props))
}

// handleSpeakerRename names a speaker of a transcript for the whole team (an empty name
// restores the original label), records who did it, and goes back to the transcript.
func (s *Server) handleSpeakerRename(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	label, name := r.PostFormValue("label"), strings.TrimSpace(r.PostFormValue("name"))
	u, _ := userFrom(r.Context())

	if err := s.store.UpdateSpeakerName(r.Context(), id, label, name, u.Username, u.ID); err != nil {
		s.respondError(w, r, err)
		return
	}
	detail := label + " → " + name
	if name == "" {
		detail = label + " → original label"
	}
	s.audit(r, "transcript.speaker_rename", "transcript "+strconv.FormatInt(id, 10), detail)
	http.Redirect(w, r, views.TranscriptURL(id)+"#speakers", http.StatusSeeOther)
}

// handleTranscriptPrivacy stores the user's "blur transcript text" setting and goes back.
func (s *Server) handleTranscriptPrivacy(w http.ResponseWriter, r *http.Request) {
	var on bool
	switch r.PostFormValue("blur") {
	case "on":
		on = true
	case "off":
	default:
		s.respondError(w, r, badRequest("blur must be on or off"))
		return
	}
	u, _ := userFrom(r.Context())
	if err := s.store.UpdateUserBlurTranscripts(r.Context(), u.ID, on); err != nil {
		s.respondError(w, r, err)
		return
	}
	next := safeNext(r.PostFormValue("next"))
	if next == "/" {
		next = "/transcripts"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// handleRecordingIndex lists recordings, optionally only those without a transcript an hour
// after upload.
func (s *Server) handleRecordingIndex(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now := s.now()
	props := views.RecordingListProps{Overdue: q.Get("overdue") != "", Now: now}
	f := db.RecordingFilter{After: q.Get("after"), Limit: 50}
	if props.Overdue {
		cutoff := now.Add(-db.TranscriptDeadline)
		f.OverdueAt = &cutoff
	}
	recs, next, err := s.store.FindRecordings(r.Context(), f)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	props.Recordings, props.Next = recs, next
	s.render(w, r, views.RecordingList(s.page(r, "Recordings", "transcripts"), props))
}

// handleRecordingView shows one recording's timeline and transcripts.
func (s *Server) handleRecordingView(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	rec, err := s.store.FindRecordingByID(r.Context(), id)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	evs, err := s.store.FindRecordingEvents(r.Context(), id)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	ts, _, err := s.store.FindTranscripts(r.Context(), db.TranscriptFilter{RecordingID: &id,
		Limit: 500})
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	props := views.RecordingPageProps{Recording: rec, Events: evs, Transcripts: ts, Now: s.now()}
	s.render(w, r, views.RecordingPage(s.page(r, views.RecordingTitle(rec), "transcripts"), props))
}

// eventTranscript fills the transcript part of an event's page: the transcript and recording
// it belongs to, and what could not be read from a transcription payload.
func (s *Server) eventTranscript(ctx context.Context, props *views.EventPageProps) {
	tr, carries := plaud.ParseTranscript(props.Body)
	props.CarriesTranscript = carries
	if carries {
		props.Missing = tr.Missing
	}
	link, err := s.store.FindRecordingEventByEventID(ctx, props.Event.ID)
	if err != nil {
		if !errors.Is(err, db.ErrNotFound) {
			s.log.Warn("find recording of event", "event_id", props.Event.ID, "error", err)
		}
		return
	}
	props.RecordingID = link.RecordingID
	if link.TranscriptID == 0 {
		return
	}
	t, err := s.store.FindTranscriptByEventID(ctx, props.Event.ID)
	if err != nil {
		s.log.Warn("find transcript of event", "event_id", props.Event.ID, "error", err)
		return
	}
	props.Transcript = &t
}

// apiTranscript is a transcript as the API lists it.
type apiTranscript struct {
	ID              int64             `json:"id"`
	RecordingID     int64             `json:"recording_id"`
	EventID         int64             `json:"event_id"`
	Title           string            `json:"title"`
	FileID          string            `json:"file_id"`
	TranscriptionID string            `json:"transcription_id"`
	Status          string            `json:"status"`
	Language        string            `json:"language"`
	DurationMS      int64             `json:"duration_ms"`
	Speakers        []apiSpeaker      `json:"speakers"`
	SegmentCount    int               `json:"segment_count"`
	OccurredAt      time.Time         `json:"occurred_at"`
	URL             string            `json:"url"`
	Error           *apiTranscriptErr `json:"error"`   // null unless the payload carried one
	Missing         []string          `json:"missing"` // what the payload did not say
	Snippet         *string           `json:"snippet,omitempty"`
	Match           *apiTranscriptHit `json:"match,omitempty"`
	Exports         map[string]string `json:"exports"` // format → download URL
	// Text and Segments are only in a single transcript (and its JSON export).
	Text     *string       `json:"text,omitempty"`
	Segments *[]apiSegment `json:"segments,omitempty"`
}

// apiSpeaker is a speaker label and the team's name for it (the label when not renamed).
type apiSpeaker struct {
	Label string `json:"label"`
	Name  string `json:"name"`
}

// apiTranscriptErr is a failed transcription's error.
type apiTranscriptErr struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// apiTranscriptHit is where a full-text search matched: the first matching segment.
type apiTranscriptHit struct {
	SegmentIndex int    `json:"segment_index"`
	StartMS      int64  `json:"start_ms"`
	Speaker      string `json:"speaker"`
	Matches      int    `json:"matches"` // matching segments in this transcript
	URL          string `json:"url"`     // the transcript page at that segment
}

// apiSegment is one segment with the team's name for its speaker.
type apiSegment struct {
	Index       int    `json:"index"`
	StartMS     int64  `json:"start_ms"`
	EndMS       int64  `json:"end_ms"`
	Speaker     string `json:"speaker"`
	SpeakerName string `json:"speaker_name"`
	Text        string `json:"text"`
}

func toAPITranscript(t db.Transcript, terms []string) apiTranscript {
	a := apiTranscript{ID: t.ID, RecordingID: t.RecordingID, EventID: t.EventID,
		Title: views.TranscriptTitle(t), FileID: t.FileID, TranscriptionID: t.TranscriptionID,
		Status: t.Status, Language: t.Language, DurationMS: t.DurationMS,
		Speakers: []apiSpeaker{}, SegmentCount: t.SegmentCount, OccurredAt: t.OccurredAt,
		URL: views.TranscriptURL(t.ID), Missing: t.Missing, Exports: map[string]string{}}
	for _, s := range t.Speakers {
		a.Speakers = append(a.Speakers, apiSpeaker{Label: s.Label, Name: s.Name})
	}
	if a.Missing == nil {
		a.Missing = []string{}
	}
	if t.ErrorCode != "" || t.ErrorMessage != "" {
		a.Error = &apiTranscriptErr{Code: t.ErrorCode, Message: t.ErrorMessage}
	}
	for _, f := range exportNames {
		a.Exports[f] = "/api/v1/transcripts/" + strconv.FormatInt(t.ID, 10) + "/export?format=" + f
	}
	if h := t.Hit; h != nil {
		var b strings.Builder
		for _, p := range views.Snippet(h.Text, terms) {
			b.WriteString(p.Text)
		}
		snippet := b.String()
		a.Snippet = &snippet
		a.Match = &apiTranscriptHit{SegmentIndex: h.SegmentIndex, StartMS: h.StartMS,
			Speaker: h.Speaker, Matches: h.Matches,
			URL: views.SegmentURL(t.ID, h.SegmentIndex, "")}
	}
	return a
}

// toAPITranscriptDetail is the whole transcript: text and segments included.
func toAPITranscriptDetail(t db.Transcript) apiTranscript {
	a := toAPITranscript(t, nil)
	segs := make([]apiSegment, len(t.Segments))
	for i, s := range t.Segments {
		segs[i] = apiSegment{Index: s.Index, StartMS: s.StartMS, EndMS: s.EndMS,
			Speaker: s.Speaker, SpeakerName: t.SpeakerName(s.Speaker), Text: s.Text}
	}
	a.Text, a.Segments = &t.Text, &segs
	return a
}

// handleAPITranscriptIndex is GET /api/v1/transcripts: one page of transcripts, newest first;
// with q, a full-text search whose results carry a snippet and the matching segment.
func (s *Server) handleAPITranscriptIndex(w http.ResponseWriter, r *http.Request) {
	f, err := transcriptFilter(r)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	if f.Since, err = apiTime(r, "since"); err != nil {
		s.respondError(w, r, err)
		return
	}
	if f.Until, err = apiTime(r, "until"); err != nil {
		s.respondError(w, r, err)
		return
	}
	f.Limit = 50
	if v := r.URL.Query().Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > 500 {
			s.respondError(w, r, badRequest("limit must be a whole number from 1 to 500"))
			return
		}
	}
	f.After = r.URL.Query().Get("cursor")

	ts, next, err := s.store.FindTranscripts(r.Context(), f)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	out := make([]apiTranscript, len(ts))
	for i, t := range ts {
		out[i] = toAPITranscript(t, f.Terms)
	}
	var cursor *string
	if next != "" {
		cursor = &next
	}
	writeJSON(w, http.StatusOK, struct {
		Transcripts []apiTranscript `json:"transcripts"`
		NextCursor  *string         `json:"next_cursor"`
	}{out, cursor})
}

// handleAPITranscriptView is GET /api/v1/transcripts/{id}: the transcript with its segments.
func (s *Server) handleAPITranscriptView(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	t, err := s.store.FindTranscriptByID(r.Context(), id)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAPITranscriptDetail(t))
}
