package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web"
)

// runReindex is `plaudhook reindex`: read every stored event again and rebuild what plaudhook
// derives from it (recordings, their timelines, transcripts and the search index). Events are
// the source of truth, so this is safe to run at any time, also while the server runs: unchanged
// transcripts are left as they are, and speaker names given by the team are kept.
func runReindex(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reindex", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", envOr("PLAUDHOOK_DB", defaultConfig().DB),
		"SQLite database file (PLAUDHOOK_DB)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: plaudhook reindex [--db FILE]\n\n"+
			"Rebuilds recordings, transcripts and the search index from every stored event.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}

	// Refuse to create an empty database by mistyping its path.
	if _, err := os.Stat(*dbPath); err != nil {
		return fmt.Errorf("no database at %s: %w", *dbPath, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := db.Open(ctx, *dbPath, db.Options{Logger: log})
	if err != nil {
		return err
	}
	defer d.Close()

	start := time.Now()
	st, err := web.Reindex(ctx, d, log)
	fmt.Fprintf(stdout, "read %d events in %s: %d about a recording, %d with a transcript "+
		"(%d created, %d changed), %d about no recording, %d failed\n",
		st.Events, time.Since(start).Round(time.Millisecond), st.Recordings, st.Transcripts,
		st.Created, st.Changed, st.Unreferenced, st.Failed)
	if err != nil {
		return err
	}
	if st.Failed > 0 {
		return errors.New("some events could not be normalised; the log above names them")
	}
	return nil
}
