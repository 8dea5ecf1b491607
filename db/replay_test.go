package db

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db/sealed"
)

// mustReplayKeyring returns a sealer with a fixed test key.
func mustReplayKeyring(tb testing.TB) *sealed.Keyring {
	tb.Helper()
	k, err := sealed.New(bytes.Repeat([]byte{7}, sealed.KeySize))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func replayPtr[T any](v T) *T { return &v }

// mustCreateTypedEvent stores a verified event of type typ and returns its id.
func mustCreateTypedEvent(tb testing.TB, d *DB, key, typ string) int64 {
	tb.Helper()
	in := verified([]byte(`{"event":"`+typ+`","id":"`+key+`"}`), key)
	in.Event.EventType = typ
	res, err := d.CreateDelivery(context.Background(), in)
	if err != nil {
		tb.Fatal(err)
	}
	return res.EventID
}

// TestIngestForwardingFlag checks that a stored delivery says whether forwarding may have work:
// only a new event, and only while some rule is enabled, so the forwarder is not woken for
// nothing on every webhook.
func TestIngestForwardingFlag(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	store := func(key string) IngestResult {
		t.Helper()
		res, err := d.CreateDelivery(ctx, verified([]byte(`{"id":"`+key+`"}`), key))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := store("a"); res.Forwarding {
		t.Errorf("no rules: Forwarding = true")
	}
	tg, err := d.CreateTarget(ctx, TargetInput{Name: "App", URL: "http://127.0.0.1:1/", DefaultMode: ModeOriginal})
	if err != nil {
		t.Fatal(err)
	}
	r := ForwardingRule{TargetID: tg.ID, Mode: ModeOriginal, Enabled: true}
	if err := d.CreateForwardingRule(ctx, &r); err != nil {
		t.Fatal(err)
	}
	if res := store("b"); !res.Forwarding {
		t.Errorf("enabled rule, new event: Forwarding = false")
	}
	if res := store("b"); res.Forwarding || !res.Duplicate {
		t.Errorf("repeat: Forwarding = %v, Duplicate = %v; want false, true", res.Forwarding, res.Duplicate)
	}
	if res, err := d.CreateDelivery(ctx, rejected([]byte(`{}`), "signature_mismatch")); err != nil || res.Forwarding {
		t.Errorf("rejected: Forwarding = %v (%v), want false", res.Forwarding, err)
	}
	if err := d.UpdateForwardingRuleEnabled(ctx, r.ID, false); err != nil {
		t.Fatal(err)
	}
	if res := store("c"); res.Forwarding {
		t.Errorf("rule disabled: Forwarding = true")
	}
}

// TestTargetSealed stores a target with a secret and an Authorization header, reads them back
// opened, and finds neither value in clear in the database file.
func TestTargetSealed(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{Sealer: mustReplayKeyring(t)})
	secret := "target_secret_value_0123456789"
	auth := "Bearer very-secret-token-abcdef"
	tg, err := d.CreateTarget(ctx, TargetInput{Name: "App", URL: "http://127.0.0.1:3000/hook",
		DefaultMode: ModeResign, Scheme: "embedded", Secret: &secret,
		Headers: &http.Header{"Authorization": {auth}, "X-Team": {"blue"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !tg.HasSecret || fmt.Sprint(tg.HeaderNames) != "[Authorization X-Team]" {
		t.Errorf("target = %+v, want a secret and two header names", tg)
	}

	// The values open again.
	k, err := d.FindTargetKeys(ctx, tg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(k.Secret) != secret || k.Headers.Get("Authorization") != auth {
		t.Errorf("keys = %q %v, want the stored values", k.Secret, k.Headers)
	}

	// Neither value is in the file (nor its WAL).
	d.w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	for _, path := range []string{d.Path, d.Path + "-wal"} {
		raw, _ := os.ReadFile(path)
		for _, v := range []string{secret, auth, "very-secret-token"} {
			if bytes.Contains(raw, []byte(v)) {
				t.Errorf("%s contains %q in clear", path, v)
			}
		}
	}

	// An update without Secret/Headers keeps them; an empty secret removes it.
	if err := d.UpdateTarget(ctx, tg.ID, TargetInput{Name: "App 2", URL: tg.URL,
		DefaultMode: ModeOriginal}); err != nil {
		t.Fatal(err)
	}
	if k, _ := d.FindTargetKeys(ctx, tg.ID); string(k.Secret) != secret {
		t.Errorf("secret after update = %q, want it kept", k.Secret)
	}
	if err := d.UpdateTarget(ctx, tg.ID, TargetInput{Name: "App 2", URL: tg.URL,
		DefaultMode: ModeOriginal, Secret: replayPtr("")}); err != nil {
		t.Fatal(err)
	}
	got, _ := d.FindTargetByName(ctx, "app 2")
	if got.HasSecret || got.DefaultMode != ModeOriginal {
		t.Errorf("after removal = %+v, want no secret, mode original", got)
	}

	t.Run("ErrConflict", func(t *testing.T) {
		_, err := d.CreateTarget(ctx, TargetInput{Name: "APP 2", URL: "http://x/", DefaultMode: ModeOriginal})
		if !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate name: err = %v, want ErrConflict", err)
		}
	})
	t.Run("NoSealer", func(t *testing.T) {
		plain := mustOpenDB(t, Options{})
		_, err := plain.CreateTarget(ctx, TargetInput{Name: "x", URL: "http://x/",
			DefaultMode: ModeOriginal, Secret: replayPtr("s")})
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("secret without a master key: err = %v, want a ValidationError", err)
		}
	})
	t.Run("Reseal", func(t *testing.T) {
		newKey := bytes.Repeat([]byte{9}, sealed.KeySize)
		ring, _ := sealed.New(newKey, bytes.Repeat([]byte{7}, sealed.KeySize))
		d.opt.Sealer = ring
		if err := d.UpdateTarget(ctx, tg.ID, TargetInput{Name: "App 2", URL: tg.URL,
			DefaultMode: ModeOriginal, Secret: &secret}); err != nil {
			t.Fatal(err)
		}
		// Reseal the headers (still under the old key) and nothing else.
		n, err := d.ResealTargets(ctx)
		if err != nil || n != 1 {
			t.Fatalf("ResealTargets = %d, %v; want 1", n, err)
		}
		ids, _ := d.FindTargetKeyIDs(ctx)
		if len(ids) != 1 || ids[0] != sealed.KeyID(newKey) {
			t.Errorf("key ids = %v, want only the new key", ids)
		}
	})
}

// TestForwardTrigger checks that storing a new event queues one forward per matching rule, in
// the ingest transaction, and that a duplicate delivery queues nothing.
func TestForwardTrigger(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	tg, err := d.CreateTarget(ctx, TargetInput{Name: "App", URL: "http://127.0.0.1:1/",
		DefaultMode: ModeOriginal})
	if err != nil {
		t.Fatal(err)
	}
	rules := []ForwardingRule{
		{TargetID: tg.ID, EventTypes: []string{"transcription.completed", "device.synced"}, Mode: ModeOriginal, Enabled: true},
		{TargetID: tg.ID, Mode: ModeResign, Enabled: true},                                          // every type
		{TargetID: tg.ID, EventTypes: []string{"transcription"}, Mode: ModeOriginal, Enabled: true}, // no prefix match
		{TargetID: tg.ID, Mode: ModeOriginal, Enabled: false},
		{TargetID: tg.ID, EndpointID: 99, Mode: ModeOriginal, Enabled: true},
	}
	if err := d.CreateForwardingRule(ctx, &rules[4]); !errors.Is(err, ErrConflict) {
		t.Errorf("rule on a missing endpoint: err = %v, want ErrConflict", err)
	}
	for i := range rules[:4] {
		if err := d.CreateForwardingRule(ctx, &rules[i]); err != nil {
			t.Fatal(err)
		}
	}

	ev := mustCreateTypedEvent(t, d, "e1", "transcription.completed")
	other := mustCreateTypedEvent(t, d, "e2", "device.connected")
	mustCreateTypedEvent(t, d, "e1", "transcription.completed") // duplicate of e1

	fs, err := d.FindForwards(ctx, ForwardFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64][]int64{}
	for _, f := range fs {
		got[f.EventID] = append(got[f.EventID], f.RuleID)
		if f.State != ForwardPending || !f.NextAt.Equal(testNow) || f.TargetName != "App" {
			t.Errorf("forward = %+v, want pending, due at receipt", f)
		}
	}
	if fmt.Sprint(got[ev]) != fmt.Sprint([]int64{rules[1].ID, rules[0].ID}) {
		t.Errorf("forwards of event %d = rules %v, want %d and %d", ev, got[ev], rules[1].ID, rules[0].ID)
	}
	if fmt.Sprint(got[other]) != fmt.Sprint([]int64{rules[1].ID}) {
		t.Errorf("forwards of event %d = rules %v, want only %d", other, got[other], rules[1].ID)
	}

	// Due now, in order; recording a failed try moves it to its next time.
	due, err := d.FindDueForwards(ctx, testNow, 10)
	if err != nil || len(due) != 3 {
		t.Fatalf("due = %d, %v; want 3", len(due), err)
	}
	f := due[0]
	f.Tries, f.NextAt, f.LastError = 1, testNow.Add(30*time.Second), "HTTP 500"
	a := &Attempt{EventID: f.EventID, URL: "http://127.0.0.1:1/", Mode: f.Mode, Source: "forward",
		Actor: "system", StartedAt: testNow, RequestSHA256: "x", StatusCode: 500}
	if err := d.RecordForwardTry(ctx, a, f); err != nil {
		t.Fatal(err)
	}
	if due, _ := d.FindDueForwards(ctx, testNow, 10); len(due) != 2 {
		t.Errorf("due after one retry scheduled = %d, want 2", len(due))
	}
	next, ok, _ := d.NextForwardAt(ctx)
	if !ok || !next.Equal(testNow) {
		t.Errorf("NextForwardAt = %v %v, want now", next, ok)
	}
	stored, _ := d.FindAttemptByID(ctx, a.ID)
	if stored.ForwardID != f.ID || stored.StatusCode != 500 {
		t.Errorf("attempt = %+v, want forward %d, status 500", stored, f.ID)
	}

	t.Run("Retry", func(t *testing.T) {
		f.State = ForwardDelivered
		if err := d.RecordForwardTry(ctx, &Attempt{EventID: f.EventID, URL: "u", Mode: f.Mode,
			Source: "forward", Actor: "system", StartedAt: testNow, RequestSHA256: "x"}, f); err != nil {
			t.Fatal(err)
		}
		var ve *ValidationError
		if err := d.RetryForward(ctx, f.ID); !errors.As(err, &ve) {
			t.Errorf("retry of a delivered forward: err = %v, want ValidationError", err)
		}
		if err := d.RetryForward(ctx, 9999); !errors.Is(err, ErrNotFound) {
			t.Errorf("retry of a missing forward: err = %v, want ErrNotFound", err)
		}
	})
}

// TestBulkJob creates a job over a filter, records tries, and checks the resume query leaves out
// events the job already sent.
func TestBulkJob(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	var ids []int64
	for i := range 5 {
		typ := "device.synced"
		if i%2 == 1 {
			typ = "device.connected"
		}
		ids = append(ids, mustCreateTypedEvent(t, d, fmt.Sprintf("k%d", i), typ))
	}
	f := BulkFilter{EventType: replayPtr("device.synced")}
	if n, err := d.CountBulkEvents(ctx, f); err != nil || n != 3 {
		t.Fatalf("count = %d, %v; want 3", n, err)
	}
	j := &BulkJob{Actor: "admin", URL: "http://127.0.0.1:1/", Mode: ModeOriginal, Filter: f,
		Rate: 5, Concurrency: 2}
	if err := d.CreateBulkJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if j.Total != 3 || j.LastEventID != ids[4] || j.State != BulkRunning {
		t.Errorf("job = %+v, want 3 events up to %d, running", j, ids[4])
	}

	// An event stored later is not part of the job.
	late := mustCreateTypedEvent(t, d, "late", "device.synced")
	evs, err := d.FindBulkEvents(ctx, f, j.ID, 0, j.LastEventID, 10)
	if err != nil || len(evs) != 3 {
		t.Fatalf("bulk events = %d, %v; want 3", len(evs), err)
	}
	for _, e := range evs {
		if e.ID == late {
			t.Errorf("event stored after the job was created is part of it")
		}
	}

	// One try recorded: the resume query skips it and the counts move.
	a := &Attempt{EventID: ids[2], URL: j.URL, Mode: ModeOriginal, Source: "bulk", Actor: "admin",
		StartedAt: testNow, RequestSHA256: "x", StatusCode: 502}
	if err := d.RecordBulkTry(ctx, j.ID, a); err != nil {
		t.Fatal(err)
	}
	evs, _ = d.FindBulkEvents(ctx, f, j.ID, 0, j.LastEventID, 10)
	if len(evs) != 2 || evs[0].ID != ids[0] || evs[1].ID != ids[4] {
		t.Errorf("resume = %v, want events %d and %d", evs, ids[0], ids[4])
	}
	got, _ := d.FindBulkJobByID(ctx, j.ID)
	if got.Done != 1 || got.Failed != 1 || *got.Filter.EventType != "device.synced" {
		t.Errorf("job = %+v, want done 1, failed 1, filter kept", got)
	}

	// Finish once; twice is a validation error.
	if err := d.FinishBulkJob(ctx, j.ID, BulkCancelled); err != nil {
		t.Fatal(err)
	}
	var ve *ValidationError
	if err := d.FinishBulkJob(ctx, j.ID, BulkDone); !errors.As(err, &ve) {
		t.Errorf("second finish: err = %v, want ValidationError", err)
	}
	if err := d.CreateBulkJob(ctx, &BulkJob{Filter: BulkFilter{EventType: replayPtr("none")},
		URL: "u", Mode: ModeOriginal, Rate: 1, Concurrency: 1}); !errors.As(err, &ve) {
		t.Errorf("empty job: err = %v, want ValidationError", err)
	}
}

// BenchmarkForwardTrigger measures what the forwarding trigger adds to ingest: the same
// group-commit path as BenchmarkCreateDelivery (16 senders) without the trigger, with it and no
// rules, and with three rules of which one matches every event. synchronous=OFF takes the fsync
// out, leaving the CPU cost of the statements.
func BenchmarkForwardTrigger(b *testing.B) {
	for _, c := range []struct{ sync, variant string }{
		{"FULL", "no-trigger"}, {"FULL", "no-rules"}, {"FULL", "3-rules"},
		{"OFF", "no-trigger"}, {"OFF", "no-rules"}, {"OFF", "3-rules"},
	} {
		variant := c.variant
		b.Run("sync="+c.sync+"/"+variant, func(b *testing.B) {
			ctx := context.Background()
			d := mustOpenDB(b, Options{Now: time.Now, Synchronous: c.sync})
			switch variant {
			case "no-trigger":
				if _, err := d.w.Exec(`DROP TRIGGER events_forward`); err != nil {
					b.Fatal(err)
				}
			case "3-rules":
				tg, err := d.CreateTarget(ctx, TargetInput{Name: "t", URL: "http://127.0.0.1:1/",
					DefaultMode: ModeOriginal})
				if err != nil {
					b.Fatal(err)
				}
				for _, types := range [][]string{{"transcription.completed"}, {"device.synced"}, {"a", "b"}} {
					if err := d.CreateForwardingRule(ctx, &ForwardingRule{TargetID: tg.ID,
						EventTypes: types, Mode: ModeOriginal, Enabled: true}); err != nil {
						b.Fatal(err)
					}
				}
			}
			body := make([]byte, 2048)
			var n atomic.Int64
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprint(n.Add(1))
					if _, err := d.CreateDelivery(ctx, verified(body, key)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
