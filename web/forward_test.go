package web_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web/signature"
)

// mustForwardRule creates a target for url and a rule forwarding types to it, as an admin does
// in the UI.
func mustForwardRule(t *testing.T, e *replayEnv, url, types string) {
	t.Helper()
	admin := e.client("admin")
	resp, body := sendForm(t, admin, e.ts.URL+"/targets", map[string]string{"name": "app",
		"url": url, "default_mode": "original"}, false)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create target = %d %s", resp.StatusCode, body)
	}
	tg, _ := e.db.FindTargetByName(context.Background(), "app")
	resp, body = sendForm(t, admin, e.ts.URL+"/forwarding/rules", map[string]string{
		"target": fmt.Sprint(tg.ID), "types": types, "mode": "original"}, false)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create rule = %d %s", resp.StatusCode, body)
	}
}

// TestForwardSchedule forwards a new event to a target that keeps failing: on a fake clock the
// tries come at 0, +30 s, +5 min, +30 min, +2 h and +24 h, never earlier, and the schedule
// survives closing and reopening the database and the worker mid-way. After the last try the
// forward is dead; one click retries it, and a 2xx delivers it.
func TestForwardSchedule(t *testing.T) {
	path := t.TempDir() + "/forward.db"
	clock := newTestClock()
	var healthy atomic.Bool
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		}
	})
	e := newReplayEnv(t, path, clock)
	mustForwardRule(t, e, rc.srv.URL+"/hook", "transcription.completed, device.synced")

	// A matching event is queued in its ingest commit; another type is not.
	id := e.mustIngest(signature.SchemeDevguide, b1, nil)
	e.mustIngest(signature.SchemeDevguide, []byte(`{"event":"device.connected","id":"d1"}`), nil)
	e.mustIngest(signature.SchemeDevguide, b1, nil) // a duplicate is not forwarded again
	fs, _ := e.db.FindForwards(context.Background(), db.ForwardFilter{})
	if len(fs) != 1 || fs[0].EventID != id {
		t.Fatalf("queue = %+v, want one forward of event %d", fs, id)
	}

	// run advances the clock by d and runs the worker once; it returns the tries sent.
	run := func(e *replayEnv, d time.Duration) int {
		t.Helper()
		e.advance(d)
		before := len(rc.requests())
		if _, err := e.srv.ForwardDue(context.Background()); err != nil {
			t.Fatal(err)
		}
		return len(rc.requests()) - before
	}
	steps := []struct {
		wait    time.Duration
		want    int
		restart bool // close and reopen everything before this step
	}{
		{0, 1, false},
		{29 * time.Second, 0, false},
		{time.Second, 1, false}, // +30 s
		{5*time.Minute - time.Second, 0, false},
		{time.Second, 1, true}, // +5 min, after a restart
		{30*time.Minute - time.Second, 0, false},
		{time.Second, 1, false}, // +30 min
		{2*time.Hour - time.Second, 0, true},
		{time.Second, 1, false}, // +2 h
		{24*time.Hour - time.Second, 0, false},
		{time.Second, 1, false}, // +24 h: the last try
		{48 * time.Hour, 0, false},
	}
	for i, st := range steps {
		if st.restart {
			e.close()
			e = newReplayEnv(t, path, clock)
		}
		if got := run(e, st.wait); got != st.want {
			t.Fatalf("step %d (+%v): %d tries, want %d", i, st.wait, got, st.want)
		}
	}

	// Dead, with every try in the attempt log.
	f, _ := e.db.FindForwards(context.Background(), db.ForwardFilter{EventID: id})
	if f[0].State != db.ForwardDead || f[0].Tries != 6 || !strings.Contains(f[0].LastError, "503") {
		t.Errorf("forward = %+v, want dead after 6 tries with the last error", f[0])
	}
	as, _ := e.db.FindAttempts(context.Background(), db.AttemptFilter{EventID: id})
	if len(as) != 6 || as[0].Source != "forward" || as[0].Actor != "system" || as[0].StatusCode != 503 {
		t.Errorf("attempts = %d (newest %+v), want 6 forward attempts", len(as), as[0])
	}
	_, page := get(t, e.client("operator"), e.ts.URL+"/forwarding?state=dead")
	if !strings.Contains(page, `data-testid="forward-retry"`) || !strings.Contains(page, "dead (1)") {
		t.Errorf("forwarding page does not offer a retry of the dead forward")
	}

	// One click: due at once with a fresh schedule; the target is back, so it is delivered.
	healthy.Store(true)
	resp, _ := sendForm(t, e.client("operator"), fmt.Sprintf("%s/forwarding/queue/%d/retry", e.ts.URL, f[0].ID), nil, false)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("retry = %d", resp.StatusCode)
	}
	if got := run(e, 0); got != 1 {
		t.Errorf("after retry: %d tries, want 1", got)
	}
	f, _ = e.db.FindForwards(context.Background(), db.ForwardFilter{EventID: id})
	if f[0].State != db.ForwardDelivered || f[0].Tries != 1 {
		t.Errorf("forward = %+v, want delivered on the first try after the retry", f[0])
	}
	if es := auditActions(t, e.db, "forwarding.retry"); len(es) != 1 || es[0].Actor != "operator" {
		t.Errorf("retry not audited: %+v", es)
	}
}

// TestForwardWorker runs the real background worker: a webhook that a rule matches reaches the
// target without anyone calling it, because ingest wakes the worker.
func TestForwardWorker(t *testing.T) {
	e := mustReplayEnv(t)
	rc := newReceiver(t, nil)
	mustForwardRule(t, e, rc.srv.URL, "")
	e.srv.StartReplayWorkers()

	e.mustIngest(signature.SchemeDevguide, b3, nil)
	h := signature.Sign(signature.SchemeDevguide, []byte(testSecret), e.now(), b3)
	waitUntil(t, "the forward to arrive", func() bool { return len(rc.requests()) == 1 })
	got := rc.requests()[0]
	if string(got.body) != string(b3) || got.header.Get(signature.HeaderSignature) != h.Get(signature.HeaderSignature) {
		t.Errorf("forwarded %q with %v, want the original bytes and signature", got.body, got.header)
	}
	waitUntil(t, "the forward to be marked delivered", func() bool {
		fs, _ := e.db.FindForwards(context.Background(), db.ForwardFilter{State: db.ForwardDelivered})
		return len(fs) == 1
	})
}
