package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
)

// Exports of a transcript: plain text and Markdown for reading, SRT and WebVTT for players and
// editors, JSON for scripts (the same object as GET /api/v1/transcripts/{id}). Every format
// uses the team's speaker names; JSON also keeps the original labels.

// exportFormat is one download format.
type exportFormat struct {
	ext         string
	contentType string
	render      func(t db.Transcript) []byte
}

// exportNames lists the formats, as the API names them.
var exportNames = []string{"txt", "md", "srt", "vtt", "json"}

var exportFormats = map[string]exportFormat{
	"txt":  {"txt", "text/plain; charset=utf-8", exportText},
	"md":   {"md", "text/markdown; charset=utf-8", exportMarkdown},
	"srt":  {"srt", "application/x-subrip; charset=utf-8", exportSRT},
	"vtt":  {"vtt", "text/vtt; charset=utf-8", exportVTT},
	"json": {"json", "application/json; charset=utf-8", exportJSON},
}

// handleTranscriptExport serves GET /transcripts/{id}/export and
// /api/v1/transcripts/{id}/export?format=txt|md|srt|vtt|json as a download, and audits it.
func (s *Server) handleTranscriptExport(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	name := r.URL.Query().Get("format")
	f, ok := exportFormats[name]
	if !ok {
		s.respondError(w, r, badRequest("format must be one of txt, md, srt, vtt, json"))
		return
	}

	t, err := s.store.FindTranscriptByID(r.Context(), id)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	body := f.render(t)
	s.audit(r, "transcript.export", "transcript "+strconv.FormatInt(id, 10), "format "+name)

	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="transcript-%d.%s"`, id, f.ext))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.Write(body)
}

// exportText is plain text: a header, then one paragraph per speaker block.
func exportText(t db.Transcript) []byte {
	var b strings.Builder
	b.WriteString(views.TranscriptTitle(t) + "\n")
	b.WriteString(strings.Join(headerFacts(t), " · ") + "\n")
	if msg := failure(t); msg != "" {
		b.WriteString(msg + "\n")
	}
	for _, blk := range t.Blocks() {
		fmt.Fprintf(&b, "\n[%s] %s\n", views.FormatOffset(blk.Segments[0].StartMS),
			views.SpeakerLabel(t.SpeakerName(blk.Speaker)))
		b.WriteString(blockText(blk) + "\n")
	}
	return []byte(b.String())
}

// exportMarkdown is Markdown: a title, a facts list, then each speaker block. Text from the
// payload is escaped so it cannot add markup.
func exportMarkdown(t db.Transcript) []byte {
	var b strings.Builder
	b.WriteString("# " + mdEscape(views.TranscriptTitle(t)) + "\n\n")
	for _, f := range headerFacts(t) {
		b.WriteString("- " + mdEscape(f) + "\n")
	}
	if len(t.Speakers) > 0 {
		var names []string
		for _, sp := range t.Speakers {
			n := sp.Name
			if sp.Renamed {
				n += " (" + sp.Label + ")"
			}
			names = append(names, n)
		}
		b.WriteString("- Speakers: " + mdEscape(strings.Join(names, ", ")) + "\n")
	}
	if msg := failure(t); msg != "" {
		b.WriteString("\n> " + mdEscape(msg) + "\n")
	}
	for _, blk := range t.Blocks() {
		fmt.Fprintf(&b, "\n**%s** · %s\n\n%s\n",
			mdEscape(views.SpeakerLabel(t.SpeakerName(blk.Speaker))),
			views.FormatOffset(blk.Segments[0].StartMS), mdParagraph(blockText(blk)))
	}
	return []byte(b.String())
}

// exportSRT is SubRip: cues numbered from 1, HH:MM:SS,mmm --> HH:MM:SS,mmm, the speaker's name
// before the text, a blank line after each cue. Segments without text are left out, since an
// empty line would end the cue. SubRip has no escapes, so an arrow "-->" in the text, which
// players would take for a timing line, is written "->".
func exportSRT(t db.Transcript) []byte {
	var b strings.Builder
	n := 0
	for _, s := range t.Segments {
		text := srtArrow(cueText(s.Text))
		if text == "" {
			continue
		}
		n++
		if name := t.SpeakerName(s.Speaker); name != "" {
			text = srtArrow(cueText(name)) + ": " + text
		}
		fmt.Fprintf(&b, "%d\n%s --> %s\n%s\n\n", n, cueTime(s.StartMS, ','),
			cueTime(max(s.EndMS, s.StartMS), ','), text)
	}
	return []byte(b.String())
}

// exportVTT is WebVTT: the WEBVTT header, then one cue per segment, identified by its anchor
// on the transcript page, HH:MM:SS.mmm timings, and the speaker as a voice span. &, < and > are
// escaped as the format requires, which also keeps "-->" out of cue text.
func exportVTT(t db.Transcript) []byte {
	var b strings.Builder
	b.WriteString("WEBVTT\n\n")
	for _, s := range t.Segments {
		text := cueText(s.Text)
		if text == "" {
			continue
		}
		text = vttEscape(text)
		if name := t.SpeakerName(s.Speaker); name != "" {
			text = "<v " + vttEscape(cueText(name)) + ">" + text
		}
		fmt.Fprintf(&b, "%s\n%s --> %s\n%s\n\n", views.SegmentAnchor(s.Index),
			cueTime(s.StartMS, '.'), cueTime(max(s.EndMS, s.StartMS), '.'), text)
	}
	return []byte(b.String())
}

// exportJSON is the API's view of the transcript, indented.
func exportJSON(t db.Transcript) []byte {
	b, _ := json.MarshalIndent(toAPITranscriptDetail(t), "", "  ")
	return append(b, '\n')
}

// headerFacts are the one-line facts at the top of text exports.
func headerFacts(t db.Transcript) []string {
	facts := []string{views.FormatTime(t.OccurredAt), "duration " + views.FormatLength(t.DurationMS)}
	if t.Language != "" {
		facts = append(facts, "language "+t.Language)
	}
	return append(facts, "status "+views.StatusText(t.Status))
}

// failure describes a failed transcription, "" otherwise.
func failure(t db.Transcript) string {
	if t.Status != db.TranscriptFailed {
		return ""
	}
	msg := "Transcription failed"
	if t.ErrorCode != "" {
		msg += " (" + t.ErrorCode + ")"
	}
	if t.ErrorMessage != "" {
		msg += ": " + t.ErrorMessage
	}
	return msg
}

// blockText joins a block's segment texts as one paragraph.
func blockText(blk db.Block) string {
	var parts []string
	for _, s := range blk.Segments {
		if s := strings.Join(strings.Fields(s.Text), " "); s != "" {
			parts = append(parts, s)
		}
	}
	return joinScript(parts)
}

// joinScript joins texts with spaces, except between CJK characters, which are written without.
func joinScript(parts []string) string {
	var b strings.Builder
	for _, p := range parts {
		if b.Len() > 0 && !noSpaceJoin(b.String(), p) {
			b.WriteByte(' ')
		}
		b.WriteString(p)
	}
	return b.String()
}

// noSpaceJoin reports whether a and b meet at CJK characters or full-width punctuation.
func noSpaceJoin(a, b string) bool {
	last := []rune(a[max(0, len(a)-4):])
	first := []rune(b[:min(len(b), 4)])
	if len(last) == 0 || len(first) == 0 {
		return false
	}
	return isCJK(last[len(last)-1]) || isCJK(first[0])
}

func isCJK(r rune) bool {
	return (r >= 0x3000 && r <= 0x9FFF) || (r >= 0xF900 && r <= 0xFAFF) ||
		(r >= 0xFF00 && r <= 0xFFEF) || (r >= 0x20000 && r <= 0x2FA1F)
}

// cueTime formats milliseconds as HH:MM:SS followed by sep and the milliseconds.
func cueTime(ms int64, sep byte) string {
	d := time.Duration(ms) * time.Millisecond
	h := int64(d / time.Hour)
	m := int64(d/time.Minute) % 60
	sec := int64(d/time.Second) % 60
	return fmt.Sprintf("%02d:%02d:%02d%c%03d", h, m, sec, sep, ms%1000)
}

// cueText makes text safe inside a subtitle cue: line breaks normalised, blank lines removed
// (a blank line ends a cue), surrounding space trimmed.
func cueText(s string) string {
	s = strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(s)
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// srtArrow replaces SubRip's timing arrow in cue text.
func srtArrow(s string) string {
	for strings.Contains(s, "-->") {
		s = strings.ReplaceAll(s, "-->", "->")
	}
	return s
}

// vttEscape escapes the characters WebVTT cue text reserves.
func vttEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// mdEscape backslash-escapes the characters that would make payload text into Markdown markup.
func mdEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "&", `\&`,
		"]", `\]`, "<", `\<`, ">", `\>`, "#", `\#`, "|", `\|`, "~", `\~`).Replace(s)
}

// mdParagraph escapes a paragraph of payload text, including a start that would make it a list
// item ("- x", "+ x", "1. x", "1) x").
func mdParagraph(s string) string {
	s = mdEscape(s)
	digits := strings.TrimLeft(s, "0123456789")
	switch {
	case strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+"):
		s = `\` + s
	case len(digits) < len(s) && (strings.HasPrefix(digits, ".") || strings.HasPrefix(digits, ")")):
		n := len(s) - len(digits)
		s = s[:n] + `\` + s[n:]
	}
	return s
}
