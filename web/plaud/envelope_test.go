package plaud

import (
	"strings"
	"testing"
	"time"
)

// TestParseEnvelopeVariants covers the alternative envelope namings with hand-made bodies.
func TestParseEnvelopeVariants(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Envelope
	}{
		{
			name: "event_type wins over event and type",
			body: `{"event_type":"a.b","event":"c.d","type":"e.f"}`,
			want: Envelope{EventType: "a.b", JSON: true},
		},
		{
			name: "event wins over type",
			body: `{"event":"c.d","type":"e.f"}`,
			want: Envelope{EventType: "c.d", JSON: true},
		},
		{
			name: "type alone",
			body: `{"type":"e.f"}`,
			want: Envelope{EventType: "e.f", JSON: true},
		},
		{
			name: "non-string event is skipped",
			body: `{"event":{"name":"x"},"type":"e.f"}`,
			want: Envelope{EventType: "e.f", JSON: true},
		},
		{
			name: "snake_case ids in data",
			body: `{"event_type":"workflow.completed","data":{"file_id":"f1",
				"transcription_id":"t1","device_id":"d1","workflow_id":"w1"}}`,
			want: Envelope{EventType: "workflow.completed", JSON: true,
				FileID: "f1", TranscriptionID: "t1", DeviceID: "d1", WorkflowID: "w1"},
		},
		{
			name: "camelCase ids in data",
			body: `{"event":"transcription.completed","data":{"fileId":"f2",
				"transcriptionId":"t2","deviceId":"d2","workflowId":"w2"}}`,
			want: Envelope{EventType: "transcription.completed", JSON: true,
				FileID: "f2", TranscriptionID: "t2", DeviceID: "d2", WorkflowID: "w2"},
		},
		{
			name: "snake_case wins over camelCase in one object",
			body: `{"data":{"fileId":"camel","file_id":"snake"}}`,
			want: Envelope{JSON: true, FileID: "snake"},
		},
		{
			name: "data wins over the top level, top level is the fallback",
			body: `{"file_id":"top-f","transcription_id":"top-t","data":{"file_id":"data-f"}}`,
			want: Envelope{JSON: true, FileID: "data-f", TranscriptionID: "top-t"},
		},
		{
			name: "ids nested in data.result",
			body: `{"data":{"result":{"transcriptionId":"nested"}}}`,
			want: Envelope{JSON: true, TranscriptionID: "nested"},
		},
		{
			name: "numeric ids keep their exact text",
			body: `{"id":12345678901234567890,"data":{"file_id":42,"deviceId":1.50}}`,
			want: Envelope{JSON: true, EnvelopeID: "12345678901234567890", FileID: "42",
				DeviceID: "1.50"},
		},
		{
			name: "top-level id wins over event_id",
			body: `{"id":"a","event_id":"b","data":{"event_id":"c"}}`,
			want: Envelope{JSON: true, EnvelopeID: "a"},
		},
		{
			name: "event_id alone",
			body: `{"event_id":"b"}`,
			want: Envelope{JSON: true, EnvelopeID: "b"},
		},
		{
			name: "data.event_id as fallback",
			body: `{"event":"x","data":{"event_id":"c"}}`,
			want: Envelope{EventType: "x", JSON: true, EnvelopeID: "c"},
		},
		{
			name: "workflow.completed data.id is the workflow id",
			body: `{"event_type":"workflow.completed","data":{"id":"wf_9"}}`,
			want: Envelope{EventType: "workflow.completed", JSON: true, WorkflowID: "wf_9"},
		},
		{
			name: "data.id is not a workflow id for other events",
			body: `{"event_type":"audio_transcribe.completed","data":{"id":"x"}}`,
			want: Envelope{EventType: "audio_transcribe.completed", JSON: true},
		},
		{
			name: "title from title",
			body: `{"data":{"title":"Weekly sync","file_name":"a.mp3"}}`,
			want: Envelope{JSON: true, Title: "Weekly sync"},
		},
		{
			name: "title from file_name",
			body: `{"data":{"file_name":"a.mp3"}}`,
			want: Envelope{JSON: true, Title: "a.mp3"},
		},
		{
			name: "title from filename",
			body: `{"data":{"filename":"b.m4a"}}`,
			want: Envelope{JSON: true, Title: "b.m4a"},
		},
		{
			name: "time as Unix seconds number",
			body: `{"timestamp":1767225600}`,
			want: Envelope{JSON: true, OccurredAt: utc(2026, 1, 1, 0, 0, 0)},
		},
		{
			name: "time as Unix milliseconds number",
			body: `{"timestamp":1767225600250}`,
			want: Envelope{JSON: true,
				OccurredAt: utc(2026, 1, 1, 0, 0, 0).Add(250 * time.Millisecond)},
		},
		{
			name: "time as fractional Unix seconds string",
			body: `{"created_at":"1767225600.5"}`,
			want: Envelope{JSON: true,
				OccurredAt: utc(2026, 1, 1, 0, 0, 0).Add(500 * time.Millisecond)},
		},
		{
			name: "ISO time with offset is converted to UTC",
			body: `{"createdAt":"2026-01-01T09:00:00+09:00"}`,
			want: Envelope{JSON: true, OccurredAt: utc(2026, 1, 1, 0, 0, 0)},
		},
		{
			name: "ISO time with fraction and no zone is taken as UTC",
			body: `{"timestamp":"2026-01-01T00:00:00.125"}`,
			want: Envelope{JSON: true,
				OccurredAt: utc(2026, 1, 1, 0, 0, 0).Add(125 * time.Millisecond)},
		},
		{
			name: "unparseable top-level time falls through to data.completedAt",
			body: `{"timestamp":"yesterday","data":{"createdAt":"2026-02-01T00:00:00Z",
				"completedAt":"2026-02-02T00:00:00Z"}}`,
			want: Envelope{JSON: true, OccurredAt: utc(2026, 2, 2, 0, 0, 0)},
		},
		{
			name: "zero and negative Unix times are no time",
			body: `{"timestamp":0,"createdAt":-5}`,
			want: Envelope{JSON: true},
		},
		{
			name: "UTF-8 byte-order mark is ignored",
			body: "\xEF\xBB\xBF{\"event\":\"x\"}",
			want: Envelope{EventType: "x", JSON: true},
		},
		// Bodies that are not one JSON object give the zero Envelope.
		{name: "empty body", body: ""},
		{name: "invalid JSON", body: `{"event":`},
		{name: "plain text", body: "event=transcription.completed"},
		{name: "invalid UTF-8", body: "\xff\xfe\xfd"},
		{name: "JSON array top level", body: `[{"event":"x"}]`},
		{name: "JSON number top level", body: `42`},
		{name: "trailing garbage", body: `{"event":"x"}garbage`},
		{name: "deeply nested garbage", body: strings.Repeat(`{"a":[`, 50000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseEnvelope([]byte(tt.body))
			for _, d := range envelopeDiff(got, tt.want) {
				t.Error(d)
			}
		})
	}
}

func TestUnixTime(t *testing.T) {
	base := utc(2026, 1, 1, 0, 0, 0)
	tests := []struct {
		in     string
		want   time.Time
		wantOK bool
	}{
		{"1767225600", base, true},
		{"1767225600000", base, true},
		{"1767225600000000", base, true},
		{"1767225600000000000", base, true},
		{"1767225600.25", base.Add(250 * time.Millisecond), true},
		{"0", time.Time{}, false},
		{"-1", time.Time{}, false},
		{"1e25", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := unixTime(tt.in)
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Errorf("unixTime(%q) = %v, %v, want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
