package plaud

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Normalised transcript statuses. Transcript.Status is one of these or "" when unknown.
const (
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
	StatusProcessing = "processing"
)

// Transcript is a normalised transcript. Times are always integer milliseconds, whatever unit
// the body used.
type Transcript struct {
	// Status is StatusCompleted, StatusFailed, StatusProcessing or "" when unknown. It comes
	// from the status field (SUCCESS, FAILURE, REVOKED, completed, failed, PENDING, ...).
	// Without one it is inferred: "failed" when an error is present or the event is
	// transcription.failed, "completed" for transcription.completed or when a transcript with
	// text or segments is present; Missing then says the status was absent. A status word it
	// does not recognise gives "" and a Missing note, never a guess.
	Status string
	// Language is the language code as sent, e.g. "en" or "ja".
	Language string
	// DurationMS is the audio duration: duration and duration_seconds are seconds,
	// durationMs and duration_ms milliseconds. When the transcript object has none, the
	// enclosing data's duration (the recording's) is used.
	DurationMS int64
	// Text is the full text as sent, or else the segment texts joined: with a space, except
	// next to Chinese or Japanese characters, which are joined with nothing.
	Text string
	// Segments are the segment objects in the order sent. A time or text that cannot be
	// read is left at zero and noted in Missing; a segment is never dropped for it.
	Segments []Segment
	// ErrorCode and ErrorMessage come from error{code,message} or an error string, looked up
	// in the transcript, then data, then the top level.
	ErrorCode, ErrorMessage string
	// Missing lists, in plain words, what could not be read, e.g. "no segments" or
	// "segment 3: no end time". Segment numbers are Segment.Index values.
	Missing []string
}

// Segment is one timed piece of a transcript.
type Segment struct {
	// Index is the segment's 0-based position in the array it was sent in. Elements that are
	// not objects are skipped, so indexes can have gaps.
	Index int
	// StartMS and EndMS are offsets from the start of the audio. start/end are read as
	// seconds; start_ms, start_time, startTime (and the end forms) as milliseconds.
	StartMS, EndMS int64
	// Speaker is the label as sent, from speaker, speaker_id or original_speaker; a numeric
	// id is kept as its text ("2"). "" when none.
	Speaker string
	// Text is the segment text from text or content.
	Text string
}

// Status words, lower-cased, mapped to the normalised status. The upper-case states are
// Plaud Embedded's Celery-style task states; the others come from older docs and senders.
var statusWords = map[string]string{
	"success": StatusCompleted, "succeeded": StatusCompleted, "completed": StatusCompleted,
	"complete": StatusCompleted, "done": StatusCompleted, "finished": StatusCompleted,
	"ready":   StatusCompleted,
	"failure": StatusFailed, "failed": StatusFailed, "fail": StatusFailed,
	"error": StatusFailed, "errored": StatusFailed, "revoked": StatusFailed,
	"cancelled": StatusFailed, "canceled": StatusFailed, "rejected": StatusFailed,
	"timeout": StatusFailed, "timed_out": StatusFailed, "expired": StatusFailed,
	"pending": StatusProcessing, "received": StatusProcessing, "started": StatusProcessing,
	"progress": StatusProcessing, "processing": StatusProcessing, "in_progress": StatusProcessing,
	"queued": StatusProcessing, "running": StatusProcessing, "retry": StatusProcessing,
	"submitted": StatusProcessing,
}

