package db_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
)

// benchTranscripts is how many transcripts of benchSegments segments BenchmarkTranscripts
// seeds: 2,000 by default (400,000 segments), so that `make bench` stays a few minutes long;
// PLAUDHOOK_BENCH_TRANSCRIPTS=10000 gives the ten thousand transcripts and two million
// segments issue 5 asks for (882 MiB; seeding took 3 min 10 s on a 2-core machine shared with
// other jobs, over the 3 minutes that would make it the default).
var benchTranscripts = func() int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("PLAUDHOOK_BENCH_TRANSCRIPTS"), &n); err == nil && n >= 100 {
		return n
	}
	return 2_000
}()

const benchSegments = 200

// transcriptBenchDB is the seeded database shared by every run of BenchmarkTranscripts in one
// process (-count 3 seeds once); TestMain removes it when the tests end.
var (
	transcriptBenchDir string
	transcriptBenchDB  = sync.OnceValues(func() (*db.DB, error) {
		dir, err := os.MkdirTemp("", "plaudhook-transcripts-")
		if err != nil {
			return nil, err
		}
		transcriptBenchDir = dir
		d, err := db.Open(context.Background(), filepath.Join(dir, "bench.db"),
			db.Options{Synchronous: "OFF"})
		if err != nil {
			return nil, err
		}
		if err := db.SeedTranscripts(d, benchTranscripts, benchSegments); err != nil {
			d.Close()
			return nil, err
		}
		return d, nil
	})
)

// TestMain runs the tests and benchmarks of the db package, then deletes the transcript
// benchmark's database (about a gigabyte at the default size) if one was seeded.
func TestMain(m *testing.M) {
	code := m.Run()
	if transcriptBenchDir != "" {
		if d, err := transcriptBenchDB(); err == nil {
			d.Close()
		}
		os.RemoveAll(transcriptBenchDir)
	}
	os.Exit(code)
}

// timed runs fn b.N times and reports the median and 99th percentile of one call.
func timed(b *testing.B, fn func() error) {
	b.Helper()
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := fn(); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(times[(len(times)*99)/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkTranscripts seeds transcripts of 200 segments (once per process) and measures
// full-text search (one page of 50 transcripts with their first matching segment) for rare,
// common, CJK and short terms, the plain list, and the list page as /transcripts renders it
// (query plus templ view). Run it alone:
//
//	PLAUDHOOK_BENCH_TRANSCRIPTS=10000 go test -tags sqlite_fts5 -run '^$' -bench Transcripts \
//		-benchtime 200x ./db/
func BenchmarkTranscripts(b *testing.B) {
	t0 := time.Now()
	d, err := transcriptBenchDB()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d transcripts of %d segments in %v", benchTranscripts, benchSegments,
		time.Since(t0).Round(time.Second))
	ctx := context.Background()

	b.Run("size", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var size int64
			for _, suffix := range []string{"", "-wal"} {
				if st, err := os.Stat(d.Path + suffix); err == nil {
					size += st.Size()
				}
			}
			b.ReportMetric(float64(size)/float64(benchTranscripts*benchSegments), "bytes/segment")
			b.ReportMetric(float64(size)/(1<<20), "MiB")
		}
	})

	// Every search must find something, or it measures nothing.
	searches := []struct {
		name  string
		terms []string
	}{
		{"rareWord", []string{"zanzibar"}},
		{"commonWord", []string{"budget"}},
		{"twoWords", []string{"budget", "launch"}},
		{"phrase", []string{"follow up"}},
		{"japanese", []string{"定例ミーティング"}},
		{"chinese", []string{"客户回访计划"}},
		{"shortCJK", []string{"预算"}}, // two characters: LIKE over the segments
		{"commonAndShort", []string{"budget", "we"}},
	}
	for _, s := range searches {
		f := db.TranscriptFilter{Terms: s.terms, Limit: 50}
		ts, next, err := d.FindTranscripts(ctx, f)
		if err != nil || len(ts) == 0 {
			b.Fatalf("search %q: %d results, %v", s.terms, len(ts), err)
		}
		b.Run("search/"+s.name+"/first", func(b *testing.B) {
			timed(b, func() error {
				_, _, err := d.FindTranscripts(ctx, f)
				return err
			})
		})
		if next == "" {
			continue
		}
		f.After = next
		b.Run("search/"+s.name+"/second", func(b *testing.B) {
			timed(b, func() error {
				_, _, err := d.FindTranscripts(ctx, f)
				return err
			})
		})
	}

	// A cursor 90% of the way down the list.
	deep := db.TranscriptFilter{Limit: 50}
	for range benchTranscripts * 9 / 10 / 50 {
		_, next, err := d.FindTranscripts(ctx, deep)
		if err != nil {
			b.Fatal(err)
		}
		deep.After = next
	}
	lists := []struct {
		name string
		f    db.TranscriptFilter
	}{
		{"first", db.TranscriptFilter{Limit: 50}},
		{"deep", deep},
		{"language", db.TranscriptFilter{Language: ptr("ja"), Limit: 50}},
	}
	for _, l := range lists {
		b.Run("list/"+l.name, func(b *testing.B) {
			timed(b, func() error {
				_, _, err := d.FindTranscripts(ctx, l.f)
				return err
			})
		})
	}

	// The list page: the query and the templ view, as handleTranscriptIndex renders it.
	page := views.Page{Title: "Transcripts", Nav: "transcripts", Static: "/static/bench",
		User: &db.User{ID: 1, Username: "bench", Role: db.RoleViewer}}
	for _, r := range []struct {
		name  string
		f     db.TranscriptFilter
		query string
	}{
		{"list", db.TranscriptFilter{Limit: 50}, ""},
		{"search", db.TranscriptFilter{Terms: []string{"budget"}, Limit: 50}, "budget"},
		{"searchJapanese", db.TranscriptFilter{Terms: []string{"定例ミーティング"}, Limit: 50}, "定例ミーティング"},
	} {
		b.Run("page/"+r.name, func(b *testing.B) {
			timed(b, func() error {
				ts, next, err := d.FindTranscripts(ctx, r.f)
				if err != nil {
					return err
				}
				props := views.TranscriptListProps{Query: r.query, Terms: r.f.Terms,
					Transcripts: ts, Next: next, Live: r.query == ""}
				return views.TranscriptList(page, props).Render(ctx, io.Discard)
			})
		})
	}
}

func ptr[T any](v T) *T { return &v }
