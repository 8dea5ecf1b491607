package plaud

import (
	"reflect"
	"strings"
	"testing"
)

// TestParseTranscriptVariants covers each alternative naming and unit with hand-made bodies,
// comparing the whole Transcript.
func TestParseTranscriptVariants(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		wantOK bool
		want   Transcript
	}{
		{
			name: "results with numeric and string speaker_id, seconds rounded, text joined",
			body: string(mustReadFixture(t, "variants/transcription.completed.results-speaker-id.json")),
			want: Transcript{
				Status: StatusCompleted, Language: "de", DurationMS: 12346,
				Text: "Guten Morgen zusammen. Morgen! Fangen wir an.",
				Segments: []Segment{
					{Index: 0, StartMS: 0, EndMS: 7300, Speaker: "2", Text: " Guten Morgen zusammen."},
					{Index: 1, StartMS: 7300, EndMS: 9001, Speaker: "1", Text: "Morgen!"},
					{Index: 2, StartMS: 9500, EndMS: 12250, Speaker: "2", Text: "Fangen wir an."},
				},
				Missing: []string{"no full text; joined from segments"},
			},
			wantOK: true,
		},
		{
			name: "consumer ms start_time/end_time/content, start_ms/end_ms, original_speaker",
			body: string(mustReadFixture(t, "variants/audio_transcribe.completed.consumer-ms.json")),
			want: Transcript{
				Status: StatusCompleted, Language: "fr", DurationMS: 61000,
				Text: "Bonjour à tous On commence.",
				Segments: []Segment{
					{Index: 0, StartMS: 0, EndMS: 1500, Speaker: "Alice", Text: "Bonjour"},
					{Index: 1, StartMS: 1500, EndMS: 3251, Speaker: "Speaker 2", Text: "à tous"},
					{Index: 2, StartMS: 4000, EndMS: 60999, Text: "On commence."},
				},
				Missing: []string{"no full text; joined from segments"},
			},
			wantOK: true,
		},
		{
			name: "camelCase startMs/endMs, durationMs, speaker object, fullText",
			body: `{"event":"transcription.completed","data":{"status":"done","durationMs":"5000",
				"fullText":"Hi.","segments":[{"startMs":10,"endMs":900,"text":"Hi.",
				"speaker":{"name":"Bob"}}]}}`,
			want: Transcript{
				Status: StatusCompleted, DurationMS: 5000, Text: "Hi.",
				Segments: []Segment{{Index: 0, StartMS: 10, EndMS: 900, Speaker: "Bob", Text: "Hi."}},
			},
			wantOK: true,
		},
		{
			name: "partner GET shape in data.data, status one level up",
			body: `{"event":"transcription.completed","data":{"transcription_id":"t","status":"SUCCESS",
				"data":{"text":"a b","language":"en","duration":2,
				"segments":[{"start":0,"end":1,"text":"a","speaker":"Speaker 1"},
				{"start":1,"end":2,"text":"b","speaker":"Speaker 2"}]}}}`,
			want: Transcript{
				Status: StatusCompleted, Language: "en", DurationMS: 2000, Text: "a b",
				Segments: []Segment{
					{Index: 0, StartMS: 0, EndMS: 1000, Speaker: "Speaker 1", Text: "a"},
					{Index: 1, StartMS: 1000, EndMS: 2000, Speaker: "Speaker 2", Text: "b"},
				},
			},
			wantOK: true,
		},
		{
			name: "data.result object",
			body: `{"event_type":"workflow.completed","data":{"workflow_id":"w","result":{
				"status":"SUCCESS","text":"x","duration_seconds":1.5,
				"segments":[{"start":0,"end":1.5,"text":"x","speaker":"S"}]}}}`,
			want: Transcript{
				Status: StatusCompleted, DurationMS: 1500, Text: "x",
				Segments: []Segment{{Index: 0, StartMS: 0, EndMS: 1500, Speaker: "S", Text: "x"}},
			},
			wantOK: true,
		},
		{
			name: "no event type, top-level GET response",
			body: `{"transcription_id":"t","status":"PROGRESS","data":{"segments":[]}}`,
			want: Transcript{
				Status:  StatusProcessing,
				Missing: []string{"no duration", "no segments", "no text"},
			},
			wantOK: true,
		},
		{
			name: "FAILURE with error string",
			body: `{"event_type":"audio_transcribe.completed","data":{"file_id":"f","status":"FAILURE",
				"error":"decoder crashed"}}`,
			want: Transcript{
				Status: StatusFailed, ErrorMessage: "decoder crashed",
				Missing: []string{"no duration", "no segments", "no text"},
			},
			wantOK: true,
		},
		{
			name: "REVOKED",
			body: `{"event_type":"audio_transcribe.completed","data":{"status":"REVOKED"}}`,
			want: Transcript{
				Status:  StatusFailed,
				Missing: []string{"no duration", "no segments", "no text"},
			},
			wantOK: true,
		},
		{
			name: "PENDING with text but no segments",
			body: `{"event":"transcription.completed","data":{"status":"PENDING","text":"partial",
				"duration":3}}`,
			want: Transcript{
				Status: StatusProcessing, DurationMS: 3000, Text: "partial",
				Missing: []string{"no segments"},
			},
			wantOK: true,
		},
		{
			name: "numeric ai_status 2 means completed",
			body: `{"event":"transcription.completed","data":{"ai_status":2,"text":"t","duration":1}}`,
			want: Transcript{
				Status: StatusCompleted, DurationMS: 1000, Text: "t",
				Missing: []string{"no segments"},
			},
			wantOK: true,
		},
		{
			name: "unknown status word is reported, not guessed",
			body: `{"event":"transcription.completed","data":{"status":"weird","text":"t","duration":1}}`,
			want: Transcript{
				DurationMS: 1000, Text: "t",
				Missing: []string{"no segments", `unknown status "weird"`},
			},
			wantOK: true,
		},
		{
			name: "transcription.failed without status, error at top level with numeric code",
			body: `{"event":"transcription.failed","data":{"transcriptionId":"x"},
				"error":{"code":500,"message":"boom"}}`,
			want: Transcript{
				Status: StatusFailed, ErrorCode: "500", ErrorMessage: "boom",
				Missing: []string{"no duration", "no segments", "no text", "no status; assumed failed"},
			},
			wantOK: true,
		},
		{
			name: "transcription.failed without status or error",
			body: `{"event":"transcription.failed","data":{}}`,
			want: Transcript{
				Status:  StatusFailed,
				Missing: []string{"no duration", "no segments", "no text", "no status; assumed failed"},
			},
			wantOK: true,
		},
		{
			name: "flat error_code and error_message",
			body: `{"event_type":"audio_transcribe.completed","data":{"status":"FAILURE",
				"error_code":"E1","error_message":"bad audio"}}`,
			want: Transcript{
				Status: StatusFailed, ErrorCode: "E1", ErrorMessage: "bad audio",
				Missing: []string{"no duration", "no segments", "no text"},
			},
			wantOK: true,
		},
		{
			name: "broken segments are reported one by one",
			body: `{"event":"transcription.completed","data":{"status":"completed","duration":9,
				"segments":[{"start":0,"text":"no end","speaker":"A"},
				"not an object",
				{"start":"abc","end":-1,"text":"bad times","speaker":"A"},
				{"start":5,"end":4,"speaker":"B"},
				{"start":1e300,"end":"6.5","text":"huge start"}]}}`,
			want: Transcript{
				Status: StatusCompleted, DurationMS: 9000,
				Text: "no end bad times huge start",
				Segments: []Segment{
					{Index: 0, StartMS: 0, Speaker: "A", Text: "no end"},
					{Index: 2, Speaker: "A", Text: "bad times"},
					{Index: 3, StartMS: 5000, EndMS: 4000, Speaker: "B"},
					{Index: 4, EndMS: 6500, Text: "huge start"},
				},
				Missing: []string{
					"segment 0: no end time",
					"segment 1: not an object",
					"segment 2: unreadable start time",
					"segment 2: unreadable end time",
					"segment 3: end before start",
					"segment 3: no text",
					"segment 4: unreadable start time",
					"no full text; joined from segments",
				},
			},
			wantOK: true,
		},
		{
			name: "segments without speakers get one note",
			body: `{"event":"transcription.completed","data":{"status":"completed","duration":2,
				"text":"a b","segments":[{"start":0,"end":1,"text":"a"},{"start":1,"end":2,"text":"b"}]}}`,
			want: Transcript{
				Status: StatusCompleted, DurationMS: 2000, Text: "a b",
				Segments: []Segment{
					{Index: 0, StartMS: 0, EndMS: 1000, Text: "a"},
					{Index: 1, StartMS: 1000, EndMS: 2000, Text: "b"},
				},
				Missing: []string{"no speakers"},
			},
			wantOK: true,
		},
		{
			name: "segments that is not an array, results used instead",
			body: `{"event":"transcription.completed","data":{"status":"completed","duration":1,
				"segments":"oops","results":[{"start":0,"end":1,"text":"r","speaker_id":0}]}}`,
			want: Transcript{
				Status: StatusCompleted, DurationMS: 1000, Text: "r",
				Segments: []Segment{{Index: 0, StartMS: 0, EndMS: 1000, Speaker: "0", Text: "r"}},
				Missing:  []string{"segments is not an array", "no full text; joined from segments"},
			},
			wantOK: true,
		},
		{
			name: "unreadable duration",
			body: `{"event":"transcription.completed","data":{"status":"completed","duration":"long",
				"text":"t"}}`,
			want: Transcript{
				Status: StatusCompleted, Text: "t",
				Missing: []string{"unreadable duration", "no segments"},
			},
			wantOK: true,
		},
		{
			name: "device.recording_completed with transcript as a string",
			body: `{"event":"device.recording_completed","data":{"durationMs":4000,
				"transcript":"just text"}}`,
			want: Transcript{
				Status: StatusCompleted, DurationMS: 4000, Text: "just text",
				Missing: []string{"no segments", "no status; assumed completed"},
			},
			wantOK: true,
		},
		{
			name: "device.recording_completed with an empty transcript object",
			body: `{"event":"device.recording_completed","data":{"transcript":{}}}`,
			want: Transcript{
				Missing: []string{"no duration", "no segments", "no text", "no status"},
			},
			wantOK: true,
		},
		{
			name: "unknown event that carries segments",
			body: `{"event":"recording.synced","data":{"segments":[{"start":0,"end":1,"text":"z",
				"speaker":"S"}],"duration":1}}`,
			want: Transcript{
				Status: StatusCompleted, DurationMS: 1000, Text: "z",
				Segments: []Segment{{Index: 0, StartMS: 0, EndMS: 1000, Speaker: "S", Text: "z"}},
				Missing: []string{"no full text; joined from segments",
					"no status; assumed completed"},
			},
			wantOK: true,
		},
		{
			name: "invalid UTF-8 inside a JSON string becomes U+FFFD",
			body: "{\"event\":\"transcription.completed\",\"data\":{\"status\":\"completed\"," +
				"\"duration\":1,\"text\":\"caf\xe9\"}}",
			want: Transcript{
				Status: StatusCompleted, DurationMS: 1000, Text: "caf\uFFFD",
				Missing: []string{"no segments"},
			},
			wantOK: true,
		},
		{
			name: "event name is matched case-insensitively",
			body: `{"type":" Transcription.Failed ","data":{}}`,
			want: Transcript{
				Status:  StatusFailed,
				Missing: []string{"no duration", "no segments", "no text", "no status; assumed failed"},
			},
			wantOK: true,
		},
		// Bodies that carry no transcript.
		{name: "device event", body: `{"event":"device.battery_low","data":{"batteryLevel":14}}`},
		{name: "device error is not a transcript failure",
			body: `{"event":"device.ota_failed","data":{"error":{"code":"x","message":"y"}}}`},
		{name: "transcript null",
			body: `{"event":"device.recording_completed","data":{"transcript":null}}`},
		{name: "unknown event with a result string", body: `{"event":"x.y","data":{"result":"ok"}}`},
		{name: "invalid JSON", body: `{"event":"transcription.completed",`},
		{name: "trailing garbage", body: `{"event":"transcription.completed"} {}`},
		{name: "invalid UTF-8 body", body: "\xff\xfe\x00garbage\xc3"},
		{name: "empty body", body: ""},
		{name: "whitespace body", body: " \n\t "},
		{name: "JSON array top level", body: `[{"event":"transcription.completed"}]`},
		{name: "JSON string top level", body: `"transcription.completed"`},
		{name: "JSON null", body: `null`},
		{name: "deeply nested garbage", body: strings.Repeat(`{"data":`, 20000) + "1" +
			strings.Repeat("}", 20000)},
		{name: "deeply nested arrays", body: strings.Repeat("[", 100000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseTranscript([]byte(tt.body))
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseTranscript =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestJoinSegments(t *testing.T) {
	tests := []struct {
		name  string
		texts []string
		want  string
	}{
		{"latin gets spaces", []string{"Hello", "world."}, "Hello world."},
		{"surrounding space trimmed, empty skipped", []string{" a ", "", "  ", "b"}, "a b"},
		{"japanese without spaces", []string{"はい。", "そうです。"}, "はい。そうです。"},
		{"emoji before han joins tight", []string{"します 👍", "中国"}, "します 👍中国"},
		{"full-width punctuation joins tight", []string{"OK", "（笑）"}, "OK（笑）"},
		{"korean keeps spaces", []string{"안녕하세요", "반갑습니다"}, "안녕하세요 반갑습니다"},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			segs := make([]Segment, len(tt.texts))
			for i, s := range tt.texts {
				segs[i].Text = s
			}
			if got := joinSegments(segs); got != tt.want {
				t.Errorf("joinSegments = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNormStatus(t *testing.T) {
	tests := []struct {
		raw    string
		want   string
		wantOK bool
	}{
		{"SUCCESS", StatusCompleted, true},
		{"completed", StatusCompleted, true},
		{"FAILURE", StatusFailed, true},
		{"failed", StatusFailed, true},
		{"REVOKED", StatusFailed, true},
		{"PENDING", StatusProcessing, true},
		{"RECEIVED", StatusProcessing, true},
		{"STARTED", StatusProcessing, true},
		{"PROGRESS", StatusProcessing, true},
		{"processing", StatusProcessing, true},
		{"In-Progress", StatusProcessing, true},
		{" Success ", StatusCompleted, true},
		{"2", StatusCompleted, true},
		{"1", StatusProcessing, true},
		{"-3", StatusFailed, true},
		{"7", "", false},
		{"", "", false},
		{"SUCCESSFUL-ISH", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, ok := normStatus(tt.raw)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("normStatus(%q) = %q, %v, want %q, %v", tt.raw, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