// Field-name variants, most common first.
var (
	statusKeys   = []string{"status", "state", "task_status", "taskStatus", "ai_status"}
	languageKeys = []string{"language", "lang", "detected_language", "detectedLanguage",
		"language_code", "languageCode"}
	textKeys     = []string{"text", "content", "full_text", "fullText"}
	segmentsKeys = []string{"segments", "results"}
	speakerKeys  = []string{"speaker", "speaker_id", "speakerId", "speaker_name", "speakerName",
		"original_speaker", "originalSpeaker", "speaker_label", "speakerLabel"}
	startMSKeys  = []string{"start_ms", "startMs", "start_time", "startTime"}
	endMSKeys    = []string{"end_ms", "endMs", "end_time", "endTime"}
	startSecKeys = []string{"start", "start_seconds", "startSeconds"}
	endSecKeys   = []string{"end", "end_seconds", "endSeconds"}
	durMSKeys    = []string{"duration_ms", "durationMs"}
	durSecKeys   = []string{"duration", "duration_seconds", "durationSeconds"}
)

// ParseTranscript returns the transcript a body carries. ok is false when the event carries
// none: a body that is not a JSON object, or an event that is not a transcription event and
// has no transcript in it (device.battery_low, or device.recording_completed with transcript
// null). A transcription event (audio_transcribe.*, transcription.*, workflow.completed)
// always gives ok=true, with Missing saying what it lacked.
func ParseTranscript(body []byte) (Transcript, bool) { return Decode(body).Transcript() }

// Transcript returns the transcript the decoded body carries (see ParseTranscript).
func (d Doc) Transcript() (Transcript, bool) {
	root := d.root
	if !d.ok {
		return Transcript{}, false
	}
	event := normEvent(firstString(root, eventTypeKeys...))
	data := objectAt(root, "data")

	// The transcript sits in data.transcript, data.result, data.data, data or the top level;
	// every field is looked up in that order, so the most specific place wins.
	scopes, inline := transcriptScopes(root, data)

	// Other events count only when they carry a transcript: a data.transcript object or
	// string (even an empty object), or a segments array somewhere.
	carried := hasSegments(scopes)
	switch v := data["transcript"].(type) {
	case map[string]any:
		carried = true
	case string:
		carried = carried || v != ""
	}
	if !isTranscriptionEvent(event) && !carried {
		return Transcript{}, false
	}

	var t Transcript
	t.Language = firstTextIn(scopes, languageKeys...)
	t.readDuration(scopes)
	t.readError(scopes)
	t.readSegments(scopes)
	t.readText(scopes, inline)
	t.readStatus(scopes, event)
	return t, true
}

// isTranscriptionEvent reports whether the (normalised) event is about a transcription job,
// so that a body without a readable transcript still describes one.
func isTranscriptionEvent(event string) bool {
	return strings.HasPrefix(event, "transcription.") ||
		strings.HasPrefix(event, "audio_transcribe.") ||
		strings.HasPrefix(event, "transcript.") ||
		event == "workflow.completed"
}

// transcriptScopes lists the objects a transcript's fields are looked up in, most specific
// first, and returns a transcript sent as a bare string in data.transcript or data.result.
func transcriptScopes(root, data map[string]any) ([]map[string]any, string) {
	var scopes []map[string]any
	var inline string
	if data != nil {
		for _, k := range []string{"transcript", "result", "data"} {
			switch v := data[k].(type) {
			case map[string]any:
				scopes = append(scopes, v)
			case string:
				if inline == "" && k != "data" {
					inline = v
				}
			}
		}
		scopes = append(scopes, data)
	}
	return append(scopes, root), inline
}

// hasSegments reports whether any scope holds a segments or results array.
func hasSegments(scopes []map[string]any) bool {
	for _, s := range scopes {
		for _, k := range segmentsKeys {
			if _, ok := s[k].([]any); ok {
				return true
			}
		}
	}
	return false
}

// note records something that could not be read.
func (t *Transcript) note(format string, args ...any) {
	t.Missing = append(t.Missing, fmt.Sprintf(format, args...))
}

// readDuration fills DurationMS from the first scope that has a readable duration.
func (t *Transcript) readDuration(scopes []map[string]any) {
	bad := false
	for _, s := range scopes {
		ms, found, ok := msField(s, durMSKeys, durSecKeys)
		if ok {
			t.DurationMS = ms
			return
		}
		bad = bad || found
	}
	if bad {
		t.note("unreadable duration")
		return
	}
	t.note("no duration")
}

