package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/db/sealed"
	"github.com/plaudhook/plaudhook/web"
	"github.com/plaudhook/plaudhook/web/signature"
)

// c23Env serves the real router over a real SQLite file whose storage and web logs both go to
// logs, with store wrapping the database when not nil (to inject faults after the commit).
func c23Env(t *testing.T, logs io.Writer, wrap func(*db.DB) web.Store) *replayEnv {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clock := newTestClock()
	clock.Store(time.Now().UnixNano()) // real time: the load runs for real
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	ring, err := sealed.New(bytes.Repeat([]byte{5}, sealed.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(ctx, filepath.Join(t.TempDir(), "c23.db"), db.Options{Now: now,
		Sealer: ring, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []db.Role{db.RoleViewer, db.RoleOperator, db.RoleAdmin} {
		if _, err := d.CreateUser(ctx, string(r), testHash(), r); err != nil {
			t.Fatal(err)
		}
	}
	var store web.Store = d
	if wrap != nil {
		store = wrap(d)
	}
	srv := web.NewServer(web.Config{
		BodyLimit: 1 << 20,
		Tolerance: 5 * time.Minute,
		Secrets: func(_ context.Context, id int64) []signature.Secret {
			if id != 1 {
				return nil
			}
			return []signature.Secret{{Label: "S", Key: []byte(testSecret)}}
		},
		SessionKeys:   [][]byte{bytes.Repeat([]byte{1}, 64), bytes.Repeat([]byte{2}, 32)},
		Heartbeat:     50 * time.Millisecond,
		Version:       "test",
		ReplayTimeout: 5 * time.Second,
		Now:           now,
		Logger:        log,
	}, store)
	ts := httptest.NewServer(srv)
	e := &replayEnv{env: &env{t: t, db: d, srv: srv, ts: ts}, clock: clock}
	t.Cleanup(func() {
		srv.CloseStreams()
		ts.Close()
		srv.StopReplayWorkers()
		srv.Wait()
		d.Close()
	})
	return e
}

// countEvents counts every stored event, page by page.
func countEvents(t *testing.T, d *db.DB) int {
	t.Helper()
	n := 0
	f := db.EventFilter{Limit: 500}
	for {
		evs, next, err := d.FindEvents(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		n += len(evs)
		if next == 0 {
			return n
		}
		f.Before = next
	}
}

// TestC23 is case C23 of CASES.md: 200 distinct signed webhooks sent all at once while 20
// readers page through the lists and 5 operators replay stored events. Every webhook is
// answered 2xx, exactly 200 events are stored, no reader or replay fails, nothing answers 5xx,
// and the logs never mention a busy or locked database.
func TestC23(t *testing.T) {
	const webhooks, readers, replayers = 200, 20, 5
	logs := &syncBuffer{}
	e := c23Env(t, logs, nil)
	rc := newReceiver(t, nil)
	viewer, operator := e.client("viewer"), e.client("operator")

	var (
		stop      = make(chan struct{})
		storedID  atomic.Int64 // an event id already acknowledged, for the replays
		reads     atomic.Int64
		replays   atomic.Int64
		failMu    sync.Mutex
		failures  []string
		bgWG      sync.WaitGroup
		fivexx    atomic.Int64
		ingestWG  sync.WaitGroup
		start     = make(chan struct{})
		ackedIDs  sync.Map
		nonOK     atomic.Int64
		unwritten atomic.Int64
	)
	fail := func(format string, args ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}

	// 20 list readers, each alternating between the event and delivery lists until the
	// webhooks are all answered.
	for i := range readers {
		bgWG.Add(1)
		go func() {
			defer bgWG.Done()
			<-start
			paths := []string{"/events", "/deliveries", "/events?q=c23", "/"}
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := viewer.Get(e.ts.URL + paths[(i+n)%len(paths)])
				if err != nil {
					fail("reader %d: %v", i, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					fivexx.Add(1)
				}
				if resp.StatusCode != http.StatusOK {
					fail("reader %d: %s answered %d", i, paths[(i+n)%len(paths)], resp.StatusCode)
					return
				}
				reads.Add(1)
			}
		}()
	}

	// 5 operators replaying an acknowledged event to a local app, over and over.
	for i := range replayers {
		bgWG.Add(1)
		go func() {
			defer bgWG.Done()
			<-start
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := storedID.Load()
				if id == 0 {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				res := e.apiReplay(operator, id, map[string]string{
					"target_url": rc.srv.URL + "/hooks/plaud", "mode": "original"})
				if res.status >= 500 {
					fivexx.Add(1)
				}
				if res.status != http.StatusCreated || !res.attempt.OK {
					fail("replay %d of event %d: %d %s", i, id, res.status, res.raw)
					return
				}
				replays.Add(1)
			}
		}()
	}

	// 200 distinct signed webhooks, all in flight together.
	for i := range webhooks {
		ingestWG.Add(1)
		go func() {
			defer ingestWG.Done()
			body := fmt.Appendf(nil, `{"event":"c23.load","id":"c23-%03d","data":{"n":%d}}`, i, i)
			req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/webhook", bytes.NewReader(body))
			req.Header = signed(signature.SchemeDevguide, body, e.now())
			<-start
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				fail("webhook %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			var reply struct {
				EventID int64 `json:"event_id"`
			}
			json.NewDecoder(resp.Body).Decode(&reply)
			if resp.StatusCode >= 500 {
				fivexx.Add(1)
			}
			if resp.StatusCode/100 != 2 {
				nonOK.Add(1)
				return
			}
			if reply.EventID == 0 {
				unwritten.Add(1)
				return
			}
			ackedIDs.Store(reply.EventID, true)
			storedID.CompareAndSwap(0, reply.EventID)
		}()
	}
	close(start)
	ingestWG.Wait()
	// Let readers and replays overlap the whole load, and have each done some work.
	waitUntil(t, "readers and replays to have run", func() bool {
		return reads.Load() >= readers && replays.Load() >= replayers
	})
	close(stop)
	bgWG.Wait()

	for _, f := range failures {
		t.Error(f)
	}
	if n := nonOK.Load(); n != 0 {
		t.Errorf("%d webhooks not answered 2xx", n)
	}
	if n := unwritten.Load(); n != 0 {
		t.Errorf("%d webhooks answered 2xx without an event id", n)
	}
	if n := fivexx.Load(); n != 0 {
		t.Errorf("%d answers were 5xx", n)
	}
	distinct := 0
	ackedIDs.Range(func(_, _ any) bool { distinct++; return true })
	if distinct != webhooks {
		t.Errorf("%d distinct event ids acknowledged, want %d", distinct, webhooks)
	}
	if n := countEvents(t, e.db); n != webhooks {
		t.Errorf("stored events = %d, want exactly %d", n, webhooks)
	}
	for _, bad := range []string{"SQLITE_BUSY", "database is locked", "database table is locked"} {
		if strings.Contains(strings.ToLower(logs.String()), strings.ToLower(bad)) {
			t.Errorf("the logs mention %q", bad)
		}
	}
	if len(rc.requests()) < replayers {
		t.Errorf("the local app got %d replays, want at least %d", len(rc.requests()), replayers)
	}
	t.Logf("%d webhooks, %d list reads, %d replays", webhooks, reads.Load(), replays.Load())
}

// afterCommitFaults is the real database, except that the reads done after a delivery was
// committed (to render it for open pages) fail, or hang until released.
type afterCommitFaults struct {
	*db.DB
	hang    chan struct{} // when not nil, reads wait for it to be closed
	entered chan struct{} // receives once per read that started
}

var errInjected = errors.New("injected read failure")

func (f *afterCommitFaults) FindEventByID(ctx context.Context, id int64) (db.Event, error) {
	select {
	case f.entered <- struct{}{}:
	default:
	}
	if f.hang != nil {
		<-f.hang
		return f.DB.FindEventByID(ctx, id)
	}
	return db.Event{}, errInjected
}

// TestC23FaultAfterCommit is C23's other fault: once the delivery is committed, a failing or
// hanging follow-up (the read that renders it for open pages) neither withholds nor changes
// the sender's 2xx, and the event is stored.
func TestC23FaultAfterCommit(t *testing.T) {
	for _, hang := range []bool{false, true} {
		t.Run(map[bool]string{false: "read fails", true: "read hangs"}[hang], func(t *testing.T) {
			faults := &afterCommitFaults{entered: make(chan struct{}, 1)}
			if hang {
				faults.hang = make(chan struct{})
			}
			e := c23Env(t, io.Discard, func(d *db.DB) web.Store { faults.DB = d; return faults })

			// An open page, so the delivery is rendered after its commit (by the stream, the
			// first time it writes the row).
			ts := streamServer(t, e.env, 0)
			if hang {
				t.Cleanup(func() { close(faults.hang) }) // before the servers wait for handlers
			}
			req, _ := http.NewRequest(http.MethodGet, ts.URL+"/events/stream", nil)
			req.Header.Set("Cookie", sessionCookie(t, e.env, "viewer"))
			stream, err := http.DefaultClient.Do(req)
			if err != nil || stream.StatusCode != 200 {
				t.Fatalf("open stream: %v %v", stream, err)
			}
			t.Cleanup(func() { stream.Body.Close() })
			waitUntil(t, "the stream to open", func() bool { return e.srv.Hub().Len() == 1 })

			body := []byte(`{"event":"c23.fault","id":"c23-after-commit"}`)
			resp, reply := e.post("/webhook", signed(signature.SchemeDevguide, body, e.now()), body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("delivery: %d %s, want 200", resp.StatusCode, reply)
			}
			select {
			case <-faults.entered:
			case <-time.After(30 * time.Second):
				t.Fatal("the follow-up read never ran: the fault was not exercised")
			}
			var r struct {
				EventID int64 `json:"event_id"`
			}
			if err := json.Unmarshal([]byte(reply), &r); err != nil || r.EventID == 0 {
				t.Fatalf("reply %s", reply)
			}
			if _, err := e.db.FindEventByID(context.Background(), r.EventID); err != nil {
				t.Fatalf("event %d after the fault: %v", r.EventID, err)
			}
			if n := countEvents(t, e.db); n != 1 {
				t.Fatalf("stored events = %d, want 1", n)
			}
		})
	}
}

// TestC23CommitFails is C23's fault injection at the commit itself: while every COMMIT fails (a
// disk that fills up as the WAL is written), concurrent signed deliveries, batched together,
// are each answered 503 with Retry-After, nothing is stored, and Plaud's retries are stored
// once the disk has room again.
func TestC23CommitFails(t *testing.T) {
	const senders = 16
	e := c23Env(t, io.Discard, nil)
	ctx := context.Background()
	if err := e.db.FailCommits(ctx, true); err != nil {
		t.Fatal(err)
	}
	bodies := make([][]byte, senders)
	for i := range bodies {
		bodies[i] = []byte(fmt.Sprintf(`{"event":"c23.commit","id":"c23-commit-%d"}`, i))
	}
	sendAll := func() []*http.Response {
		out := make([]*http.Response, senders)
		var wg sync.WaitGroup
		for i, b := range bodies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/webhook", bytes.NewReader(b))
				req.Header = signed(signature.SchemeDevguide, b, e.now())
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				out[i] = resp
			}()
		}
		wg.Wait()
		return out
	}

	for i, resp := range sendAll() {
		if resp == nil {
			continue
		}
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("delivery %d: %d, Retry-After %q; want 503 with Retry-After", i,
				resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if c, err := e.db.CountRecords(ctx); err != nil || c.Deliveries != 0 || c.Events != 0 {
		t.Fatalf("after failed commits: %+v (%v), want nothing stored", c, err)
	}

	// Room again: every retry is acknowledged and stored exactly once.
	if err := e.db.FailCommits(ctx, false); err != nil {
		t.Fatal(err)
	}
	for i, resp := range sendAll() {
		if resp != nil && resp.StatusCode != http.StatusOK {
			t.Errorf("retry %d: %d, want 200", i, resp.StatusCode)
		}
	}
	if n := countEvents(t, e.db); n != senders {
		t.Errorf("events after the retries = %d, want %d", n, senders)
	}
}
