package plaud

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// TestParseTranscriptNamingMatrix crosses every alternative naming and unit that PLAUD.md lists
// (envelope key and id spelling, segments or results, speaker or speaker_id as string or number,
// times in float seconds or integer milliseconds, text or content, the four status words) and
// checks that each combination reads as the same transcript.
func TestParseTranscriptNamingMatrix(t *testing.T) {
	envelopes := []struct {
		name, eventKey, event, idKey string
	}{
		{"event_type+snake", "event_type", "audio_transcribe.completed", "transcription_id"},
		{"event+camel", "event", "transcription.completed", "transcriptionId"},
		{"type+camel", "type", "transcription.completed", "transcriptionId"},
	}
	arrays := []string{"segments", "results"}
	speakers := []struct {
		name, key    string
		v1, v2       any
		want1, want2 string
	}{
		{"speaker", "speaker", "Speaker 1", "Speaker 2", "Speaker 1", "Speaker 2"},
		{"speaker_id number", "speaker_id", 1, 2, "1", "2"},
		{"speaker_id string", "speaker_id", "A", "B", "A", "B"},
		{"speakerId", "speakerId", 7, "8", "7", "8"},
	}
	units := []struct {
		name, start, end, durKey string
		s1, e1, s2, e2, dur      any
	}{
		{"float seconds", "start", "end", "duration", 0.5, 2.25, 2.25, 4.0, 4},
		{"start_time ms", "start_time", "end_time", "duration_ms", 500, 2250, 2250, 4000, 4000},
		{"start_ms", "start_ms", "end_ms", "durationMs", 500, 2250, 2250, 4000, "4000"},
		{"startTime ms", "startTime", "endTime", "duration_seconds", 500, 2250, 2250, 4000, "4.0"},
	}
	texts := []string{"text", "content"}
	statuses := []struct{ raw, want string }{
		{"SUCCESS", StatusCompleted}, {"completed", StatusCompleted},
		{"FAILURE", StatusFailed}, {"failed", StatusFailed},
	}

	n := 0
	for _, env := range envelopes {
		for _, arr := range arrays {
			for _, sp := range speakers {
				for _, u := range units {
					for _, tk := range texts {
						for _, st := range statuses {
							n++
							name := fmt.Sprintf("%s/%s/%s/%s/%s/%s", env.name, arr, sp.name, u.name, tk, st.raw)
							body, _ := json.Marshal(map[string]any{
								env.eventKey: env.event,
								"data": map[string]any{
									env.idKey: "tx_1", "status": st.raw, "language": "en",
									u.durKey: u.dur,
									arr: []any{
										map[string]any{u.start: u.s1, u.end: u.e1, tk: "hello", sp.key: sp.v1},
										map[string]any{u.start: u.s2, u.end: u.e2, tk: "world", sp.key: sp.v2},
									},
								},
							})
							tr, ok := ParseTranscript(body)
							want := Transcript{
								Status: st.want, Language: "en", DurationMS: 4000,
								Text: "hello world",
								Segments: []Segment{
									{Index: 0, StartMS: 500, EndMS: 2250, Speaker: sp.want1, Text: "hello"},
									{Index: 1, StartMS: 2250, EndMS: 4000, Speaker: sp.want2, Text: "world"},
								},
								Missing: []string{"no full text; joined from segments"},
							}
							if !ok || !reflect.DeepEqual(tr, want) {
								t.Errorf("%s:\n got %+v (ok %v)\nwant %+v", name, tr, ok, want)
							}
							e := ParseEnvelope(body)
							if e.EventType != env.event || e.TranscriptionID != "tx_1" {
								t.Errorf("%s: envelope = %q %q, want %q tx_1", name, e.EventType,
									e.TranscriptionID, env.event)
							}
						}
					}
				}
			}
		}
	}
	if n != 3*2*4*4*2*4 {
		t.Fatalf("ran %d combinations", n)
	}
}

// TestParseEnvelopeIDSpellings checks the file id and transcription id under every spelling and
// nesting the parser accepts.
func TestParseEnvelopeIDSpellings(t *testing.T) {
	tests := []struct {
		name, body       string
		file, transcript string
	}{
		{"snake in data", `{"event_type":"x","data":{"file_id":"F","transcription_id":"T"}}`, "F", "T"},
		{"camel in data", `{"event":"x","data":{"fileId":"F","transcriptionId":"T"}}`, "F", "T"},
		{"camel in data.transcript", `{"event":"x","data":{"fileId":"F","transcript":{"transcriptionId":"T"}}}`, "F", "T"},
		{"snake at top level", `{"event":"x","file_id":"F","transcription_id":"T"}`, "F", "T"},
		{"numeric ids", `{"event":"x","data":{"file_id":12,"transcriptionId":34}}`, "12", "34"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ParseEnvelope([]byte(tt.body))
			if e.FileID != tt.file || e.TranscriptionID != tt.transcript {
				t.Errorf("ids = %q %q, want %q %q", e.FileID, e.TranscriptionID, tt.file, tt.transcript)
			}
		})
	}
}