// msField reads the first readable key of msKeys (milliseconds) or secKeys (seconds) in m.
// found reports whether any of the keys was present and not null.
func msField(m map[string]any, msKeys, secKeys []string) (ms int64, found, ok bool) {
	for _, unit := range []struct {
		keys    []string
		perUnit float64
	}{{msKeys, 1}, {secKeys, 1000}} {
		for _, k := range unit.keys {
			v, present := m[k]
			if !present || v == nil {
				continue
			}
			found = true
			if ms, ok := toMS(v, unit.perUnit); ok {
				return ms, true, true
			}
		}
	}
	return 0, found, false
}

// readError fills ErrorCode and ErrorMessage from an error object or string, or from flat
// error_code / error_message fields, in the first scope that has any.
func (t *Transcript) readError(scopes []map[string]any) {
	for _, s := range scopes {
		switch e := s["error"].(type) {
		case map[string]any:
			t.ErrorCode = firstText(e, "code", "error_code", "errorCode", "type")
			t.ErrorMessage = firstText(e, "message", "msg", "error_message", "errorMessage",
				"detail", "description", "reason")
		case string:
			t.ErrorMessage = e
		}
		if t.ErrorCode == "" && t.ErrorMessage == "" {
			t.ErrorCode = firstText(s, "error_code", "errorCode")
			t.ErrorMessage = firstText(s, "error_message", "errorMessage")
		}
		if t.ErrorCode != "" || t.ErrorMessage != "" {
			return
		}
	}
}

// readSegments fills Segments from the first segments or results array found.
func (t *Transcript) readSegments(scopes []map[string]any) {
	var arr []any
	found := false
	for _, s := range scopes {
		for _, k := range segmentsKeys {
			v, present := s[k]
			if !present || v == nil {
				continue
			}
			if a, ok := v.([]any); ok {
				arr, found = a, true
				break
			}
			t.note("%s is not an array", k)
		}
		if found {
			break
		}
	}
	if len(arr) == 0 {
		t.note("no segments")
		return
	}

	t.Segments = make([]Segment, 0, len(arr))
	withSpeaker := 0
	for i, v := range arr {
		m, ok := v.(map[string]any)
		if !ok {
			t.note("segment %d: not an object", i)
			continue
		}
		seg := t.readSegment(i, m)
		if seg.Speaker != "" {
			withSpeaker++
		}
		t.Segments = append(t.Segments, seg)
	}

	// Speakers are optional (diarization may be off): one note, not one per segment.
	if len(t.Segments) > 0 && withSpeaker == 0 {
		t.note("no speakers")
	}
}

// readSegment reads one segment object, noting each field it cannot read.
func (t *Transcript) readSegment(i int, m map[string]any) Segment {
	seg := Segment{Index: i}

	// Times: the unit follows the field name, milliseconds for *_ms / *_time, else seconds.
	var okStart, okEnd bool
	seg.StartMS, okStart = t.segmentTime(i, m, "start", startMSKeys, startSecKeys)
	seg.EndMS, okEnd = t.segmentTime(i, m, "end", endMSKeys, endSecKeys)
	if okStart && okEnd && seg.EndMS < seg.StartMS {
		t.note("segment %d: end before start", i)
	}

	seg.Speaker = speaker(m)
	if s, ok := firstTextValue(m, textKeys); ok {
		seg.Text = s
	} else {
		t.note("segment %d: no text", i)
	}
	return seg
}

// segmentTime reads one segment time and notes when it is absent or unreadable.
func (t *Transcript) segmentTime(i int, m map[string]any, which string, msKeys,
	secKeys []string) (int64, bool) {
	ms, found, ok := msField(m, msKeys, secKeys)
	switch {
	case ok:
		return ms, true
	case found:
		t.note("segment %d: unreadable %s time", i, which)
	default:
		t.note("segment %d: no %s time", i, which)
	}
	return 0, false
}

