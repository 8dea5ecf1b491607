package db

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchEvents is how many events BenchmarkExplorer seeds: 100,000 by default, so that
// `make bench` stays a few minutes long; PLAUDHOOK_BENCH_EVENTS=1000000 gives the full million
// the explorer is sized for (its seeding alone takes minutes on a small machine).
var benchEvents = func() int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("PLAUDHOOK_BENCH_EVENTS"), &n); err == nil && n >= 10000 {
		return n
	}
	return 100_000
}()

var benchEnd = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// benchDB is the seeded database shared by every sub-benchmark of one run: seeding is the slow
// part, so it happens once and only when a benchmark asks for it.
var benchDB = sync.OnceValues(func() (*DB, error) {
	dir, err := os.MkdirTemp("", "plaudhook-bench-")
	if err != nil {
		return nil, err
	}
	d, err := Open(context.Background(), filepath.Join(dir, "bench.db"), Options{Synchronous: "OFF"})
	if err != nil {
		return nil, err
	}
	if err := seedMillion(d, benchEvents); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
})

// seedMillion stores n events over the 30 days before benchEnd through the same tables and
// triggers as ingest (full-text index, shapes), in one transaction with prepared statements:
// three endpoints, six types in uneven shares, small JSON bodies, 2% delivered twice, and 10,000
// rejected deliveries. A hundred bodies carry the rare word "zanzibar".
func seedMillion(d *DB, n int) error {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"weekly", "sync", "budget", "review", "standup", "customer", "call",
		"design", "interview", "planning", "retro", "memo", "idea", "lecture", "notes",
		"pallet", "dock", "inventory", "launch", "roadmap", "hiring", "board", "travel"}
	types := []string{"transcription.completed", "transcription.completed", "transcription.completed",
		"device.synced", "device.synced", "device.synced", "audio_transcribe.completed",
		"audio_transcribe.completed", "device.battery_low", "device.recording_completed"}

	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range []string{
		`INSERT INTO endpoints (slug, name, created_at) VALUES ('lab', 'Lab', 0), ('prod', 'Production', 0)`,
		// Deliveries name their event before it exists: check the references at commit.
		`PRAGMA defer_foreign_keys = ON`,
	} {
		if _, err := tx.Exec(q); err != nil {
			return err
		}
	}
	insDelivery, err := tx.Prepare(`INSERT INTO deliveries (id, endpoint_id, received_at, method,
		path, headers, body_sha256, size, verdict, reason, scheme, event_id, event_type, duplicate,
		ack_micros) VALUES (?, ?, ?, 'POST', '/webhook', '{"Content-Type":["application/json"]}',
		'', ?, ?, ?, 'devguide', ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	insBody, err := tx.Prepare(`INSERT INTO delivery_bodies (delivery_id, body) VALUES (?, ?)`)
	if err != nil {
		return err
	}
	insEvent, err := tx.Prepare(`INSERT INTO events (id, endpoint_id, dedupe_key, event_type,
		envelope_id, file_id, transcription_id, device_id, is_json, size, summary,
		first_received_at, last_received_at, delivery_count, body_delivery_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, '', ?, ?, ?, ?)`)
	if err != nil {
		return err
	}

	step := (30 * 24 * time.Hour).Microseconds() / int64(n)
	start := micros(benchEnd) - step*int64(n)
	deliveryID := int64(0)
	rejectEvery := n / 10000
	for i := 1; i <= n; i++ {
		at := start + int64(i)*step
		endpoint := int64(1 + rng.IntN(3))
		typ := types[rng.IntN(len(types))]
		env := fmt.Sprintf("evt_%08d", i)
		file := fmt.Sprintf("file_%08d", i)
		data := map[string]any{"fileId": file, "status": "completed",
			"title": words[rng.IntN(len(words))] + " " + words[rng.IntN(len(words))]}
		var txn, dev string
		if typ[0] == 't' || typ[0] == 'a' {
			txn = fmt.Sprintf("txn_%08d", i)
			data["transcriptionId"] = txn
			data["language"] = "en"
		} else {
			dev = fmt.Sprintf("dev_%03d", rng.IntN(500))
			data["deviceId"] = dev
			data["battery"] = rng.IntN(100)
		}
		if i%(n/100) == 0 {
			data["title"] = "trip to zanzibar"
		}
		body, _ := json.Marshal(map[string]any{"event": typ, "id": env, "data": data})
		copies := 1
		if rng.IntN(50) == 0 {
			copies = 2
		}

		// The first delivery and its body, then the event (its triggers read the body), then
		// any repeat.
		first := deliveryID + 1
		for k := 0; k < copies; k++ {
			deliveryID++
			ack := 2000 + rng.Int64N(8000)
			if _, err := insDelivery.Exec(deliveryID, endpoint, at+int64(k)*1000, len(body),
				"verified", "", i, typ, k > 0, ack); err != nil {
				return err
			}
			if _, err := insBody.Exec(deliveryID, body); err != nil {
				return err
			}
			if k == 0 {
				if _, err := insEvent.Exec(i, endpoint, "id:"+env, typ, env, file, txn, dev,
					len(body), at, at+int64(copies-1)*1000, copies, first); err != nil {
					return err
				}
			}
		}
		if i%rejectEvery == 0 {
			deliveryID++
			if _, err := insDelivery.Exec(deliveryID, endpoint, at+500, 4, "rejected",
				[]string{"signature_mismatch", "missing_signature", "timestamp_out_of_tolerance"}[rng.IntN(3)],
				nil, "", false, 1000); err != nil {
				return err
			}
			if _, err := insBody.Exec(deliveryID, []byte("junk")); err != nil {
				return err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = d.w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

// measure runs fn b.N times and reports the median and 99th percentile of one call.
func measure(b *testing.B, fn func() error) {
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

// BenchmarkExplorer seeds benchEvents events (once) and measures one page of the event and
// delivery lists, first and deep, unfiltered and under each filter, plus the dashboard and the
// database size per event (write-ahead log included). Run it alone, at the full million:
//
//	PLAUDHOOK_BENCH_EVENTS=1000000 go test -tags sqlite_fts5 -run '^$' -bench Explorer -benchtime 20x -timeout 1h ./db/
func BenchmarkExplorer(b *testing.B) {
	t0 := time.Now()
	d, err := benchDB()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		d.Close()
		os.RemoveAll(filepath.Dir(d.Path))
	})
	b.Logf("seeded %d events in %v", benchEvents, time.Since(t0).Round(time.Second))
	ctx := context.Background()

	// The size on disk: the database file and its write-ahead log, whose committed pages are
	// part of the data until a checkpoint copies them (seedMillion ends with one, so the log is
	// empty unless something wrote since). The -shm index is rebuilt on open and not counted.
	b.Run("size", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			st, err := os.Stat(d.Path)
			if err != nil {
				b.Fatal(err)
			}
			size, wal := st.Size(), int64(0)
			if st, err := os.Stat(d.Path + "-wal"); err == nil {
				wal = st.Size()
			}
			b.ReportMetric(float64(size+wal)/float64(benchEvents), "bytes/event")
			b.ReportMetric(float64(size+wal)/(1<<20), "MiB")
			b.ReportMetric(float64(wal)/(1<<20), "wal-MiB")
		}
	})

	// Ids that exist in the seed, so that each search below finds its event: the envelope id
	// of the middle event, and the transcription id of the first transcription event after it
	// (only transcription types carry one, chosen at random).
	envelope := fmt.Sprintf("evt_%08d", benchEvents/2)
	var txn string
	if err := d.r.QueryRowContext(ctx, `SELECT transcription_id FROM events
		WHERE id >= ? AND transcription_id != '' ORDER BY id LIMIT 1`, benchEvents/2).Scan(&txn); err != nil {
		b.Fatalf("find a transcription id: %v", err)
	}

	day := benchEnd.Add(-24 * time.Hour)
	hourFrom, hourTo := benchEnd.Add(-10*24*time.Hour), benchEnd.Add(-10*24*time.Hour+time.Hour)
	deep := int64(benchEvents / 10) // a cursor 90% of the way down
	events := []struct {
		name string
		f    EventFilter
	}{
		{"none", EventFilter{}},
		{"endpoint", EventFilter{EndpointID: ptr(int64(2))}},
		{"type", EventFilter{EventType: ptr("device.battery_low")}},
		{"last24h", EventFilter{Since: &day}},
		{"hour10dAgo", EventFilter{Since: &hourFrom, Until: &hourTo}},
		{"duplicates", EventFilter{Duplicates: ptr(true)}},
		{"searchID", EventFilter{Search: ptr("file_00123456")}},
		{"searchDevice", EventFilter{Search: ptr("dev_042")}},
		{"searchTranscriptionID", EventFilter{Search: &txn}},
		{"searchEnvelopeID", EventFilter{Search: &envelope}},
		{"searchRareWord", EventFilter{Search: ptr("zanzibar")}},
		{"searchCommonWord", EventFilter{Search: ptr("weekly")}},
		{"endpointTypeLast24h", EventFilter{EndpointID: ptr(int64(1)), EventType: ptr("device.synced"), Since: &day}},
	}
	for _, tc := range events {
		for _, page := range []struct {
			name   string
			before int64
		}{{"first", 0}, {"deep", deep}} {
			b.Run("events/"+tc.name+"/"+page.name, func(b *testing.B) {
				f := tc.f
				f.Before, f.Limit = page.before, 100
				if f.Search != nil && (*f.Search == txn || *f.Search == envelope) && page.before == 0 {
					// An id search must find its one event, or it measures a miss.
					if es, _, err := d.FindEvents(ctx, f); err != nil || len(es) != 1 {
						b.Fatalf("search %s: %d events, %v", *f.Search, len(es), err)
					}
				}
				measure(b, func() error {
					es, _, err := d.FindEvents(ctx, f)
					if err == nil {
						err = d.FillDrift(ctx, es)
					}
					return err
				})
			})
		}
	}

	deliveries := []struct {
		name string
		f    DeliveryFilter
	}{
		{"none", DeliveryFilter{}},
		{"rejected", DeliveryFilter{Verdict: ptr(Rejected)}},
		{"reason", DeliveryFilter{Reason: ptr("missing_signature")}},
		{"endpoint", DeliveryFilter{EndpointID: ptr(int64(3))}},
		{"type", DeliveryFilter{EventType: ptr("device.battery_low")}},
		{"duplicates", DeliveryFilter{Duplicates: ptr(true)}},
		{"last24h", DeliveryFilter{Since: &day}},
		{"hour10dAgo", DeliveryFilter{Since: &hourFrom, Until: &hourTo}},
		{"searchID", DeliveryFilter{Search: ptr("txn_00654321")}},
		{"searchRareWord", DeliveryFilter{Search: ptr("zanzibar")}},
	}
	for _, tc := range deliveries {
		for _, page := range []struct {
			name   string
			before int64
		}{{"first", 0}, {"deep", deep}} {
			b.Run("deliveries/"+tc.name+"/"+page.name, func(b *testing.B) {
				f := tc.f
				f.Before, f.Limit = page.before, 101
				measure(b, func() error {
					_, err := d.FindDeliveries(ctx, f)
					return err
				})
			})
		}
	}

	for _, r := range []time.Duration{24 * time.Hour, 7 * 24 * time.Hour} {
		b.Run(fmt.Sprintf("dashboard/%v", r), func(b *testing.B) {
			bucket := time.Hour
			if r > 24*time.Hour {
				bucket = 6 * time.Hour
			}
			measure(b, func() error {
				_, err := d.FindDashboard(ctx, DashboardFilter{Since: benchEnd.Add(-r),
					Until: benchEnd, Bucket: bucket})
				return err
			})
		})
	}
	b.Run("eventTypes", func(b *testing.B) {
		measure(b, func() error {
			_, err := d.FindEventTypes(ctx)
			return err
		})
	})
}

// BenchmarkIngestBookkeeping measures what the explorer's bookkeeping (search index, shapes,
// rollups, kept per batch by the ingest writer) costs ingest: the same JSON bodies stored by 16
// concurrent senders with it and without it, with FULL durability as in production.
func BenchmarkIngestBookkeeping(b *testing.B) {
	for _, fixture := range []string{"device.synced.json", "transcription.completed.long-multispeaker.json"} {
		body, err := os.ReadFile(filepath.Join("testdata", "drift", fixture))
		if err != nil {
			b.Fatal(err)
		}
		for _, on := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/bookkeeping=%v", fixture, on), func(b *testing.B) {
				d := mustOpenDB(b, Options{Now: time.Now})
				d.skipBookkeeping = !on
				if !on {
					d.indexStmt = nil // nor the body's index worked out before the writer
				}
				var n atomic.Int64
				b.SetParallelism(8) // 16 senders on 2 cores
				b.SetBytes(int64(len(body)))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						key := strconv.FormatInt(n.Add(1), 10)
						in := verified(body, key)
						in.Event.EventType = "device.synced"
						if _, err := d.CreateDelivery(context.Background(), in); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
