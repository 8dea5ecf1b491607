package plaud

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// mustReadFixture returns the exact bytes of testdata/name.
func mustReadFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatalf("read fixture: %v", err)
	}
	return b
}

// fixtureNames lists the webhook bodies in testdata (signatures.json is not one).
func fixtureNames(tb testing.TB) []string {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		tb.Fatalf("glob testdata: %v", err)
	}
	var names []string
	for _, p := range paths {
		if name := filepath.Base(p); name != "signatures.json" {
			names = append(names, name)
		}
	}
	return names
}

// TestFixtureBytesUnchanged proves the copied fixtures are byte-identical to the shared corpus:
// their HMACs must match the signatures recorded over the original bytes.
func TestFixtureBytesUnchanged(t *testing.T) {
	var sigs struct {
		Secret string `json:"secret"`
		Files  map[string]struct {
			Devguide map[string]string `json:"devguide"`
		} `json:"files"`
	}
	if err := json.Unmarshal(mustReadFixture(t, "signatures.json"), &sigs); err != nil {
		t.Fatalf("decode signatures.json: %v", err)
	}

	// Every body in testdata must be listed, and every listed body must be in testdata.
	var listed []string
	for name := range sigs.Files {
		listed = append(listed, name)
	}
	slices.Sort(listed)
	if got, want := fixtureNames(t), listed; !slices.Equal(got, want) {
		t.Fatalf("testdata bodies = %v, want %v", got, want)
	}

	for _, name := range listed {
		t.Run(name, func(t *testing.T) {
			mac := hmac.New(sha256.New, []byte(sigs.Secret))
			mac.Write(mustReadFixture(t, name))
			got := hex.EncodeToString(mac.Sum(nil))
			if want := sigs.Files[name].Devguide["Plaud-Signature"]; got != want {
				t.Errorf("HMAC = %s, want %s (fixture bytes changed?)", got, want)
			}
		})
	}
}

// utc builds a UTC time for expectations.
func utc(year int, month time.Month, day, hour, min, sec int) time.Time {
	return time.Date(year, month, day, hour, min, sec, 0, time.UTC)
}

// envelopeDiff lists the fields in which got differs from want.
func envelopeDiff(got, want Envelope) []string {
	var diffs []string
	add := func(field string, g, w any) {
		diffs = append(diffs, field+" = "+quote(g)+", want "+quote(w))
	}
	if got.EventType != want.EventType {
		add("EventType", got.EventType, want.EventType)
	}
	if got.EnvelopeID != want.EnvelopeID {
		add("EnvelopeID", got.EnvelopeID, want.EnvelopeID)
	}
	if got.JSON != want.JSON {
		add("JSON", got.JSON, want.JSON)
	}
	if got.FileID != want.FileID {
		add("FileID", got.FileID, want.FileID)
	}
	if got.TranscriptionID != want.TranscriptionID {
		add("TranscriptionID", got.TranscriptionID, want.TranscriptionID)
	}
	if got.DeviceID != want.DeviceID {
		add("DeviceID", got.DeviceID, want.DeviceID)
	}
	if got.WorkflowID != want.WorkflowID {
		add("WorkflowID", got.WorkflowID, want.WorkflowID)
	}
	if !got.OccurredAt.Equal(want.OccurredAt) || got.OccurredAt.Location() != time.UTC {
		add("OccurredAt", got.OccurredAt, want.OccurredAt)
	}
	if got.Title != want.Title {
		add("Title", got.Title, want.Title)
	}
	return diffs
}