// firstTextValue returns the first key whose value is a string, even an empty one: a silent
// segment with "" text is read, not missing.
func firstTextValue(m map[string]any, keys []string) (string, bool) {
	for _, k := range keys {
		if s, ok := m[k].(string); ok {
			return s, true
		}
	}
	return "", false
}

// speaker returns the segment's speaker label: a string or number as sent, or the name,
// label or id of a speaker object.
func speaker(m map[string]any) string {
	for _, k := range speakerKeys {
		switch v := m[k].(type) {
		case map[string]any:
			if s := firstText(v, "name", "label", "id"); s != "" {
				return s
			}
		default:
			if s, ok := text(v); ok && s != "" {
				return s
			}
		}
	}
	return ""
}

// readText fills Text from the full-text field, a bare-string transcript, or else by joining
// the segment texts.
func (t *Transcript) readText(scopes []map[string]any, inline string) {
	for _, s := range scopes {
		if v := firstString(s, textKeys...); v != "" {
			t.Text = v
			return
		}
	}
	if inline != "" {
		t.Text = inline
		return
	}
	if len(t.Segments) == 0 {
		t.note("no text")
		return
	}
	t.Text = joinSegments(t.Segments)
	t.note("no full text; joined from segments")
}

// joinSegments joins the trimmed segment texts with a space, or with nothing when either side
// of the join is a Chinese or Japanese character or full-width punctuation, which are written
// without spaces.
func joinSegments(segs []Segment) string {
	var b strings.Builder
	for _, seg := range segs {
		s := strings.TrimSpace(seg.Text)
		if s == "" {
			continue
		}
		if b.Len() > 0 {
			last, _ := utf8.DecodeLastRuneInString(b.String())
			first, _ := utf8.DecodeRuneInString(s)
			if !noSpaceScript(last) && !noSpaceScript(first) {
				b.WriteByte(' ')
			}
		}
		b.WriteString(s)
	}
	return b.String()
}

// noSpaceScript reports whether r belongs to a script written without spaces between words.
func noSpaceScript(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana) ||
		(r >= 0x3000 && r <= 0x303F) || // CJK symbols and punctuation
		(r >= 0xFF00 && r <= 0xFFEF) // full-width forms
}

// readStatus normalises the status field, or infers the status when there is none.
func (t *Transcript) readStatus(scopes []map[string]any, event string) {
	for _, s := range scopes {
		for _, k := range statusKeys {
			v, present := s[k]
			if !present || v == nil {
				continue
			}
			raw, _ := text(v)
			if st, ok := normStatus(raw); ok {
				t.Status = st
				return
			}
			t.note("unknown status %q", raw)
			return
		}
	}

	// No status field: infer it, most certain first, and say so.
	switch {
	case t.ErrorCode != "" || t.ErrorMessage != "" || event == "transcription.failed":
		t.Status = StatusFailed
	case event == "transcription.completed" || len(t.Segments) > 0 || t.Text != "":
		t.Status = StatusCompleted
	}
	if t.Status == "" {
		t.note("no status")
		return
	}
	t.note("no status; assumed %s", t.Status)
}

// normStatus maps a status as sent to a normalised one. Numbers follow the ai_status codes of
// Plaud's older file API: 0 and 1 processing, 2 completed, negative failed.
func normStatus(raw string) (string, bool) {
	if f, ok := number(raw); ok {
		switch {
		case f < 0:
			return StatusFailed, true
		case f == 0 || f == 1:
			return StatusProcessing, true
		case f == 2:
			return StatusCompleted, true
		}
		return "", false
	}
	key := strings.ToLower(strings.TrimSpace(raw))
	key = strings.NewReplacer("-", "_", " ", "_").Replace(key)
	st, ok := statusWords[key]
	return st, ok
}
