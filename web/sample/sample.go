// Package sample holds the built-in sample Plaud events that `plaudhook send` and the UI's
// "send a test event" post: one realistic body for every event type Plaud documents, plus one
// type it does not (to show that unknown events are stored too). The bytes are kept exactly as
// in the project's fixture corpus.
package sample

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed samples/*.json
var files embed.FS

// Names lists the samples, e.g. "transcription.completed.short".
func Names() []string {
	entries, _ := fs.ReadDir(files, "samples")
	var out []string
	for _, e := range entries {
		n := strings.TrimSuffix(e.Name(), ".json")
		if n == "signatures" {
			continue
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Get returns the body of a sample. A name may omit its variant: "transcription.completed"
// finds "transcription.completed.short", the first variant in name order ("short" preferred).
func Get(name string) ([]byte, string, error) {
	name = strings.TrimSuffix(name, ".json")
	if b, err := fs.ReadFile(files, "samples/"+name+".json"); err == nil && name != "signatures" {
		return b, name, nil
	}
	var match []string
	for _, n := range Names() {
		if strings.HasPrefix(n, name+".") {
			match = append(match, n)
		}
	}
	if len(match) == 0 {
		return nil, "", fmt.Errorf("no sample %q; choose one of: %s", name, strings.Join(Names(), ", "))
	}
	pick := match[0]
	for _, n := range match {
		if strings.HasSuffix(n, ".short") {
			pick = n
		}
	}
	b, err := fs.ReadFile(files, "samples/"+pick+".json")
	return b, pick, err
}

// Scheme returns the signing scheme Plaud uses for a sample's envelope: "devguide" for the
// developer-guide events (event_type), "embedded" for the SDK ones (event).
func Scheme(name string) string {
	if strings.HasPrefix(name, "audio_transcribe.") {
		return "devguide"
	}
	return "embedded"
}
