package db

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"
)

// mustIngest stores in, failing the test on error.
func mustIngest(tb testing.TB, d *DB, in *Ingest) IngestResult {
	tb.Helper()
	out, err := d.CreateDelivery(context.Background(), in)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// count runs a count query on the read pool.
func count(tb testing.TB, d *DB, q string) int {
	tb.Helper()
	var n int
	if err := d.r.QueryRow(q).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestPruneByAge keeps events delivered within RetainDays and deletes older ones with every
// delivery and body they had; rejected deliveries age out too.
func TestPruneByAge(t *testing.T) {
	d := mustOpenDB(t, Options{RetainDays: 30})
	old := testNow.Add(-40 * 24 * time.Hour)
	for i := range 5 {
		in := verified([]byte(fmt.Sprintf("old %d", i)), fmt.Sprintf("old-%d", i))
		in.Delivery.ReceivedAt = old
		mustIngest(t, d, in)
		r := rejected([]byte("junk"), "missing_signature")
		r.Delivery.ReceivedAt = old
		mustIngest(t, d, r)
	}
	// An old event delivered again recently stays: age counts from its last delivery.
	again := verified([]byte("old 0"), "old-0")
	mustIngest(t, d, again)
	for i := range 4 {
		mustIngest(t, d, verified([]byte(fmt.Sprintf("new %d", i)), fmt.Sprintf("new-%d", i)))
	}

	res, err := d.Prune(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 4 || res.Rejected != 5 {
		t.Fatalf("pruned %+v, want 4 events and 5 rejected", res)
	}
	if got := count(t, d, `SELECT count(*) FROM events`); got != 5 {
		t.Errorf("events = %d, want 5", got)
	}
	if got := count(t, d, `SELECT count(*) FROM deliveries`); got != 6 {
		t.Errorf("deliveries = %d, want 6 (the kept events' deliveries)", got)
	}
	if got := count(t, d, `SELECT count(*) FROM delivery_bodies WHERE delivery_id NOT IN (SELECT id FROM deliveries)`); got != 0 {
		t.Errorf("orphan bodies = %d", got)
	}
}

// TestPrunePerEndpoint keeps the newest RetainPerEndpoint events of an endpoint.
func TestPrunePerEndpoint(t *testing.T) {
	d := mustOpenDB(t, Options{RetainPerEndpoint: 3})
	var ids []int64
	for i := range 10 {
		ids = append(ids, mustIngest(t, d, verified([]byte(fmt.Sprint(i)), fmt.Sprint(i))).EventID)
	}
	res, err := d.Prune(context.Background())
	if err != nil || res.Events != 7 {
		t.Fatalf("pruned %+v (%v), want 7 events", res, err)
	}
	for i, id := range ids {
		_, err := d.FindEventByID(context.Background(), id)
		if kept := err == nil; kept != (i >= 7) {
			t.Errorf("event %d kept = %v, want %v", i, kept, i >= 7)
		}
	}
}

// TestPruneRejectedBytes bounds what rejected deliveries keep by bytes as well as by count.
func TestPruneRejectedBytes(t *testing.T) {
	d := mustOpenDB(t, Options{MaxRejected: 8, MaxRejectedBytes: 10 << 10})
	for range 12 {
		mustIngest(t, d, rejected(make([]byte, 3<<10), "signature_mismatch"))
	}
	if _, err := d.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := count(t, d, `SELECT count(*) FROM deliveries WHERE verdict = 'rejected'`)
	bytes := count(t, d, `SELECT coalesce(sum(length(b.body) + length(d.headers)), 0)
		FROM deliveries d JOIN delivery_bodies b ON b.delivery_id = d.id`)
	if n != 3 || bytes > 10<<10 {
		t.Fatalf("rejected kept = %d using %d bytes, want the newest 3 within 10 KiB", n, bytes)
	}
	newest := count(t, d, `SELECT max(id) FROM deliveries`)
	if got := count(t, d, `SELECT min(id) FROM deliveries`); got != newest-2 {
		t.Errorf("oldest kept id = %d, want %d: the newest must be kept", got, newest-2)
	}
}

// TestPruneWhileIngesting prunes a large backlog while deliveries keep arriving: every delivery
// commits (pruning only borrows the writer between small batches) and the backlog goes.
func TestPruneWhileIngesting(t *testing.T) {
	d := mustOpenDB(t, Options{RetainDays: 1})
	old := testNow.Add(-48 * time.Hour)
	for i := range 3000 {
		in := verified([]byte(fmt.Sprint(i)), fmt.Sprint("backlog-", i))
		in.Delivery.ReceivedAt = old
		if _, err := d.CreateDelivery(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				_, err := d.CreateDelivery(context.Background(),
					verified([]byte("fresh"), fmt.Sprintf("fresh-%d-%d", w, i)))
				errs <- err
			}
		}()
	}
	res, err := d.Prune(context.Background())
	wg.Wait()
	close(errs)
	if err != nil || res.Events != 3000 {
		t.Fatalf("pruned %+v (%v), want the 3000 old events", res, err)
	}
	for err := range errs {
		if err != nil {
			t.Fatalf("delivery during pruning failed: %v", err)
		}
	}
	if got := count(t, d, `SELECT count(*) FROM events`); got != 200 {
		t.Errorf("events = %d, want the 200 fresh ones", got)
	}
}

// TestPruneInSmallBatches counts the writer's commits while a backlog is pruned: it goes in
// transactions of pruneBatch rows, never in one long one that would hold up ingest.
func TestPruneInSmallBatches(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{RetainDays: 1})
	const backlog = 1000
	for i := range backlog {
		in := verified([]byte(fmt.Sprint(i)), fmt.Sprint("old-", i))
		in.Delivery.ReceivedAt = testNow.Add(-48 * time.Hour)
		if _, err := d.CreateDelivery(ctx, in); err != nil {
			t.Fatal(err)
		}
	}

	// Count commits on the writer's one connection from here on.
	var commits atomic.Int64
	c, err := d.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Raw(func(dc any) error {
		dc.(*sqlite3.SQLiteConn).RegisterCommitHook(func() int { commits.Add(1); return 0 })
		return nil
	})
	c.Close()

	res, err := d.Prune(ctx)
	if err != nil || res.Events != backlog {
		t.Fatalf("pruned %+v (%v), want %d events", res, err, backlog)
	}
	if want := int64(backlog / pruneBatch); commits.Load() < want {
		t.Errorf("pruning took %d commits, want at least %d (batches of %d)", commits.Load(), want, pruneBatch)
	}
	if n, _ := d.CountRecords(ctx); n.Deliveries != 0 {
		t.Errorf("deliveries left = %d, want their events' deliveries gone too", n.Deliveries)
	}
}
