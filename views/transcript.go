package views

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/plaudhook/plaudhook/db"
)

// TranscriptListProps is what the transcripts page shows.
type TranscriptListProps struct {
	Transcripts []db.Transcript
	Next        string // cursor of the next page, "" when none
	// Query is the search as typed; Terms the terms it was split into (for highlighting).
	Query string
	Terms []string
	// Filters as given: Status, Language, From and To (dates, YYYY-MM-DD).
	Status, Language, From, To string
	Live                       bool // subscribe to new transcripts (first page, no search or filter)
	Blur                       bool // the user asked for transcript text to be blurred until clicked
}

// Filtered reports whether any filter or search is set.
func (p TranscriptListProps) Filtered() bool {
	return p.Query != "" || p.Status != "" || p.Language != "" || p.From != "" || p.To != ""
}

// TranscriptPageProps is what a transcript's page shows.
type TranscriptPageProps struct {
	Transcript db.Transcript
	Query      string   // in-page search as typed
	Terms      []string // its terms, highlighted server-side (the page works without script)
	Matches    int      // how many highlighted matches
	Blur       bool
	CanRename  bool // the user may rename speakers
}

// RecordingListProps is what the recordings page shows.
type RecordingListProps struct {
	Recordings []db.Recording
	Next       string
	Overdue    bool      // only recordings without a transcript an hour after upload
	Now        time.Time // for the overdue flag
}

// RecordingPageProps is what a recording's page shows: its timeline and transcripts.
type RecordingPageProps struct {
	Recording   db.Recording
	Events      []db.RecordingEvent
	Transcripts []db.Transcript
	Now         time.Time
}

// TranscriptURL is the address of a transcript's page.
func TranscriptURL(id int64) string { return "/transcripts/" + strconv.FormatInt(id, 10) }

// RecordingURL is the address of a recording's page.
func RecordingURL(id int64) string { return "/recordings/" + strconv.FormatInt(id, 10) }

// SegmentAnchor is the DOM id of a segment on its transcript's page.
func SegmentAnchor(index int) string { return "seg-" + strconv.Itoa(index) }

// SegmentURL links to one segment of a transcript, highlighting query there when given.
func SegmentURL(id int64, index int, query string) string {
	u := TranscriptURL(id)
	if query != "" {
		u += "?q=" + url.QueryEscape(query)
	}
	return u + "#" + SegmentAnchor(index)
}

// ExportURL is the download address of a transcript in a format (txt, md, srt, vtt, json).
func ExportURL(id int64, format string) string {
	return TranscriptURL(id) + "/export?format=" + format
}

// TranscriptRowID is the DOM id of a transcript's row, shared by page loads and live updates.
func TranscriptRowID(id int64) string { return "transcript-" + strconv.FormatInt(id, 10) }

// TranscriptTitle names a transcript: the recording's title or file name, else its ids.
func TranscriptTitle(t db.Transcript) string {
	switch {
	case t.Title != "":
		return t.Title
	case t.FileID != "":
		return "File " + t.FileID
	case t.TranscriptionID != "":
		return "Transcription " + t.TranscriptionID
	}
	return "Transcript #" + strconv.FormatInt(t.ID, 10)
}

// RecordingTitle names a recording: its title, else its ids.
func RecordingTitle(r db.Recording) string {
	switch {
	case r.Title != "":
		return r.Title
	case r.FileID != "":
		return "File " + r.FileID
	case r.TranscriptionID != "":
		return "Transcription " + r.TranscriptionID
	}
	return "Recording #" + strconv.FormatInt(r.ID, 10)
}