// quote formats a value for a failure message, quoting strings so "" is visible.
func quote(v any) string {
	if s, ok := v.(string); ok {
		b, _ := json.Marshal(s)
		return string(b)
	}
	if t, ok := v.(time.Time); ok {
		return t.Format(time.RFC3339Nano) + " (" + t.Location().String() + ")"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestParseEnvelopeFixtures(t *testing.T) {
	const dev = "dev_9KX2M4"
	tests := []struct {
		file string
		want Envelope
	}{
		{"audio_transcribe.completed.cjk-ja.json", Envelope{
			EventType: "audio_transcribe.completed", EnvelopeID: "evt_01J9Z6ZK2VY5T8R3Q1P0N9M8L7",
			JSON: true, FileID: "c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4",
			TranscriptionID: "task_exec_5e2a7d31bb90", OccurredAt: utc(2026, 1, 16, 1, 15, 30)}},
		{"audio_transcribe.completed.failure.json", Envelope{
			EventType: "audio_transcribe.completed", EnvelopeID: "evt_01J9Z7M3N5P7Q9R1S3T5V7W9X1",
			JSON: true, FileID: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
			TranscriptionID: "task_exec_9a0b1c2d3e4f", OccurredAt: utc(2026, 1, 16, 3, 27, 12)}},
		{"audio_transcribe.completed.long-multispeaker.json", Envelope{
			EventType: "audio_transcribe.completed", EnvelopeID: "evt_01J9Z5B2C4D6E8F0G1H3J5K7M9",
			JSON: true, FileID: "a0b1c2d3e4f5061728394a5b6c7d8e9f",
			TranscriptionID: "task_exec_c41d88e0f7a2", OccurredAt: utc(2026, 1, 15, 11, 3, 55)}},
		{"audio_transcribe.completed.minimal.json", Envelope{
			EventType: "audio_transcribe.completed", JSON: true,
			FileID: "f3a9c2d4e5b64f7a8c1d2e3f4a5b6c7d"}},
		{"audio_transcribe.completed.short.json", Envelope{
			EventType: "audio_transcribe.completed", EnvelopeID: "evt_01J9Z3K7Q2W8X4M6N5P0R1S2T3",
			JSON: true, FileID: "6b1f0e2a9d7c4b3e8f5a1c2d3e4f5a6b",
			TranscriptionID: "task_exec_7f3e1c9a2b4d", OccurredAt: utc(2026, 1, 15, 9, 42, 7)}},
		{"device.battery_low.json", Envelope{
			EventType: "device.battery_low", EnvelopeID: "evt_2Ws4xE6dC8rF0vT2", JSON: true,
			DeviceID: dev, OccurredAt: utc(2026, 3, 24, 16, 12, 44)}},
		{"device.connected.json", Envelope{
			EventType: "device.connected", EnvelopeID: "evt_1Mn3bV5cX7zL9kJ2", JSON: true,
			DeviceID: dev, OccurredAt: utc(2026, 3, 20, 14, 5, 0)}},
		{"device.disconnected.json", Envelope{
			EventType: "device.disconnected", EnvelopeID: "evt_4Gf6dS8aP0oI2uY4", JSON: true,
			DeviceID: dev, OccurredAt: utc(2026, 3, 24, 18, 30, 12)}},
		{"device.ota_completed.json", Envelope{
			EventType: "device.ota_completed", EnvelopeID: "evt_9Bg1nH3mJ5kL7pO9", JSON: true,
			DeviceID: dev, OccurredAt: utc(2026, 3, 26, 3, 0, 41)}},
		{"device.ota_failed.json", Envelope{
			EventType: "device.ota_failed", EnvelopeID: "evt_5Vf7bG9nH1jM3kL5", JSON: true,
			DeviceID: dev, OccurredAt: utc(2026, 3, 26, 3, 4, 19)}},
		{"device.recording_completed.json", Envelope{
			EventType: "device.recording_completed", EnvelopeID: "evt_7Tr9eW1qA3sD5fG7",
			JSON: true, FileID: "file_01HZX3T5Y7U9I1O3P5A7S9D1F3",
			TranscriptionID: "txn_01HZX4Q8W2E6R0T3Y7U1I5O9PA", DeviceID: dev,
			OccurredAt: utc(2026, 3, 24, 10, 2, 16), Title: "2026-03-24 09:31 Weekly sync.opus"}},
		{"device.recording_completed.no-transcript.json", Envelope{
			EventType: "device.recording_completed", EnvelopeID: "evt_0Pl2ok4IJ6uh8YG0",
			JSON: true, FileID: "file_01HZX9Q1W3E5R7T9Y1U3I5O7P9", DeviceID: dev,
			OccurredAt: utc(2026, 3, 24, 12, 40, 2), Title: "2026-03-24 12:35 Voice memo.opus"}},
		{"device.synced.json", Envelope{
			EventType: "device.synced", EnvelopeID: "evt_6Yh1jK3lZ5xC7vB9", JSON: true,
			FileID: "file_01HZX3T5Y7U9I1O3P5A7S9D1F3", DeviceID: dev,
			OccurredAt: utc(2026, 3, 24, 9, 58, 20), Title: "2026-03-24 09:31 Weekly sync.opus"}},
		{"transcription.completed.cjk-zh.json", Envelope{
			EventType: "transcription.completed", EnvelopeID: "evt_8Rt4yU6iO2pA0sD3", JSON: true,
			TranscriptionID: "txn_01HZXA1S3D5F7G9H1J3K5L7Z9X",
			OccurredAt:      utc(2026, 3, 25, 2, 20, 11)}},
		{"transcription.completed.long-multispeaker.json", Envelope{
			EventType: "transcription.completed", EnvelopeID: "evt_5Hc2pW9zL4nK8qD1", JSON: true,
			TranscriptionID: "txn_01HZX7M3B5N7V9C1X3Z5L7K9JH",
			OccurredAt:      utc(2026, 3, 24, 15, 48, 40)}},
		{"transcription.completed.short.json", Envelope{
			EventType: "transcription.completed", EnvelopeID: "evt_2Nf8kQ1xV7bR3mT9", JSON: true,
			TranscriptionID: "txn_01HZX4Q8W2E6R0T3Y7U1I5O9PA",
			OccurredAt:      utc(2026, 3, 24, 10, 2, 15)}},
		{"transcription.failed.json", Envelope{
			EventType: "transcription.failed", EnvelopeID: "evt_3Qw7eR1tY5uI9oP2", JSON: true,
			TranscriptionID: "txn_01HZXC4V6B8N0M2Q4W6E8R0T2Y",
			OccurredAt:      utc(2026, 3, 25, 8, 11, 3)}},
		{"unknown.future_event.json", Envelope{
			EventType: "summary.completed", EnvelopeID: "evt_8Zx0cV2bN4mQ6wE8", JSON: true,
			TranscriptionID: "txn_01HZX4Q8W2E6R0T3Y7U1I5O9PA",
			OccurredAt:      utc(2026, 3, 27, 7, 30, 0)}},
		// signatures.json is JSON but no webhook: no event or ids, yet its top-level
		// "timestamp": "1767225600" is read as Unix seconds in a string.
		{"signatures.json", Envelope{JSON: true, OccurredAt: utc(2026, 1, 1, 0, 0, 0)}},
	}

	// The table must cover every body in testdata, so a new fixture cannot slip past.
	var covered []string
	for _, tt := range tests {
		covered = append(covered, tt.file)
	}
	for _, name := range fixtureNames(t) {
		if !slices.Contains(covered, name) {
			t.Errorf("fixture %s has no row in the envelope table", name)
		}
	}

	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got := ParseEnvelope(mustReadFixture(t, tt.file))
			for _, d := range envelopeDiff(got, tt.want) {
				t.Error(d)
			}
		})
	}
}

