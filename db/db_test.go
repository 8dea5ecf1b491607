package db

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var testNow = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// mustOpenDB opens a fresh database file in a temporary folder with the clock fixed.
func mustOpenDB(tb testing.TB, opt Options) *DB {
	tb.Helper()
	if opt.Now == nil {
		opt.Now = func() time.Time { return testNow }
	}
	d, err := Open(context.Background(), filepath.Join(tb.TempDir(), "test.db"), opt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

func shaHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// verified builds the ingest of a verified delivery whose event dedupes on key.
func verified(body []byte, key string) *Ingest {
	return &Ingest{
		Delivery: Delivery{EndpointID: 1, ReceivedAt: testNow, Method: "POST", Path: "/webhook",
			Header: http.Header{"Plaud-Signature": {"abc"}}, Body: body, BodySHA256: shaHex(body),
			Size: int64(len(body)), Verdict: Verified, Scheme: "devguide", SecretLabel: "S"},
		Event: &Event{DedupeKey: key, EventType: "transcription.completed", JSON: true,
			Size: int64(len(body)), FileID: "f_1"},
	}
}

func rejected(body []byte, reason string) *Ingest {
	return &Ingest{Delivery: Delivery{EndpointID: 1, ReceivedAt: testNow, Method: "POST",
		Path: "/webhook", Header: http.Header{}, Body: body, BodySHA256: shaHex(body),
		Size: int64(len(body)), Verdict: Rejected, Reason: reason}}
}

// TestMigrateFromScratch opens an empty file, checks the schema, and reopens it (no migration
// runs twice).
func TestMigrateFromScratch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fresh.db")
	for i := 0; i < 2; i++ {
		d, err := Open(context.Background(), path, Options{})
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		if _, err := d.EndpointIDBySlug(context.Background(), "default"); err != nil {
			t.Fatalf("default endpoint: %v", err)
		}
		var mode, sync string
		d.w.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
		d.w.QueryRow(`PRAGMA synchronous`).Scan(&sync)
		if mode != "wal" || sync != "2" {
			t.Errorf("journal_mode = %s, synchronous = %s, want wal, 2 (FULL)", mode, sync)
		}
		if st, err := os.Stat(d.Path); err != nil {
			t.Error(err)
		} else if st.Mode().Perm() != 0o600 {
			t.Errorf("database file mode = %v, want 0600", st.Mode().Perm())
		}
		// Readers and the writer wait for a lock instead of failing with "database is locked".
		for name, pool := range map[string]*sql.DB{"writer": d.w, "readers": d.r} {
			var busy, fk int
			pool.QueryRow(`PRAGMA busy_timeout`).Scan(&busy)
			pool.QueryRow(`PRAGMA foreign_keys`).Scan(&fk)
			if busy != 5000 || fk != 1 {
				t.Errorf("%s: busy_timeout = %d, foreign_keys = %d; want 5000, 1", name, busy, fk)
			}
		}
		d.Close()
	}
}

func TestCreateDelivery(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	body := []byte(`{"event":"x","id":"evt_1"}` + "\xff")

	t.Run("OK", func(t *testing.T) {
		got, err := d.CreateDelivery(ctx, verified(body, "id:evt_1"))
		if err != nil {
			t.Fatal(err)
		}
		if got.EventID == 0 || got.Duplicate || got.DeliveryCount != 1 {
			t.Fatalf("result = %+v, want a new event", got)
		}
		stored, err := d.FindDeliveryByID(ctx, got.DeliveryID)
		if err != nil {
			t.Fatal(err)
		}
		if shaHex(stored.Body) != shaHex(body) || stored.EventID != got.EventID {
			t.Errorf("stored body sha %s event %d, want byte-exact body of event %d", shaHex(stored.Body), stored.EventID, got.EventID)
		}
		if stored.Header.Get("Plaud-Signature") != "abc" {
			t.Errorf("headers = %v, want them as received", stored.Header)
		}
	})

	t.Run("Duplicate", func(t *testing.T) {
		got, err := d.CreateDelivery(ctx, verified(body, "id:evt_1"))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Duplicate || got.DeliveryCount != 2 {
			t.Fatalf("result = %+v, want duplicate #2", got)
		}
		events, _, err := d.FindEvents(ctx, EventFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 1 || events[0].DeliveryCount != 2 {
			t.Fatalf("events = %+v, want one event delivered twice", events)
		}
	})

	t.Run("Rejected", func(t *testing.T) {
		got, err := d.CreateDelivery(ctx, rejected([]byte("junk"), "signature_mismatch"))
		if err != nil {
			t.Fatal(err)
		}
		if got.EventID != 0 {
			t.Fatalf("rejected delivery made event %d", got.EventID)
		}
		v := Rejected
		ds, err := d.FindDeliveries(ctx, DeliveryFilter{Verdict: &v})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].Reason != "signature_mismatch" {
			t.Fatalf("rejected = %+v, want one with its reason", ds)
		}
	})
}

// TestParallelDuplicates is C12's variant: ten identical deliveries at once make one event and
// ten delivery rows, with no constraint error.
func TestParallelDuplicates(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	body := []byte(`{"event":"device.recording_completed","data":{"event_id":"evt_0012"}}`)

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := d.CreateDelivery(ctx, verified(body, "id:evt_0012")); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	events, _, _ := d.FindEvents(ctx, EventFilter{})
	ds, _ := d.FindDeliveries(ctx, DeliveryFilter{})
	if len(events) != 1 || events[0].DeliveryCount != 10 || len(ds) != 10 {
		t.Fatalf("events %d (count %d), deliveries %d; want 1 (10), 10", len(events), events[0].DeliveryCount, len(ds))
	}
}

// TestGroupCommit checks that concurrent deliveries share commits and all land.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	maxBatch := 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := []byte(fmt.Sprintf(`{"n":%d}`, i))
			res, err := d.CreateDelivery(ctx, verified(body, "sha256:"+shaHex(body)))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			maxBatch = max(maxBatch, res.BatchSize)
			mu.Unlock()
		}()
	}
	wg.Wait()
	var count int
	d.r.QueryRow(`SELECT count(*) FROM events`).Scan(&count)
	if count != n {
		t.Fatalf("events = %d, want %d", count, n)
	}
	if maxBatch < 2 {
		t.Errorf("largest batch = %d, want deliveries to share commits", maxBatch)
	}
}

