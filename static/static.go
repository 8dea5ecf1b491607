// Package static embeds plaudhook's CSS, JavaScript and vendored htmx so the binary serves its
// whole UI with no CDN. Files are served under a path that carries Version, so browsers may
// cache them for a year and still see a new release at once.
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"sort"
)

//go:embed *.js *.css
var files embed.FS

// FS holds the static files at its root.
var FS fs.FS = files

// Version is a short hash of every embedded file, used in static URLs.
var Version = func() string {
	h := sha256.New()
	entries, _ := fs.ReadDir(files, ".")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		b, _ := fs.ReadFile(files, n)
		h.Write([]byte(n))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}()