// FormatOffset renders a position in the audio: m:ss, or h:mm:ss from an hour on.
func FormatOffset(ms int64) string {
	s := ms / 1000
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// FormatLength renders a length of audio, "—" when unknown.
func FormatLength(ms int64) string {
	if ms <= 0 {
		return "—"
	}
	return FormatOffset(ms + 500) // rounded to the nearest second
}

// speakerColours is how many speaker colours app.css defines (spk-0 … spk-7).
const speakerColours = 8

// SpeakerClass is the CSS class that colours a speaker: its position among the transcript's
// speakers, so a speaker keeps one colour on the whole page. -1 (no label) is neutral.
func SpeakerClass(index int) string {
	if index < 0 {
		return "spk-none"
	}
	return "spk-" + strconv.Itoa(index%speakerColours)
}

// SpeakerLabel shows a speaker name, or says there is none.
func SpeakerLabel(name string) string {
	if name == "" {
		return "Unknown speaker"
	}
	return name
}

// StatusClass is the badge class of a transcript or recording status.
func StatusClass(status string) string {
	switch status {
	case db.TranscriptCompleted, db.RecordingTranscribed:
		return "badge ok"
	case db.TranscriptFailed:
		return "badge bad"
	case "":
		return "badge"
	}
	return "badge dup"
}

// StatusText names a status for people.
func StatusText(status string) string {
	if status == "" {
		return "unknown"
	}
	return status
}

// TextPart is a piece of text, marked when it matched a search.
type TextPart struct {
	Text string
	Mark bool
}

// Highlight splits text into parts, marking every case-insensitive occurrence of any term.
func Highlight(text string, terms []string) []TextPart {
	re := termsPattern(terms)
	if re == nil {
		return []TextPart{{Text: text}}
	}
	var parts []TextPart
	last := 0
	for _, m := range re.FindAllStringIndex(text, -1) {
		if m[0] > last {
			parts = append(parts, TextPart{Text: text[last:m[0]]})
		}
		parts = append(parts, TextPart{Text: text[m[0]:m[1]], Mark: true})
		last = m[1]
	}
	if last < len(text) {
		parts = append(parts, TextPart{Text: text[last:]})
	}
	return parts
}

// CountMatches counts the occurrences of any term in the segments' text.
func CountMatches(segs []db.Segment, terms []string) int {
	re := termsPattern(terms)
	if re == nil {
		return 0
	}
	n := 0
	for _, s := range segs {
		n += len(re.FindAllStringIndex(s.Text, -1))
	}
	return n
}

// termsPattern matches any of the terms, case-insensitively, longest first; nil for none.
func termsPattern(terms []string) *regexp.Regexp {
	var quoted []string
	for _, t := range terms {
		if t = strings.TrimSpace(t); t != "" {
			quoted = append(quoted, regexp.QuoteMeta(t))
		}
	}
	if len(quoted) == 0 {
		return nil
	}
	// Longest first, so that "plan" does not cut "planning" short when both are terms.
	for i := 1; i < len(quoted); i++ {
		for j := i; j > 0 && len(quoted[j]) > len(quoted[j-1]); j-- {
			quoted[j], quoted[j-1] = quoted[j-1], quoted[j]
		}
	}
	return regexp.MustCompile("(?i)" + strings.Join(quoted, "|"))
}

// snippetRunes is the longest snippet shown in a search result, in characters.
const snippetRunes = 180

// Snippet is the highlighted part of a matching segment shown in search results: the whole
// segment when short, else a window around its first match, cut at spaces where there are any.
func Snippet(text string, terms []string) []TextPart {
	if utf8.RuneCountInString(text) <= snippetRunes {
		return Highlight(text, terms)
	}
	start := 0
	if re := termsPattern(terms); re != nil {
		if m := re.FindStringIndex(text); m != nil {
			start = m[0]
		}
	}

	// Step back a third of the window before the match, then forward to a word start.
	r := []rune(text)
	at := utf8.RuneCountInString(text[:start])
	from := max(0, at-snippetRunes/3)
	to := min(len(r), from+snippetRunes)
	from = max(0, to-snippetRunes)
	if from > 0 {
		for i := from; i < at && i < from+20; i++ {
			if unicode.IsSpace(r[i]) {
				from = i + 1
				break
			}
		}
	}
	cut := string(r[from:to])
	if from > 0 {
		cut = "…" + cut
	}
	if to < len(r) {
		cut += "…"
	}
	return Highlight(cut, terms)
}

// transcriptsURL builds a /transcripts link keeping the list's filters.
func transcriptsURL(p TranscriptListProps, after string) string {
	q := url.Values{}
	for k, v := range map[string]string{"q": p.Query, "status": p.Status,
		"language": p.Language, "from": p.From, "to": p.To, "after": after} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if len(q) == 0 {
		return "/transcripts"
	}
	return "/transcripts?" + q.Encode()
}

// recordingsURL builds a /recordings link.
func recordingsURL(overdue bool, after string) string {
	q := url.Values{}
	if overdue {
		q.Set("overdue", "1")
	}
	if after != "" {
		q.Set("after", after)
	}
	if len(q) == 0 {
		return "/recordings"
	}
	return "/recordings?" + q.Encode()
}

// RecordingStatusText explains a recording status.
func RecordingStatusText(status string) string {
	switch status {
	case db.RecordingUploaded:
		return "uploaded"
	case db.RecordingRecorded:
		return "recorded, no transcript yet"
	case db.RecordingTranscribing:
		return "transcribing"
	case db.RecordingTranscribed:
		return "transcribed"
	case db.RecordingFailed:
		return "transcription failed"
	}
	return "unknown"
}

// speakerNames lists a transcript's speaker names for the list.
func speakerNames(t db.Transcript) string {
	var names []string
	for _, s := range t.Speakers {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// itoa is strconv.Itoa for templates.
func itoa(n int) string { return strconv.Itoa(n) }

// pageURL is the current page with its query, for returning to it after a form post.
func pageURL(path, query string) string {
	if query == "" {
		return path
	}
	return path + "?q=" + url.QueryEscape(query)
}

// exportFormats are the download formats offered on a transcript's page.
var exportFormats = []struct{ ext, name string }{
	{"txt", "Text"}, {"md", "Markdown"}, {"srt", "SRT"}, {"vtt", "WebVTT"}, {"json", "JSON"},
}

// joinTerms writes search terms back as a query, quoting those with spaces.
func joinTerms(terms []string) string {
	var out []string
	for _, t := range terms {
		if strings.ContainsAny(t, " \t") {
			t = `"` + t + `"`
		}
		out = append(out, t)
	}
	return strings.Join(out, " ")
}

// renameValue is what a speaker's rename field starts with: the name, when there is one.
func renameValue(s db.Speaker) string {
	if s.Renamed {
		return s.Name
	}
	return ""
}

// matchesText says how many matches the in-page search found.
func matchesText(n int) string {
	switch n {
	case 0:
		return "no match"
	case 1:
		return "1 match"
	}
	return strconv.Itoa(n) + " matches"
}

// eventTypeOr names an event type, or says it has none.
func eventTypeOr(t string) string {
	if t == "" {
		return "unknown event"
	}
	return t
}
