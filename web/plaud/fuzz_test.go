package plaud

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse feeds arbitrary bodies to every exported function. None may panic, and each keeps
// its promises: valid UTF-8 out, one-line bounded previews, non-negative times, and a
// transcript only from a JSON object.
func FuzzParse(f *testing.F) {
	// Seed with every fixture and hand-made variant, plus a few hostile shapes.
	for _, pattern := range []string{"*.json", "variants/*.json"} {
		paths, err := filepath.Glob(filepath.Join("testdata", pattern))
		if err != nil {
			f.Fatalf("glob testdata: %v", err)
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatalf("read seed: %v", err)
			}
			f.Add(b)
		}
	}
	for _, s := range []string{
		"", "null", "[]", "{}", "\xff\xfe", "\xEF\xBB\xBF{}",
		`{"event":"transcription.completed","data":{"segments":[{"start":1e308,"end":-1e308}]}}`,
		`{"data":{"transcript":{"results":[null,1,"x",{"speaker_id":{"name":2}}]}}}`,
		`{"timestamp":"99999999999999999999","createdAt":1e19,"data":{"failedAt":"0x10"}}`,
		strings.Repeat(`{"data":`, 100),
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		env := ParseEnvelope(body)
		tr, ok := ParseTranscript(body)
		pretty, prettyOK := Pretty(body)
		summary := Summary(body, 80)
		if got := Decode(body).Summary(body, 80); got != summary {
			t.Errorf("Doc.Summary = %q, want Summary's %q", got, summary)
		}

		// A transcript needs a JSON object, which the envelope must have seen too.
		if ok && !env.JSON {
			t.Errorf("ParseTranscript ok with Envelope.JSON = false")
		}
		if !ok && (tr.Status != "" || len(tr.Segments) != 0 || len(tr.Missing) != 0) {
			t.Errorf("ok=false transcript = %+v, want zero", tr)
		}
		if tr.DurationMS < 0 {
			t.Errorf("DurationMS = %d, want >= 0", tr.DurationMS)
		}
		for _, seg := range tr.Segments {
			if seg.StartMS < 0 || seg.EndMS < 0 || !utf8.ValidString(seg.Text+seg.Speaker) {
				t.Errorf("segment = %+v, want non-negative times and valid UTF-8", seg)
			}
		}
		for _, s := range []string{tr.Status, tr.Text, tr.ErrorMessage, env.EventType, env.Title} {
			if !utf8.ValidString(s) {
				t.Errorf("string %q is not valid UTF-8", s)
			}
		}
		switch tr.Status {
		case "", StatusCompleted, StatusFailed, StatusProcessing:
		default:
			t.Errorf("Status = %q, want a normalised status", tr.Status)
		}

		// Pretty accepts exactly the valid JSON documents.
		if want := json.Valid(bytes.TrimPrefix(body, utf8BOM)); prettyOK != want {
			t.Errorf("Pretty ok = %v, want %v", prettyOK, want)
		}
		if !utf8.ValidString(pretty) {
			t.Errorf("Pretty = %q, not valid UTF-8", pretty)
		}

		if n := utf8.RuneCountInString(summary); n > 80 || !utf8.ValidString(summary) ||
			strings.ContainsAny(summary, "\n\r") {
			t.Errorf("Summary = %q (%d runes), want one valid line of at most 80 runes",
				summary, n)
		}
	})
}
