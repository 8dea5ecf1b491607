package web

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/plaudhook/plaudhook/db"
)

// The tests of this package sign in hundreds of times; under the race detector a cost-11
// bcrypt takes seconds. They hash at the minimum cost; TestBcryptCost checks the real one.
func init() { bcryptCost = bcrypt.MinCost }

// exportSample is a transcript with what subtitle formats must cope with: times past an hour,
// an empty segment, text with a blank line and markup, an end before its start, a renamed
// speaker and a segment without one.
func exportSample() db.Transcript {
	return db.Transcript{
		ID: 7, Title: "Board review",
		TranscriptContent: db.TranscriptContent{Status: db.TranscriptCompleted, Language: "en",
			DurationMS: 3_725_000, Segments: []db.Segment{
				{Index: 0, StartMS: 0, EndMS: 1500, Speaker: "Speaker 1", Text: "Good morning."},
				{Index: 1, StartMS: 1500, EndMS: 2000, Speaker: "Speaker 1", Text: "   "},
				{Index: 2, StartMS: 61_010, EndMS: 65_999, Speaker: "Speaker 2",
					Text: "Revenue <b>up</b> & costs --> down.\n\nNext slide."},
				{Index: 3, StartMS: 3_723_004, EndMS: 3_600_000, Speaker: "", Text: "Thanks, all."},
			}},
		Speakers: []db.Speaker{{Label: "Speaker 1", Name: "Aiko", Renamed: true},
			{Label: "Speaker 2", Name: "Speaker 2"}},
		SegmentCount: 4,
		OccurredAt:   time.Date(2026, 3, 24, 10, 0, 0, 0, time.UTC),
	}
}

// cue is one parsed subtitle cue.
type cue struct {
	id, timing string
	text       []string
}

// parseCues splits subtitle output into cues, failing on anything the format does not allow:
// every cue ends with a blank line and has a timing line, ids are on their own line.
func parseCues(t *testing.T, out string, timing *regexp.Regexp) []cue {
	t.Helper()
	if !strings.HasSuffix(out, "\n\n") {
		t.Fatalf("output does not end with a blank line: %q", out)
	}
	var cues []cue
	for _, block := range strings.Split(strings.TrimSuffix(out, "\n\n"), "\n\n") {
		lines := strings.Split(block, "\n")
		var c cue
		if !timing.MatchString(lines[0]) {
			c.id, lines = lines[0], lines[1:]
		}
		if len(lines) < 2 || !timing.MatchString(lines[0]) {
			t.Fatalf("cue %q has no timing line matching %s", block, timing)
		}
		c.timing, c.text = lines[0], lines[1:]
		for _, l := range c.text {
			if strings.TrimSpace(l) == "" || strings.Contains(l, "-->") {
				t.Errorf("cue %q: text line %q is empty or contains -->", block, l)
			}
		}
		cues = append(cues, c)
	}
	return cues
}

// checkCues compares parsed cues with the wanted ones, out being the whole export.
func checkCues(t *testing.T, out string, cues, want []cue) {
	t.Helper()
	if len(cues) != len(want) {
		t.Fatalf("cues = %d, want %d:\n%s", len(cues), len(want), out)
	}
	for i, c := range cues {
		if c.id != want[i].id || c.timing != want[i].timing ||
			strings.Join(c.text, "\n") != strings.Join(want[i].text, "\n") {
			t.Errorf("cue %d = %+v, want %+v", i+1, c, want[i])
		}
	}
}

func TestExportSRT(t *testing.T) {
	out := string(exportSRT(exportSample()))
	timing := regexp.MustCompile(`^\d{2}:\d{2}:\d{2},\d{3} --> \d{2}:\d{2}:\d{2},\d{3}$`)
	cues := parseCues(t, out, timing)
	want := []cue{
		{"1", "00:00:00,000 --> 00:00:01,500", []string{"Aiko: Good morning."}},
		// The empty segment is left out and numbering stays continuous.
		{"2", "00:01:01,010 --> 00:01:05,999",
			[]string{"Speaker 2: Revenue <b>up</b> & costs -> down.", "Next slide."}},
		{"3", "01:02:03,004 --> 01:02:03,004", []string{"Thanks, all."}},
	}
	checkCues(t, out, cues, want)
}

func TestExportVTT(t *testing.T) {
	out := string(exportVTT(exportSample()))
	header, body, ok := strings.Cut(out, "\n\n")
	if !ok || header != "WEBVTT" {
		t.Fatalf("output does not start with the WEBVTT header and a blank line:\n%s", out)
	}
	timing := regexp.MustCompile(`^\d{2}:\d{2}:\d{2}\.\d{3} --> \d{2}:\d{2}:\d{2}\.\d{3}$`)
	cues := parseCues(t, body, timing)
	want := []cue{
		{"seg-0", "00:00:00.000 --> 00:00:01.500", []string{"<v Aiko>Good morning."}},
		{"seg-2", "00:01:01.010 --> 00:01:05.999",
			[]string{"<v Speaker 2>Revenue &lt;b&gt;up&lt;/b&gt; &amp; costs --&gt; down.", "Next slide."}},
		{"seg-3", "01:02:03.004 --> 01:02:03.004", []string{"Thanks, all."}},
	}
	checkCues(t, out, cues, want)
}

func TestCueTime(t *testing.T) {
	for ms, want := range map[int64]string{
		0: "00:00:00,000", 999: "00:00:00,999", 1000: "00:00:01,000", 59_999: "00:00:59,999",
		60_000: "00:01:00,000", 3_599_999: "00:59:59,999", 3_600_000: "01:00:00,000",
		36_000_001: "10:00:00,001",
	} {
		if got := cueTime(ms, ','); got != want {
			t.Errorf("cueTime(%d) = %q, want %q", ms, got, want)
		}
	}
}

func TestExportTextAndMarkdown(t *testing.T) {
	tr := exportSample()
	tr.Segments = append(tr.Segments, db.Segment{Index: 4, StartMS: 3_724_000, EndMS: 3_725_000,
		Speaker: "Speaker 2", Text: "# not a heading [link](x)"})
	txt := string(exportText(tr))
	for _, want := range []string{"Board review\n", "[0:00] Aiko\nGood morning.\n",
		"[1:01] Speaker 2\n", "Thanks, all."} {
		if !strings.Contains(txt, want) {
			t.Errorf("text export lacks %q:\n%s", want, txt)
		}
	}
	md := string(exportMarkdown(tr))
	for _, want := range []string{"# Board review\n", "- Speakers: Aiko (Speaker 1), Speaker 2\n",
		`\# not a heading \[link\](x)`} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown export lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "<b>") {
		t.Errorf("Markdown export passes payload markup through:\n%s", md)
	}
}

// TestExportFailed checks that exports of a failed transcription say so.
func TestExportFailed(t *testing.T) {
	tr := db.Transcript{ID: 9, TranscriptContent: db.TranscriptContent{Status: db.TranscriptFailed,
		ErrorCode: "audio_url_unreachable", ErrorMessage: "HTTP 403"}}
	want := "Transcription failed (audio_url_unreachable): HTTP 403"
	if txt := string(exportText(tr)); !strings.Contains(txt, want) {
		t.Errorf("text export = %q, want %q", txt, want)
	}
	if srt := exportSRT(tr); len(srt) != 0 {
		t.Errorf("SRT of a failed transcription = %q, want empty", srt)
	}
	if vtt := string(exportVTT(tr)); vtt != "WEBVTT\n\n" {
		t.Errorf("VTT of a failed transcription = %q, want the header alone", vtt)
	}
}
