package main

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/plaudhook/plaudhook/db"
)

// TestReindexCLI throws away everything derived from stored events, as an upgrade from a
// version without transcripts would have it, and `plaudhook reindex` builds it again: the
// transcripts are back and searchable. A second run changes nothing.
func TestReindexCLI(t *testing.T) {
	m := mustRunMain(t, time.Time{})
	var out, errOut = new(stringsBuilder), new(stringsBuilder)
	for _, name := range []string{"transcription.completed.long-multispeaker",
		"transcription.completed.cjk-zh", "device.battery_low"} {
		if err := run(context.Background(), []string{"send", "--url", m.URL() + "/webhook",
			"--secret", fixtureSecret, "--sample", name}, nil, out, errOut); err != nil {
			t.Fatalf("send %s: %v %s", name, err, errOut)
		}
	}
	m.Server.Wait()
	m.Close()

	raw, err := sql.Open("sqlite3", "file:"+m.Config.DB+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	var left int
	_, err = raw.Exec(`DELETE FROM recordings`)
	if err == nil {
		err = raw.QueryRow(`SELECT count(*) FROM transcripts`).Scan(&left)
	}
	raw.Close()
	if err != nil || left != 0 {
		t.Fatalf("clearing recordings: %v, %d transcripts left", err, left)
	}

	reindex := func() string {
		t.Helper()
		got, err := cli(t, errOut, "", "reindex", "--db", m.Config.DB)
		if err != nil {
			t.Fatalf("reindex: %v %s", err, errOut)
		}
		return got
	}
	if got := reindex(); !strings.Contains(got, "read 3 events") ||
		!strings.Contains(got, "2 with a transcript (2 created, 0 changed)") ||
		!strings.Contains(got, "1 about no recording, 0 failed") {
		t.Errorf("first reindex said %q", got)
	}
	if got := reindex(); !strings.Contains(got, "(0 created, 0 changed)") {
		t.Errorf("second reindex said %q, want nothing created or changed", got)
	}

	d, err := db.Open(context.Background(), m.Config.DB, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	all, _, err := d.FindTranscripts(context.Background(), db.TranscriptFilter{})
	if err != nil || len(all) != 2 {
		t.Fatalf("transcripts after reindex = %d (%v), want 2", len(all), err)
	}
	hits, _, err := d.FindTranscripts(context.Background(),
		db.TranscriptFilter{Terms: []string{"客户回访计划"}})
	if err != nil || len(hits) != 1 || hits[0].Language != "zh" {
		t.Errorf("search after reindex = %d hits (%v), want the Chinese transcript", len(hits), err)
	}

	if _, err := cli(t, errOut, "", "reindex", "--db", m.Config.DB+".missing"); err == nil ||
		!strings.Contains(err.Error(), "no database") {
		t.Errorf("reindex of a missing file = %v, want a refusal", err)
	}
}