// segmentWant is the expected shape of one segment, for first/last checks.
type segmentWant struct {
	StartMS, EndMS int64
	Speaker        string
}

func TestParseTranscriptFixtures(t *testing.T) {
	tests := []struct {
		file         string
		wantOK       bool
		status       string
		language     string
		durationMS   int64
		segments     int
		first, last  segmentWant
		speakers     int    // distinct speaker labels
		textHas      string // a substring the full text must contain
		errCode      string
		errMessage   string
		missing      []string
		textIsJoined bool // Text equals the segment texts joined by joinSegments
	}{
		{
			file: "audio_transcribe.completed.cjk-ja.json", wantOK: true,
			status: StatusCompleted, language: "ja", durationMS: 57000, segments: 9,
			first: segmentWant{800, 7950, "Speaker 1"}, last: segmentWant{49310, 55690, "Speaker 1"},
			speakers: 3, textHas: "英語版と中文版も同時に用意します 👍中国市场的反馈也很重要，",
			textIsJoined: true,
		},
		{
			file: "audio_transcribe.completed.failure.json", wantOK: true,
			status: StatusFailed, errCode: "AUDIO_DECODE_ERROR",
			errMessage: "Audio file could not be decoded (truncated opus stream).",
			missing:    []string{"no duration", "no segments", "no text"},
		},
		{
			file: "audio_transcribe.completed.long-multispeaker.json", wantOK: true,
			status: StatusCompleted, language: "en", durationMS: 1056000, segments: 200,
			first: segmentWant{1200, 5730, "Speaker 1"}, last: segmentWant{1050140, 1054230, "Speaker 1"},
			speakers: 4, textHas: "I'll send the updated timeline to everyone by Wednesday.",
			textIsJoined: true,
		},
		{
			file: "audio_transcribe.completed.minimal.json", wantOK: true,
			missing: []string{"no duration", "no segments", "no text", "no status"},
		},
		{
			file: "audio_transcribe.completed.short.json", wantOK: true,
			status: StatusCompleted, language: "en", durationMS: 23000, segments: 3,
			first: segmentWant{0, 7300, "Speaker 1"}, last: segmentWant{16000, 22100, "Speaker 1"},
			speakers: 1, textHas: "inventory counts are due Friday at noon.", textIsJoined: true,
		},
		{file: "device.battery_low.json"},
		{file: "device.connected.json"},
		{file: "device.disconnected.json"},
		{file: "device.ota_completed.json"},
		// ota_failed has an error object, but it is a firmware error, not a transcript.
		{file: "device.ota_failed.json"},
		{
			// The transcript object has no status and no duration of its own: the status is
			// inferred and the duration is the recording's data.durationMs.
			file: "device.recording_completed.json", wantOK: true,
			status: StatusCompleted, language: "en", durationMS: 1843000, segments: 3,
			first: segmentWant{0, 7300, "Speaker 1"}, last: segmentWant{16000, 22100, "Speaker 1"},
			speakers: 1, textHas: "Quick memo before I forget", textIsJoined: true,
			missing: []string{"no status; assumed completed"},
		},
		{file: "device.recording_completed.no-transcript.json"},
		{file: "device.synced.json"},
		{
			file: "transcription.completed.cjk-zh.json", wantOK: true,
			status: StatusCompleted, language: "zh", durationMS: 50000, segments: 9,
			first: segmentWant{800, 6160, "Speaker 1"}, last: segmentWant{44410, 49230, "Speaker 1"},
			speakers: 3, textHas: "日本的客户希望支持「話者名の変更」，", textIsJoined: true,
		},
		{
			file: "transcription.completed.long-multispeaker.json", wantOK: true,
			status: StatusCompleted, language: "en", durationMS: 1051000, segments: 200,
			first: segmentWant{1200, 5720, "Speaker 1"}, last: segmentWant{1043770, 1049100, "Speaker 3"},
			speakers: 4, textHas: "Good point. Let's write that down as an open question.",
			textIsJoined: true,
		},
		{
			file: "transcription.completed.short.json", wantOK: true,
			status: StatusCompleted, language: "en", durationMS: 23000, segments: 3,
			first: segmentWant{0, 7300, "Speaker 1"}, last: segmentWant{16000, 22100, "Speaker 1"},
			speakers: 1, textHas: "Ask facilities to look at it on Thursday", textIsJoined: true,
		},
		{
			file: "transcription.failed.json", wantOK: true,
			status: StatusFailed, errCode: "audio_url_unreachable",
			errMessage: "Pre-signed audioUrl returned HTTP 403 (expired).",
			missing:    []string{"no duration", "no segments", "no text"},
		},
		// Names a transcription id but carries no transcript, and is not a transcription event.
		{file: "unknown.future_event.json"},
	}

	// Every webhook body in testdata needs a row.
	var covered []string
	for _, tt := range tests {
		covered = append(covered, tt.file)
	}
	for _, name := range fixtureNames(t) {
		if !slices.Contains(covered, name) {
			t.Errorf("fixture %s has no row in the transcript table", name)
		}
	}

	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, ok := ParseTranscript(mustReadFixture(t, tt.file))
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				if got.Status != "" || got.Text != "" || len(got.Segments) != 0 {
					t.Errorf("ok=false transcript = %+v, want zero", got)
				}
				return
			}
			if got.Status != tt.status {
				t.Errorf("Status = %q, want %q", got.Status, tt.status)
			}
			if got.Language != tt.language {
				t.Errorf("Language = %q, want %q", got.Language, tt.language)
			}
			if got.DurationMS != tt.durationMS {
				t.Errorf("DurationMS = %d, want %d", got.DurationMS, tt.durationMS)
			}
			if got.ErrorCode != tt.errCode {
				t.Errorf("ErrorCode = %q, want %q", got.ErrorCode, tt.errCode)
			}
			if got.ErrorMessage != tt.errMessage {
				t.Errorf("ErrorMessage = %q, want %q", got.ErrorMessage, tt.errMessage)
			}
			if !slices.Equal(got.Missing, tt.missing) {
				t.Errorf("Missing = %q, want %q", got.Missing, tt.missing)
			}
			if !strings.Contains(got.Text, tt.textHas) {
				t.Errorf("Text = %q, want it to contain %q", got.Text, tt.textHas)
			}
			if !utf8.ValidString(got.Text) {
				t.Errorf("Text is not valid UTF-8")
			}

			if len(got.Segments) != tt.segments {
				t.Fatalf("len(Segments) = %d, want %d", len(got.Segments), tt.segments)
			}
			if tt.segments == 0 {
				return
			}
			first, last := got.Segments[0], got.Segments[len(got.Segments)-1]
			if g := (segmentWant{first.StartMS, first.EndMS, first.Speaker}); g != tt.first {
				t.Errorf("first segment = %+v, want %+v", g, tt.first)
			}
			if g := (segmentWant{last.StartMS, last.EndMS, last.Speaker}); g != tt.last {
				t.Errorf("last segment = %+v, want %+v", g, tt.last)
			}
			speakers := map[string]bool{}
			for i, seg := range got.Segments {
				speakers[seg.Speaker] = true
				if seg.Index != i {
					t.Errorf("Segments[%d].Index = %d, want %d", i, seg.Index, i)
				}
				if seg.EndMS < seg.StartMS || seg.Text == "" {
					t.Errorf("Segments[%d] = %+v, want end >= start and text", i, seg)
				}
			}
			if len(speakers) != tt.speakers {
				t.Errorf("distinct speakers = %d, want %d", len(speakers), tt.speakers)
			}

			// The fixtures' full text is exactly their segments joined, spaces or no spaces
			// depending on the script, which checks the fallback join used when text is absent.
			if joined := joinSegments(got.Segments); tt.textIsJoined && joined != got.Text {
				t.Errorf("joinSegments = %q, want %q", joined, got.Text)
			}
		})
	}
}