// TestRejectedBounded checks a flood of rejected deliveries keeps only the newest MaxRejected.
func TestRejectedBounded(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{MaxRejected: 50})
	for i := 0; i < 300; i++ {
		if _, err := d.CreateDelivery(ctx, rejected([]byte(fmt.Sprint(i)), "missing_signature")); err != nil {
			t.Fatal(err)
		}
	}
	var count, bodies int
	d.r.QueryRow(`SELECT count(*) FROM deliveries WHERE verdict = 'rejected'`).Scan(&count)
	d.r.QueryRow(`SELECT count(*) FROM delivery_bodies`).Scan(&bodies)
	// Pruning runs every 100 rejected rows, so at most 99 beyond the bound remain.
	if count > 50+99 || count < 50 || bodies != count {
		t.Fatalf("rejected rows = %d, bodies = %d; want between 50 and 149, bodies equal", count, bodies)
	}
}

// TestCommitFailure is C23's fault injection: a commit that cannot write fails with
// ErrUnavailable and stores nothing.
func TestCommitFailure(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	if _, err := d.w.Exec(`PRAGMA query_only = ON`); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"a":1}`)
	_, err := d.CreateDelivery(ctx, verified(body, "x"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	d.w.Exec(`PRAGMA query_only = OFF`)
	var count int
	d.r.QueryRow(`SELECT count(*) FROM deliveries`).Scan(&count)
	if count != 0 {
		t.Fatalf("deliveries = %d after failed commit, want 0", count)
	}
	if _, err := d.CreateDelivery(ctx, verified(body, "x")); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// TestCommitFailsAtCommit: every statement of a batch succeeds and then COMMIT itself fails (as
// on a disk that fills up while the WAL is written). Every delivery of the batch gets
// ErrUnavailable, none of them is stored, and the next commit works.
func TestCommitFailsAtCommit(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	if err := d.FailCommits(ctx, true); err != nil {
		t.Fatal(err)
	}

	// Many senders at once, so that batches of several deliveries fail together.
	const senders = 32
	errs := make(chan error, senders)
	var wg sync.WaitGroup
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := []byte(fmt.Sprintf(`{"event":"x","id":"evt_%d"}`, i))
			_, err := d.CreateDelivery(ctx, verified(body, fmt.Sprint(i)))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable for every delivery of a failed commit", err)
		}
	}
	c, err := d.CountRecords(ctx)
	if err != nil || c.Deliveries != 0 || c.Events != 0 {
		t.Fatalf("after failed commits: %+v (%v), want nothing stored", c, err)
	}

	// The disk has room again: the retries are stored, and the file is sound.
	if err := d.FailCommits(ctx, false); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := d.CreateDelivery(ctx, verified([]byte(fmt.Sprint(i)), fmt.Sprint(i))); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	}
	if c, _ := d.CountRecords(ctx); c.Events != 3 {
		t.Errorf("events after recovery = %d, want 3", c.Events)
	}
	if v, err := d.IntegrityCheck(ctx); v != "ok" {
		t.Errorf("integrity_check = %q (%v)", v, err)
	}
}

// TestClosed checks a closed database answers ErrUnavailable instead of panicking.
func TestClosed(t *testing.T) {
	d := mustOpenDB(t, Options{})
	d.Close()
	_, err := d.CreateDelivery(context.Background(), verified([]byte("{}"), "x"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

// TestEventPagination walks every page with the keyset cursor.
func TestEventPagination(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	for i := 0; i < 25; i++ {
		body := []byte(fmt.Sprint(i))
		if _, err := d.CreateDelivery(ctx, verified(body, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[int64]bool{}
	var before int64
	pages := 0
	for {
		page, next, err := d.FindEvents(ctx, EventFilter{Limit: 10, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for i, e := range page {
			if seen[e.ID] || (i > 0 && e.ID >= page[i-1].ID) {
				t.Fatalf("page %d: id %d out of order or repeated", pages, e.ID)
			}
			seen[e.ID] = true
		}
		if next == 0 {
			break
		}
		before = next
	}
	if len(seen) != 25 || pages != 3 {
		t.Fatalf("saw %d events in %d pages, want 25 in 3", len(seen), pages)
	}
}

// BenchmarkCreateDelivery is the storage half of a delivery: distinct 2 KB JSON events, stored
// by concurrent callers through group commit with synchronous=FULL.
func BenchmarkCreateDelivery(b *testing.B) {
	for _, senders := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			d := mustOpenDB(b, Options{Now: time.Now})
			pad := strings.Repeat("x", 1900)
			var n atomic.Int64
			b.SetParallelism(max(1, senders/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprintf("evt_%d", n.Add(1))
					body := fmt.Appendf(nil, `{"event":"audio_transcribe.completed","id":%q,`+
						`"data":{"file_id":"f_1","status":"completed","note":%q}}`, key, pad)
					in := verified(body, "id:"+key)
					in.Delivery.ReceivedAt = time.Now()
					if _, err := d.CreateDelivery(context.Background(), in); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// TestAuditAppendOnly checks entries can be added and read but never changed or removed.
func TestAuditAppendOnly(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	for _, a := range []string{"login.ok", "login.failed", "secret.rotate"} {
		if err := d.CreateAuditEntry(ctx, AuditEntry{Actor: "admin", Action: a}); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := d.FindAuditEntries(ctx, AuditFilter{ActionPrefix: "login."})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Action != "login.failed" || !got[0].At.Equal(testNow) {
		t.Fatalf("entries = %+v, want the two login entries, newest first", got)
	}
	if _, err := d.w.Exec(`UPDATE audit SET actor = 'x'`); err == nil {
		t.Error("audit update succeeded")
	}
	if _, err := d.w.Exec(`DELETE FROM audit`); err == nil {
		t.Error("audit delete succeeded")
	}
}

// TestCheckpointsOffTheWriter checks that the writer does not checkpoint on commit (SQLite's
// autocheckpoint is off; it only tops up after the checkpointer's passes) and the background
// checkpointer copies committed pages into the database file while deliveries arrive (without
// it the file would never grow: in WAL mode only a checkpoint writes it), and that everything
// is there after a reopen.
func TestCheckpointsOffTheWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt.db")
	d, err := Open(context.Background(), path, Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	var auto int
	if err := d.w.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("writer's wal_autocheckpoint = %d (%v), want 0", auto, err)
	}
	fileSize := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := fileSize()
	pad := strings.Repeat("x", 4096)
	const n = 300
	for i := range n {
		body := fmt.Appendf(nil, `{"event":"ckpt","id":"ckpt-%d","pad":"%s"}`, i, pad)
		if _, err := d.CreateDelivery(context.Background(), verified(body, "id:ckpt-"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for fileSize() < before+n*4096 {
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes after %d deliveries (was %d): nothing checkpointed", fileSize(), n, before)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = mustReopen(t, path)
	stored := 0
	for f := (EventFilter{Limit: 100}); ; {
		events, next, err := d.FindEvents(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		stored += len(events)
		if next == 0 {
			break
		}
		f.Before = next
	}
	if stored != n {
		t.Fatalf("events after reopen = %d, want %d", stored, n)
	}
	if ok, err := d.IntegrityCheck(context.Background()); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q (%v)", ok, err)
	}
}

// TestWALStartsOver: while deliveries are committed without a pause, the write-ahead log still
// starts over from its beginning after checkpoints, rather than growing until WALLimit forces
// writes to stop for a TRUNCATE.
func TestWALStartsOver(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{WALLimit: 1 << 40}) // no TRUNCATE: only restarts can bound it
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for s := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("restart-%d-%d", s, i)
				if _, err := d.CreateDelivery(ctx, verified([]byte(`{"id":"`+key+`"}`), key)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for d.walRestarts.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if n := d.walRestarts.Load(); n < 2 {
		t.Fatalf("the log started over %d times under steady commits in 60 s, want at least 2", n)
	}
	if n := d.walTruncations.Load(); n != 0 {
		t.Errorf("%d TRUNCATE checkpoints", n)
	}
}

func mustReopen(t *testing.T, path string) *DB {
	t.Helper()
	d, err := Open(context.Background(), path, Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestWALBounded writes a flood of large deliveries with a small WALLimit: once it is over, the
// write-ahead log is back within the limit (the disk a flood took is given back), and closing
// the database removes it.
func TestWALBounded(t *testing.T) {
	ctx := context.Background()
	const limit = 1 << 20
	d := mustOpenDB(t, Options{WALLimit: limit})
	walSize := func() int64 {
		st, err := os.Stat(d.Path + "-wal")
		if err != nil {
			return 0
		}
		return st.Size()
	}

	// 16 MiB in 64 KiB bodies from 16 senders.
	body := bytes.Repeat([]byte("w"), 64<<10)
	var wg sync.WaitGroup
	for s := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 16 {
				b := append([]byte(fmt.Sprintf("%d-%d:", s, i)), body...)
				if _, err := d.CreateDelivery(ctx, verified(b, fmt.Sprintf("%d-%d", s, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()

	// Quiet again: after a checkpoint, the next commit restarts the log and cuts it back.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; walSize() > limit; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("write-ahead log = %d bytes after the flood, want at most %d", walSize(), limit)
		}
		d.CreateDelivery(ctx, verified([]byte(fmt.Sprint("after-", i)), fmt.Sprint("after-", i)))
		time.Sleep(100 * time.Millisecond)
	}
	if c, _ := d.CountRecords(ctx); c.Events < 256 {
		t.Errorf("events = %d, want the 256 of the flood", c.Events)
	}
	path := d.Path
	d.Close()
	if st, err := os.Stat(path + "-wal"); err == nil && st.Size() > 0 {
		t.Errorf("write-ahead log after Close = %d bytes, want none", st.Size())
	}
}
