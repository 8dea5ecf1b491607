package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web/plaud"
	"github.com/plaudhook/plaudhook/web/signature"
)

// transcriptFixtures are the fixtures in plaud/testdata that concern recordings, in the order
// they are posted (alphabetical, which delivers the weekly sync's events out of order).
var transcriptFixtures = []string{
	"audio_transcribe.completed.cjk-ja.json",
	"audio_transcribe.completed.failure.json",
	"audio_transcribe.completed.long-multispeaker.json",
	"audio_transcribe.completed.minimal.json",
	"audio_transcribe.completed.short.json",
	"device.battery_low.json",
	"device.recording_completed.json",
	"device.recording_completed.no-transcript.json",
	"device.synced.json",
	"transcription.completed.cjk-zh.json",
	"transcription.completed.long-multispeaker.json",
	"transcription.completed.short.json",
	"transcription.failed.json",
	"unknown.future_event.json",
}

func mustReadFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("plaud", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postFixtures posts signed fixtures, waits until they are normalised, and returns their event
// ids by file name.
func postFixtures(t testing.TB, e *env, names ...string) map[string]int64 {
	t.Helper()
	ids := map[string]int64{}
	for _, name := range names {
		body := mustReadFixture(t, name)
		resp, out := e.post("/webhook", signed(signature.SchemeDevguide, body, testNow), body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("post %s: %d %s", name, resp.StatusCode, out)
		}
		var reply struct {
			EventID int64 `json:"event_id"`
		}
		json.Unmarshal([]byte(out), &reply)
		ids[name] = reply.EventID
	}
	e.srv.Wait()
	return ids
}

// apiTranscripts GETs a transcript list from the API.
func apiTranscripts(t testing.TB, c *http.Client, u string) []map[string]any {
	t.Helper()
	resp, body := get(t, c, u)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s", u, resp.StatusCode, body)
	}
	var out struct {
		Transcripts []map[string]any `json:"transcripts"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("decode %s: %v", u, err)
	}
	return out.Transcripts
}

// transcriptOf returns the transcript normalised from an event.
func transcriptOf(t testing.TB, e *env, eventID int64) db.Transcript {
	t.Helper()
	tr, err := e.db.FindTranscriptByEventID(context.Background(), eventID)
	if err != nil {
		t.Fatalf("transcript of event %d: %v", eventID, err)
	}
	tr, err = e.db.FindTranscriptByID(context.Background(), tr.ID)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestTranscriptFixturesNormalised posts every fixture about recordings and checks what each
// became: transcripts in every payload shape, one recording per file, an unreadable payload
// kept as an event that says what it lacked.
func TestTranscriptFixturesNormalised(t *testing.T) {
	e := newEnv(t)
	ids := postFixtures(t, e, transcriptFixtures...)
	ctx := context.Background()

	tests := []struct {
		file       string
		status     string // "" means no transcript
		language   string
		segments   int
		speakers   int
		errCode    string
		durationMS int64
	}{
		{"audio_transcribe.completed.cjk-ja.json", "completed", "ja", 9, 3, "", 57000},
		{"audio_transcribe.completed.failure.json", "failed", "", 0, 0, "AUDIO_DECODE_ERROR", 0},
		{"audio_transcribe.completed.long-multispeaker.json", "completed", "en", 200, 4, "", 1056000},
		{"audio_transcribe.completed.minimal.json", "", "", 0, 0, "", 0},
		{"audio_transcribe.completed.short.json", "completed", "en", 3, 1, "", 23000},
		{"device.battery_low.json", "", "", 0, 0, "", 0},
		{"device.recording_completed.no-transcript.json", "", "", 0, 0, "", 0},
		{"device.synced.json", "", "", 0, 0, "", 0},
		{"transcription.completed.cjk-zh.json", "completed", "zh", 9, 3, "", 50000},
		{"transcription.completed.long-multispeaker.json", "completed", "en", 200, 4, "", 1051000},
		{"transcription.completed.short.json", "completed", "en", 3, 1, "", 23000},
		{"transcription.failed.json", "failed", "", 0, 0, "audio_url_unreachable", 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			tr, err := e.db.FindTranscriptByEventID(ctx, ids[tt.file])
			if tt.status == "" {
				if err == nil {
					t.Fatalf("got transcript %d, want none", tr.ID)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tr.Status != tt.status || tr.Language != tt.language ||
				tr.SegmentCount != tt.segments || len(tr.Speakers) != tt.speakers ||
				tr.ErrorCode != tt.errCode {
				t.Errorf("transcript = %s %q, %d segments, %d speakers, error %q; want %s %q, %d, %d, %q",
					tr.Status, tr.Language, tr.SegmentCount, len(tr.Speakers), tr.ErrorCode,
					tt.status, tt.language, tt.segments, tt.speakers, tt.errCode)
			}
			// The short transcript arrives twice (inline in recording_completed, and as
			// transcription.completed): either source may win, both give 3 segments.
			if tt.file != "transcription.completed.short.json" && tr.DurationMS != tt.durationMS {
				t.Errorf("duration = %d ms, want %d", tr.DurationMS, tt.durationMS)
			}
		})
	}

	// The weekly sync: synced, recording completed, transcription completed and an unknown
	// event naming the same transcription are one recording with one transcript.
	weekly := transcriptOf(t, e, ids["device.recording_completed.json"])
	if other := transcriptOf(t, e, ids["transcription.completed.short.json"]); other.ID != weekly.ID {
		t.Errorf("the two deliveries of the weekly transcript made transcripts %d and %d",
			weekly.ID, other.ID)
	}
	evs, err := e.db.FindRecordingEvents(ctx, weekly.RecordingID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, fmt.Sprintf("%s late=%v", ev.EventType, ev.Late))
	}
	want := []string{
		"device.synced late=true", // 09:58, arrived after the 10:02 events
		"transcription.completed late=true",
		"device.recording_completed late=false",
		"summary.completed late=false",
	}
	if !slices.Equal(got, want) {
		t.Errorf("weekly timeline = %q, want %q", got, want)
	}
	rec, _ := e.db.FindRecordingByID(ctx, weekly.RecordingID)
	if rec.Status != db.RecordingTranscribed || rec.Title != "2026-03-24 09:31 Weekly sync.opus" {
		t.Errorf("weekly recording = %q %q, want transcribed with the file name", rec.Status, rec.Title)
	}

	// Counts: 10 recordings (battery_low is about none), 8 transcripts.
	recs, _, _ := e.db.FindRecordings(ctx, db.RecordingFilter{Limit: 100})
	ts, _, _ := e.db.FindTranscripts(ctx, db.TranscriptFilter{Limit: 100})
	if len(recs) != 10 || len(ts) != 8 {
		t.Errorf("recordings = %d, transcripts = %d; want 10 and 8", len(recs), len(ts))
	}

	// The unreadable payload's event page says what was missing; a readable one links its
	// transcript and recording.
	c := e.client("viewer")
	_, body := get(t, c, e.ts.URL+fmt.Sprintf("/events/%d", ids["audio_transcribe.completed.minimal.json"]))
	doc, _ := goquery.NewDocumentFromReader(strings.NewReader(body))
	if doc.Find("[data-testid=event-transcript-unreadable]").Length() != 1 {
		t.Errorf("minimal event page does not say its transcript is unreadable")
	}
	if got := doc.Find("[data-testid=event-missing] li").Length(); got != 4 {
		t.Errorf("minimal event page lists %d missing items, want 4 (duration, segments, text, status)", got)
	}
	_, body = get(t, c, e.ts.URL+fmt.Sprintf("/events/%d", ids["transcription.completed.cjk-zh.json"]))
	doc, _ = goquery.NewDocumentFromReader(strings.NewReader(body))
	href, _ := doc.Find("[data-testid=event-transcript-link]").Attr("href")
	zh := transcriptOf(t, e, ids["transcription.completed.cjk-zh.json"])
	if href != fmt.Sprintf("/transcripts/%d", zh.ID) {
		t.Errorf("event page transcript link = %q, want /transcripts/%d", href, zh.ID)
	}
	if doc.Find("[data-testid=event-recording-link]").Length() != 1 {
		t.Errorf("event page has no recording link")
	}
}

// TestTranscriptSearch finds English words, a Japanese phrase and a Chinese phrase from the
// fixtures, through the API and the page, each hit linking to the exact segment.
func TestTranscriptSearch(t *testing.T) {
	e := newEnv(t)
	ids := postFixtures(t, e, transcriptFixtures...)
	c := e.client("viewer")

	// segmentWith returns the index of the first segment of a fixture containing s.
	segmentWith := func(file, s string) int {
		tr, _ := plaud.ParseTranscript(mustReadFixture(t, file))
		for _, seg := range tr.Segments {
			if strings.Contains(strings.ToLower(seg.Text), strings.ToLower(s)) {
				return seg.Index
			}
		}
		t.Fatalf("%s has no segment with %q", file, s)
		return -1
	}
	tests := []struct {
		name  string
		q     string
		files []string // the fixtures whose transcripts must be found
		in    string   // the text the first hit's segment contains
	}{
		{"English words", "hiring plan",
			[]string{"transcription.completed.long-multispeaker.json",
				"audio_transcribe.completed.long-multispeaker.json"}, "hiring plan"},
		{"English, case-insensitive", "PALLET JACKS",
			[]string{"transcription.completed.short.json", "audio_transcribe.completed.short.json"},
			"pallet jacks"},
		{"Japanese phrase", "定例ミーティング",
			[]string{"audio_transcribe.completed.cjk-ja.json"}, "定例ミーティング"},
		{"Chinese phrase", "客户回访计划",
			[]string{"transcription.completed.cjk-zh.json"}, "客户回访计划"},
		{"Japanese inside Chinese", "話者名の変更",
			[]string{"transcription.completed.cjk-zh.json"}, "話者名の変更"},
		{"two-character Chinese word", "问题",
			[]string{"transcription.completed.cjk-zh.json"}, "问题"},
		{"Chinese inside Japanese", "上海团队",
			[]string{"audio_transcribe.completed.cjk-ja.json"}, "上海团队"},
		{"nothing", "zebra crossing", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := apiTranscripts(t, c, e.ts.URL+"/api/v1/transcripts?q="+url.QueryEscape(tt.q))
			var gotIDs, wantIDs []int64
			for _, g := range got {
				gotIDs = append(gotIDs, int64(g["id"].(float64)))
			}
			for _, f := range tt.files {
				id := transcriptOf(t, e, ids[f]).ID
				if !slices.Contains(wantIDs, id) {
					wantIDs = append(wantIDs, id)
				}
			}
			slices.Sort(gotIDs)
			slices.Sort(wantIDs)
			if !slices.Equal(gotIDs, wantIDs) {
				t.Fatalf("found transcripts %v, want %v", gotIDs, wantIDs)
			}
			if len(got) == 0 {
				return
			}

			// The snippet shows the match, and the match links to its segment's anchor.
			first := got[0]
			snippet, _ := first["snippet"].(string)
			if !strings.Contains(strings.ToLower(snippet), strings.ToLower(tt.in)) {
				t.Errorf("snippet = %q, want it to contain %q", snippet, tt.in)
			}
			id := int64(first["id"].(float64))
			file := ""
			for _, f := range tt.files {
				if transcriptOf(t, e, ids[f]).ID == id {
					file = f
				}
			}
			match := first["match"].(map[string]any)
			wantSeg := segmentWith(file, tt.in)
			wantURL := fmt.Sprintf("/transcripts/%d#seg-%d", id, wantSeg)
			if match["url"] != wantURL || int(match["segment_index"].(float64)) != wantSeg {
				t.Errorf("match = %v, want url %s", match, wantURL)
			}

			// The page shows the same hits, highlighted, linking to the segment with the query.
			_, body := get(t, c, e.ts.URL+"/transcripts?q="+url.QueryEscape(tt.q))
			doc, _ := goquery.NewDocumentFromReader(strings.NewReader(body))
			if got := doc.Find("[data-testid=transcript-row]").Length(); got != len(wantIDs) {
				t.Errorf("page rows = %d, want %d", got, len(wantIDs))
			}
			var marks []string
			doc.Find("[data-testid=snippet] mark").Each(func(_ int, m *goquery.Selection) {
				marks = append(marks, strings.ToLower(m.Text()))
			})
			if len(marks) == 0 {
				t.Errorf("page snippets have no highlight")
			}
			for _, m := range marks {
				if !strings.Contains(strings.ToLower(tt.q), m) {
					t.Errorf("highlighted %q, which is not a search term of %q", m, tt.q)
				}
			}
			href, _ := doc.Find("[data-testid=snippet]").First().Attr("href")
			if !strings.HasSuffix(href, fmt.Sprintf("#seg-%d", wantSeg)) || !strings.Contains(href, "?q=") {
				t.Errorf("snippet link = %q, want the transcript with ?q= at #seg-%d", href, wantSeg)
			}
		})
	}
}

// TestTranscriptPage checks the reading view of the long multi-speaker transcript: speaker
// blocks, one colour per speaker, a link on every segment, search within the page.
func TestTranscriptPage(t *testing.T) {
	e := newEnv(t)
	ids := postFixtures(t, e, "transcription.completed.long-multispeaker.json",
		"transcription.failed.json", "audio_transcribe.completed.cjk-ja.json")
	tr := transcriptOf(t, e, ids["transcription.completed.long-multispeaker.json"])
	c := e.client("viewer")

	resp, body := get(t, c, e.ts.URL+fmt.Sprintf("/transcripts/%d?q=budget", tr.ID))
	if resp.StatusCode != 200 {
		t.Fatalf("transcript page = %d", resp.StatusCode)
	}
	doc, _ := goquery.NewDocumentFromReader(strings.NewReader(body))

	// Consecutive segments of one speaker form one block.
	wantBlocks := 0
	for i, s := range tr.Segments {
		if i == 0 || tr.Segments[i-1].Speaker != s.Speaker {
			wantBlocks++
		}
	}
	blocks := doc.Find("[data-testid=block]")
	if blocks.Length() != wantBlocks || wantBlocks >= len(tr.Segments) {
		t.Errorf("blocks = %d, want %d (from %d segments)", blocks.Length(), wantBlocks, len(tr.Segments))
	}

	// Each speaker always has the same colour class, and no two speakers share one.
	colour := map[string]string{}
	blocks.Each(func(_ int, b *goquery.Selection) {
		cls, _ := b.Attr("class")
		who := b.Find(".who").Text()
		if prev, ok := colour[who]; ok && prev != cls {
			t.Errorf("speaker %s has classes %q and %q", who, prev, cls)
		}
		colour[who] = cls
	})
	seen := map[string]bool{}
	for _, cls := range colour {
		if seen[cls] {
			t.Errorf("two speakers share class %q", cls)
		}
		seen[cls] = true
	}
	if len(colour) != 4 {
		t.Errorf("speakers in blocks = %d, want 4", len(colour))
	}

	// Every segment has an anchor and a link to it.
	segs := doc.Find("[data-testid=segment]")
	if segs.Length() != 200 {
		t.Errorf("segments = %d, want 200", segs.Length())
	}
	segs.Each(func(i int, s *goquery.Selection) {
		id, _ := s.Attr("id")
		href, _ := s.Find("a.seg-ts").Attr("href")
		if id != fmt.Sprintf("seg-%d", tr.Segments[i].Index) || href != "#"+id {
			t.Errorf("segment %d: id %q link %q", i, id, href)
		}
	})

	// The in-page search highlights server-side and counts.
	want := 0
	for _, s := range tr.Segments {
		want += strings.Count(strings.ToLower(s.Text), "budget")
	}
	marks := doc.Find("[data-testid=transcript-body] mark")
	if marks.Length() != want || want == 0 {
		t.Errorf("marks = %d, want %d", marks.Length(), want)
	}
	if got := doc.Find("[data-testid=search-count]").Text(); !strings.Contains(got, fmt.Sprintf("%d matches", want)) {
		t.Errorf("search count = %q, want %d matches", got, want)
	}
	if text := doc.Find("[data-testid=transcript-body]").Text(); strings.Contains(text, "<mark>") {
		t.Errorf("highlight markup leaked into text")
	}

	// A failed transcription shows its error.
	failed := transcriptOf(t, e, ids["transcription.failed.json"])
	_, body = get(t, c, e.ts.URL+fmt.Sprintf("/transcripts/%d", failed.ID))
	doc, _ = goquery.NewDocumentFromReader(strings.NewReader(body))
	errText := doc.Find("[data-testid=transcript-error]").Text()
	if !strings.Contains(errText, "audio_url_unreachable") || !strings.Contains(errText, "HTTP 403 (expired)") {
		t.Errorf("failed transcript error = %q", errText)
	}

	// CJK renders as sent.
	ja := transcriptOf(t, e, ids["audio_transcribe.completed.cjk-ja.json"])
	_, body = get(t, c, e.ts.URL+fmt.Sprintf("/transcripts/%d?q=%s", ja.ID, url.QueryEscape("税込み")))
	doc, _ = goquery.NewDocumentFromReader(strings.NewReader(body))
	if got := doc.Find("#seg-4 [data-seg-text]").Text(); got != "価格は税込み 19,800 円で、9月1日発売を想定しています。" {
		t.Errorf("Japanese segment renders as %q", got)
	}
	if got := doc.Find("#seg-4 mark").Text(); got != "税込み" {
		t.Errorf("Japanese highlight = %q, want 税込み", got)
	}
}

// TestSpeakerRenameFlow renames a speaker as an operator: the page, list, API and exports use
// the name, the original label is kept, and the change is audited. A viewer may not rename.
func TestSpeakerRenameFlow(t *testing.T) {
	e := newEnv(t)
	ids := postFixtures(t, e, "transcription.completed.cjk-zh.json")
	tr := transcriptOf(t, e, ids["transcription.completed.cjk-zh.json"])
	path := fmt.Sprintf("%s/transcripts/%d/speakers", e.ts.URL, tr.ID)
	form := url.Values{"label": {"Speaker 2"}, "name": {"王经理 <b>"}}

	viewer := e.client("viewer")
	if resp, err := viewer.PostForm(path, form); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer rename = %v %v, want 403", resp.StatusCode, err)
	}
	op := e.client("operator")
	resp, err := op.PostForm(path, form)
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("operator rename = %v %v, want 303", resp.StatusCode, err)
	}

	_, body := get(t, op, e.ts.URL+fmt.Sprintf("/transcripts/%d", tr.ID))
	doc, _ := goquery.NewDocumentFromReader(strings.NewReader(body))
	sp := doc.Find(`[data-testid=speaker][data-label="Speaker 2"]`)
	if got := sp.Find("[data-testid=speaker-name]").Text(); got != "王经理 <b>" {
		t.Errorf("speaker name = %q", got)
	}
	if !strings.Contains(sp.Text(), "originally “Speaker 2”, named by operator") {
		t.Errorf("speaker entry = %q, want the original label and who renamed it", sp.Text())
	}
	if strings.Contains(body, "王经理 <b>") {
		t.Errorf("speaker name rendered unescaped")
	}

	// The API and an export use the name and keep the label.
	_, body = get(t, op, e.ts.URL+fmt.Sprintf("/api/v1/transcripts/%d", tr.ID))
	var detail struct {
		Speakers []struct{ Label, Name string }
		Segments []struct {
			Speaker     string `json:"speaker"`
			SpeakerName string `json:"speaker_name"`
		}
	}
	json.Unmarshal([]byte(body), &detail)
	if detail.Speakers[1].Label != "Speaker 2" || detail.Speakers[1].Name != "王经理 <b>" ||
		detail.Segments[1].Speaker != "Speaker 2" || detail.Segments[1].SpeakerName != "王经理 <b>" {
		t.Errorf("API speakers = %+v, segment 1 = %+v", detail.Speakers, detail.Segments[1])
	}
	_, srt := get(t, op, e.ts.URL+fmt.Sprintf("/transcripts/%d/export?format=srt", tr.ID))
	if !strings.Contains(srt, "\n王经理 <b>: 上个月一共回访了") {
		t.Errorf("SRT does not use the new name:\n%s", srt[:200])
	}

	// Audited with who and what.
	entries, _, err := e.db.FindAuditEntries(context.Background(),
		db.AuditFilter{ActionPrefix: "transcript.speaker_rename"})
	if err != nil || len(entries) != 1 || entries[0].Actor != "operator" ||
		!strings.Contains(entries[0].Detail, "Speaker 2 → 王经理") {
		t.Errorf("audit = %+v (%v), want one rename by operator", entries, err)
	}

	// An unknown label is refused.
	resp, _ = op.PostForm(path, url.Values{"label": {"Speaker 9"}, "name": {"x"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("unknown label = %d, want 422", resp.StatusCode)
	}
}

// TestTranscriptPrivacy turns the blur setting on and off: per user, marked on the page.
func TestTranscriptPrivacy(t *testing.T) {
	e := newEnv(t)
	ids := postFixtures(t, e, "transcription.completed.short.json")
	tr := transcriptOf(t, e, ids["transcription.completed.short.json"])
	page := fmt.Sprintf("%s/transcripts/%d", e.ts.URL, tr.ID)
	viewer, admin := e.client("viewer"), e.client("admin")

	blurred := func(c *http.Client) bool {
		_, body := get(t, c, page)
		doc, _ := goquery.NewDocumentFromReader(strings.NewReader(body))
		return doc.Find("[data-testid=transcript-body].blurred").Length() == 1
	}
	if blurred(viewer) {
		t.Fatalf("blurred by default")
	}
	resp, err := viewer.PostForm(e.ts.URL+"/transcripts/privacy",
		url.Values{"blur": {"on"}, "next": {fmt.Sprintf("/transcripts/%d", tr.ID)}})
	if err != nil || resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != fmt.Sprintf("/transcripts/%d", tr.ID) {
		t.Fatalf("blur on = %v %v", resp.StatusCode, err)
	}
	if !blurred(viewer) || blurred(admin) {
		t.Errorf("after the viewer turned blur on: viewer %v, admin %v; want true, false",
			blurred(viewer), blurred(admin))
	}
	// Blocks are focusable, so that a click reveals them even without script.
	_, body := get(t, viewer, page)
	if !strings.Contains(body, `tabindex="0"`) {
		t.Errorf("blurred blocks are not focusable")
	}
	viewer.PostForm(e.ts.URL+"/transcripts/privacy", url.Values{"blur": {"off"}})
	if blurred(viewer) {
		t.Errorf("still blurred after turning it off")
	}
	if resp, _ := viewer.PostForm(e.ts.URL+"/transcripts/privacy", url.Values{"blur": {"maybe"}}); resp.StatusCode != 400 {
		t.Errorf("blur=maybe = %d, want 400", resp.StatusCode)
	}
}

// TestTranscriptListPages checks filters and keyset pages of the list and the API.
func TestTranscriptListPages(t *testing.T) {
	e := newEnv(t)
	postFixtures(t, e, transcriptFixtures...)
	c := e.client("viewer")

	// The API pages with next_cursor until it is null, every transcript once.
	var seen []float64
	u := e.ts.URL + "/api/v1/transcripts?limit=3"
	for range 10 {
		resp, body := get(t, c, u)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d %s", u, resp.StatusCode, body)
		}
		var page struct {
			Transcripts []map[string]any `json:"transcripts"`
			NextCursor  *string          `json:"next_cursor"`
		}
		json.Unmarshal([]byte(body), &page)
		for _, tr := range page.Transcripts {
			seen = append(seen, tr["id"].(float64))
			for _, k := range []string{"id", "language", "duration_ms", "speakers", "segment_count", "status"} {
				if _, ok := tr[k]; !ok {
					t.Errorf("transcript lacks %q: %v", k, tr)
				}
			}
		}
		if page.NextCursor == nil {
			break
		}
		u = e.ts.URL + "/api/v1/transcripts?limit=3&cursor=" + url.QueryEscape(*page.NextCursor)
	}
	if len(seen) != 8 || len(slices.Compact(slices.Clone(seen))) != 8 {
		t.Errorf("paged through %v, want 8 distinct transcripts", seen)
	}

	// Filters on the API and the page.
	if got := apiTranscripts(t, c, e.ts.URL+"/api/v1/transcripts?status=failed"); len(got) != 2 {
		t.Errorf("failed transcripts = %d, want 2", len(got))
	}
	if got := apiTranscripts(t, c, e.ts.URL+"/api/v1/transcripts?language=ja"); len(got) != 1 {
		t.Errorf("ja transcripts = %d, want 1", len(got))
	}
	_, body := get(t, c, e.ts.URL+"/transcripts?status=completed&language=en")
	doc, _ := goquery.NewDocumentFromReader(strings.NewReader(body))
	if got := doc.Find("[data-testid=transcript-row]").Length(); got != 4 {
		t.Errorf("completed en rows = %d, want 4 (short, weekly, two long)", got)
	}
	if doc.Find("[data-testid=live-region]").Length() != 0 {
		t.Errorf("a filtered list subscribes to live rows")
	}
	_, body = get(t, c, e.ts.URL+"/transcripts?from=2026-03-25&to=2026-03-25")
	doc, _ = goquery.NewDocumentFromReader(strings.NewReader(body))
	if got := doc.Find("[data-testid=transcript-row]").Length(); got != 2 {
		t.Errorf("transcripts on 2026-03-25 = %d, want 2 (zh, failed)", got)
	}
	for _, bad := range []string{"status=done", "from=yesterday", "after=zzz"} {
		resp, _ := get(t, c, e.ts.URL+"/transcripts?"+bad)
		if resp.StatusCode != 400 && resp.StatusCode != 422 {
			t.Errorf("/transcripts?%s = %d, want 400 or 422", bad, resp.StatusCode)
		}
	}

	// The page lists every transcript with its facts and is live on the first page.
	_, body = get(t, c, e.ts.URL+"/transcripts")
	doc, _ = goquery.NewDocumentFromReader(strings.NewReader(body))
	if got := doc.Find("[data-testid=transcript-row]").Length(); got != 8 {
		t.Errorf("rows = %d, want 8", got)
	}
	if doc.Find("#transcript-rows[sse-swap=transcript-new]").Length() != 1 {
		t.Errorf("first page is not live")
	}
}

// TestTranscriptListRowFacts checks what a /transcripts row shows for fixtures whose facts are
// known: the title (linking to the transcript), the duration, every speaker once in order of
// first appearance, and the status.
func TestTranscriptListRowFacts(t *testing.T) {
	e := newEnv(t)
	ids := postFixtures(t, e, transcriptFixtures...)
	c := e.client("viewer")
	_, body := get(t, c, e.ts.URL+"/transcripts")
	doc := mustDoc(t, body)
	tests := []struct {
		fixture  string
		title    string
		duration string
		speakers []string
		status   string
	}{
		{"transcription.completed.long-multispeaker.json", "Transcription txn_01HZX7M3B5N7V9C1X3Z5L7K9JH",
			"17:31", []string{"Speaker 1", "Speaker 4", "Speaker 3", "Speaker 2"}, "completed"},
		{"audio_transcribe.completed.cjk-ja.json", "File c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4", "0:57",
			[]string{"Speaker 1", "Speaker 2", "Speaker 3"}, "completed"},
		// The recording-completed event about the same transcription occurred a second later:
		// its file name titles the row and its durationMs (1,843,000) is the audio's length.
		{"transcription.completed.short.json", "2026-03-24 09:31 Weekly sync.opus", "30:43",
			[]string{"Speaker 1"}, "completed"},
		{"transcription.failed.json", "Transcription txn_01HZXC4V6B8N0M2Q4W6E8R0T2Y", "—", nil, "failed"},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			tr := transcriptOf(t, e, ids[tc.fixture])
			row := doc.Find("[data-testid=transcript-row]#transcript-" + strconv.FormatInt(tr.ID, 10))
			if row.Length() != 1 {
				t.Fatalf("rows for transcript %d = %d, want 1", tr.ID, row.Length())
			}
			cells := row.Children()
			if cells.Length() != 6 {
				t.Fatalf("row has %d cells, want 6 (transcript, when, duration, language, speakers, status)",
					cells.Length())
			}
			link := cells.Eq(0).Find("a.type")
			if got := strings.TrimSpace(link.Text()); got != tc.title {
				t.Errorf("title = %q, want %q", got, tc.title)
			}
			if href := link.AttrOr("href", ""); href != "/transcripts/"+strconv.FormatInt(tr.ID, 10) {
				t.Errorf("title link = %q, want the transcript page", href)
			}
			if got := strings.TrimSpace(cells.Eq(2).Text()); got != tc.duration {
				t.Errorf("duration = %q, want %q", got, tc.duration)
			}
			got := cells.Eq(4).Find(".speaker-chip").Map(func(_ int, s *goquery.Selection) string {
				return strings.TrimSpace(s.Text())
			})
			if !slices.Equal(got, tc.speakers) {
				t.Errorf("speakers = %q, want %q", got, tc.speakers)
			}
			status := row.Find("[data-testid=transcript-status]")
			if got := strings.TrimSpace(status.Text()); got != tc.status || row.AttrOr("data-status", "") != tc.status {
				t.Errorf("status = %q (data-status %q), want %q", got, row.AttrOr("data-status", ""), tc.status)
			}
		})
	}
}

// TestRecordingPages checks the recordings list with its overdue flag and a timeline page.
func TestRecordingPages(t *testing.T) {
	e := newEnv(t)
	ids := postFixtures(t, e, transcriptFixtures...)
	c := e.client("viewer")

	// Only the voice memo (no transcript since March) is overdue; the minimal payload's
	// recording is new by the test clock.
	_, body := get(t, c, e.ts.URL+"/recordings?overdue=1")
	doc, _ := goquery.NewDocumentFromReader(strings.NewReader(body))
	rows := doc.Find("[data-testid=recording-row]")
	if rows.Length() != 1 || !strings.Contains(rows.Text(), "Voice memo") ||
		rows.Find("[data-testid=overdue]").Length() != 1 {
		t.Errorf("overdue recordings = %q", rows.Text())
	}

	weekly := transcriptOf(t, e, ids["device.recording_completed.json"])
	_, body = get(t, c, e.ts.URL+fmt.Sprintf("/recordings/%d", weekly.RecordingID))
	doc, _ = goquery.NewDocumentFromReader(strings.NewReader(body))
	if got := doc.Find("[data-testid=timeline-event]").Length(); got != 4 {
		t.Errorf("timeline events = %d, want 4", got)
	}
	if got := doc.Find("[data-testid=late]").Length(); got != 2 {
		t.Errorf("late marks = %d, want 2", got)
	}
	if got := doc.Find("[data-testid=recording-status]").Text(); got != "transcribed" {
		t.Errorf("status = %q, want transcribed", got)
	}
	if doc.Find("[data-testid=overdue]").Length() != 0 {
		t.Errorf("a transcribed recording is flagged")
	}
	if resp, _ := get(t, c, e.ts.URL+"/recordings/9999"); resp.StatusCode != 404 {
		t.Errorf("unknown recording = %d, want 404", resp.StatusCode)
	}
}

// TestTranscriptRoutesNeedUser checks that every transcript page and API route refuses
// anonymous requests.
func TestTranscriptRoutesNeedUser(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/transcripts", "/transcripts/1", "/transcripts/1/export?format=txt",
		"/recordings", "/recordings/1"} {
		resp, _ := get(t, noRedirect(), e.ts.URL+p)
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("anonymous GET %s = %d, want 303 to sign in", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/api/v1/transcripts", "/api/v1/transcripts/1",
		"/api/v1/transcripts/1/export?format=srt"} {
		resp, _ := get(t, noRedirect(), e.ts.URL+p)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s = %d, want 401", p, resp.StatusCode)
		}
	}
}

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// TestTranscriptExports downloads the long multi-speaker transcript in every format from the
// page and the API: the JSON export round-trips every segment of the payload exactly, the
// subtitles number every cue, each download names its file, and every export is audited.
func TestTranscriptExports(t *testing.T) {
	e := newEnv(t)
	const file = "transcription.completed.long-multispeaker.json"
	ids := postFixtures(t, e, file)
	tr := transcriptOf(t, e, ids[file])
	sent, _ := plaud.ParseTranscript(mustReadFixture(t, file))
	c := e.client("viewer")

	// JSON: decoded, it is the API's transcript, and its segments are the payload's.
	resp, body := get(t, c, e.ts.URL+fmt.Sprintf("/api/v1/transcripts/%d/export?format=json", tr.ID))
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
		resp.Header.Get("Content-Disposition") != fmt.Sprintf(`attachment; filename="transcript-%d.json"`, tr.ID) {
		t.Fatalf("JSON export = %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"),
			resp.Header.Get("Content-Disposition"))
	}
	type segment struct {
		Index   int    `json:"index"`
		StartMS int64  `json:"start_ms"`
		EndMS   int64  `json:"end_ms"`
		Speaker string `json:"speaker"`
		Text    string `json:"text"`
	}
	var exported struct {
		ID           int64     `json:"id"`
		Language     string    `json:"language"`
		DurationMS   int64     `json:"duration_ms"`
		SegmentCount int       `json:"segment_count"`
		Text         string    `json:"text"`
		Segments     []segment `json:"segments"`
	}
	if err := json.Unmarshal([]byte(body), &exported); err != nil {
		t.Fatalf("JSON export does not decode: %v", err)
	}
	if len(sent.Segments) != 200 || len(exported.Segments) != len(sent.Segments) ||
		exported.SegmentCount != 200 {
		t.Fatalf("exported %d segments (count %d), payload has %d", len(exported.Segments),
			exported.SegmentCount, len(sent.Segments))
	}
	for i, s := range sent.Segments {
		want := segment{s.Index, s.StartMS, s.EndMS, s.Speaker, s.Text}
		if exported.Segments[i] != want {
			t.Errorf("segment %d = %+v, want %+v", i, exported.Segments[i], want)
		}
	}
	if exported.ID != tr.ID || exported.Language != sent.Language ||
		exported.DurationMS != sent.DurationMS || exported.Text != sent.Text {
		t.Errorf("exported transcript = id %d %q %d ms, want id %d %q %d ms and the payload's text",
			exported.ID, exported.Language, exported.DurationMS, tr.ID, sent.Language, sent.DurationMS)
	}
	_, detail := get(t, c, e.ts.URL+fmt.Sprintf("/api/v1/transcripts/%d", tr.ID))
	var a, b any
	json.Unmarshal([]byte(detail), &a)
	json.Unmarshal([]byte(body), &b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("JSON export differs from GET /api/v1/transcripts/%d", tr.ID)
	}

	// SRT from the page's link: 200 cues numbered 1 to 200, with the payload's times.
	resp, srt := get(t, c, e.ts.URL+fmt.Sprintf("/transcripts/%d/export?format=srt", tr.ID))
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-subrip") {
		t.Fatalf("SRT export = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	cues := strings.Split(strings.TrimSuffix(srt, "\n\n"), "\n\n")
	if len(cues) != 200 {
		t.Fatalf("SRT cues = %d, want 200", len(cues))
	}
	for i, cue := range cues {
		lines := strings.Split(cue, "\n")
		s := sent.Segments[i]
		timing := fmt.Sprintf("%02d:%02d:%02d,%03d --> %02d:%02d:%02d,%03d",
			s.StartMS/3600000, s.StartMS/60000%60, s.StartMS/1000%60, s.StartMS%1000,
			s.EndMS/3600000, s.EndMS/60000%60, s.EndMS/1000%60, s.EndMS%1000)
		if len(lines) < 3 || lines[0] != strconv.Itoa(i+1) || lines[1] != timing ||
			lines[2] != s.Speaker+": "+s.Text {
			t.Errorf("cue %d = %q, want number %d, %s, %q", i+1, lines, i+1, timing, s.Text)
			break
		}
	}

	// The other formats, and an unknown one.
	for format, ctype := range map[string]string{"txt": "text/plain", "md": "text/markdown",
		"vtt": "text/vtt"} {
		resp, out := get(t, c, e.ts.URL+fmt.Sprintf("/api/v1/transcripts/%d/export?format=%s", tr.ID, format))
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) ||
			!strings.Contains(out, sent.Segments[199].Text) {
			t.Errorf("%s export = %d %q, or without the last segment", format, resp.StatusCode,
				resp.Header.Get("Content-Type"))
		}
	}
	if resp, _ := get(t, c, e.ts.URL+fmt.Sprintf("/api/v1/transcripts/%d/export?format=docx", tr.ID)); resp.StatusCode != 400 {
		t.Errorf("format=docx = %d, want 400", resp.StatusCode)
	}
	if resp, _ := get(t, c, e.ts.URL+"/api/v1/transcripts/9999/export?format=srt"); resp.StatusCode != 404 {
		t.Errorf("export of an unknown transcript = %d, want 404", resp.StatusCode)
	}

	// Every successful download is audited with who, which transcript and which format.
	entries, _, err := e.db.FindAuditEntries(context.Background(),
		db.AuditFilter{ActionPrefix: "transcript.export", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var formats []string
	for _, en := range entries {
		if en.Actor != "viewer" || en.Target != fmt.Sprintf("transcript %d", tr.ID) {
			t.Errorf("audit entry = %+v", en)
		}
		formats = append(formats, strings.TrimPrefix(en.Detail, "format "))
	}
	slices.Sort(formats)
	if !slices.Equal(formats, []string{"json", "md", "srt", "txt", "vtt"}) {
		t.Errorf("audited export formats = %q, want json, md, srt, txt, vtt", formats)
	}
}