// TestCJKSegmentsSurvive checks whole CJK segment texts byte for byte, including full-width
// punctuation, 「」 and the emoji.
func TestCJKSegmentsSurvive(t *testing.T) {
	tests := []struct {
		file  string
		index int
		want  string
	}{
		{"audio_transcribe.completed.cjk-ja.json", 6, "私が担当します。英語版と中文版も同時に用意します 👍"},
		{"audio_transcribe.completed.cjk-ja.json", 7, "中国市场的反馈也很重要，我们下周和上海团队再确认一下。"},
		{"audio_transcribe.completed.cjk-ja.json", 4, "価格は税込み 19,800 円で、9月1日発売を想定しています。"},
		{"transcription.completed.cjk-zh.json", 7,
			"另外，日本的客户希望支持「話者名の変更」，也就是可以修改说话人名字。"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			tr, ok := ParseTranscript(mustReadFixture(t, tt.file))
			if !ok || len(tr.Segments) <= tt.index {
				t.Fatalf("ParseTranscript ok = %v with %d segments, want segment %d",
					ok, len(tr.Segments), tt.index)
			}
			if got := tr.Segments[tt.index].Text; got != tt.want {
				t.Errorf("Segments[%d].Text = %q, want %q", tt.index, got, tt.want)
			}
		})
	}
}
