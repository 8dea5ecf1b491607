package web_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
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

// b3 is C3's body: spaces, a newline, key order and a \u00e9 escape that a re-serialisation
// would lose.
var b3 = []byte("{ \"event\": \"transcription.completed\",\n  \"data\": { \"transcriptionId\": \"tr_0003\", \"file_id\": \"f_0003\", \"title\": \"R\\u00e9union\" } }")

const targetSecret = "replay_target_secret"

// replayEnv is a server over a database file that can be closed and opened again (a restart),
// with a clock the test moves and a master key for sealed target values.
type replayEnv struct {
	*env
	path  string
	clock *atomic.Int64 // Unix nanoseconds
	close func()
}

// newReplayEnv starts the server over the database at path (created when missing) with the
// clock at *clock; opts change the configuration.
func newReplayEnv(t testing.TB, path string, clock *atomic.Int64, opts ...option) *replayEnv {
	t.Helper()
	ctx := context.Background()
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	ring, err := sealed.New(bytes.Repeat([]byte{5}, sealed.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(ctx, path, db.Options{Now: now, Sealer: ring})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []db.Role{db.RoleViewer, db.RoleOperator, db.RoleAdmin} {
		if _, err := d.FindUserByUsername(ctx, string(r)); err == nil {
			continue // reopened
		}
		if _, err := d.CreateUser(ctx, string(r), testHash(), r); err != nil {
			t.Fatal(err)
		}
	}
	cfg := web.Config{
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
		ReplayTimeout: 2 * time.Second,
		Now:           now,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv := web.NewServer(cfg, d)
	ts := httptest.NewServer(srv)
	var once sync.Once
	e := &replayEnv{env: &env{t: t, db: d, srv: srv, ts: ts}, path: path, clock: clock}
	e.close = func() {
		once.Do(func() {
			srv.CloseStreams()
			ts.Close()
			srv.StopReplayWorkers()
			srv.Wait()
			d.Close()
		})
	}
	t.Cleanup(e.close)
	return e
}

// newTestClock returns a clock at testNow.
func newTestClock() *atomic.Int64 {
	var c atomic.Int64
	c.Store(testNow.UnixNano())
	return &c
}

// mustReplayEnv is newReplayEnv over a fresh file.
func mustReplayEnv(t testing.TB, opts ...option) *replayEnv {
	t.Helper()
	return newReplayEnv(t, filepath.Join(t.TempDir(), "replay.db"), newTestClock(), opts...)
}

// now is the env's clock.
func (e *replayEnv) now() time.Time { return time.Unix(0, e.clock.Load()).UTC() }

// advance moves the clock on.
func (e *replayEnv) advance(d time.Duration) { e.clock.Add(int64(d)) }

// mustIngest posts body signed under scheme with S and returns the event id.
func (e *replayEnv) mustIngest(scheme signature.Scheme, body []byte, extra http.Header) int64 {
	e.t.Helper()
	h := signed(scheme, body, e.now())
	for k, v := range extra {
		h[k] = v
	}
	resp, reply := e.post("/webhook", h, body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("ingest: %d %s", resp.StatusCode, reply)
	}
	var r struct {
		EventID int64 `json:"event_id"`
	}
	if err := json.Unmarshal([]byte(reply), &r); err != nil || r.EventID == 0 {
		e.t.Fatalf("ingest reply %s", reply)
	}
	return r.EventID
}

// replayResult is what the replay API answers.
type replayResult struct {
	status  int
	attempt struct {
		ID              int64               `json:"id"`
		OK              bool                `json:"ok"`
		Outcome         string              `json:"outcome"`
		StatusCode      int                 `json:"status_code"`
		ErrorKind       string              `json:"error_kind"`
		Error           string              `json:"error"`
		Scheme          string              `json:"scheme"`
		SecretLabel     string              `json:"secret_label"`
		RequestHeaders  map[string][]string `json:"request_headers"`
		ResponseBody    string              `json:"response_body"`
		ResponseHeaders map[string][]string `json:"response_headers"`
	}
	raw string
}

// apiReplay calls POST /api/v1/events/{id}/replay as c.
func (e *replayEnv) apiReplay(c *http.Client, eventID int64, req map[string]string) replayResult {
	e.t.Helper()
	return e.apiReplayJSON(c, eventID, req)
}

// apiReplayJSON is apiReplay with any JSON-encodable request, for fields that are not strings.
func (e *replayEnv) apiReplayJSON(c *http.Client, eventID int64, req any) replayResult {
	e.t.Helper()
	b, _ := json.Marshal(req)
	resp, err := c.Post(fmt.Sprintf("%s/api/v1/events/%d/replay", e.ts.URL, eventID),
		"application/json", bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := replayResult{status: resp.StatusCode, raw: string(raw)}
	switch resp.StatusCode {
	case http.StatusCreated:
		json.Unmarshal(raw, &out.attempt)
	case http.StatusForbidden:
		var wrap struct {
			Attempt json.RawMessage `json:"attempt"`
		}
		json.Unmarshal(raw, &wrap)
		json.Unmarshal(wrap.Attempt, &out.attempt)
	}
	return out
}

// receiver is a local app being debugged: it records every request and every connection.
type receiver struct {
	srv   *httptest.Server
	conns atomic.Int64

	mu   sync.Mutex
	reqs []receivedRequest // mu guards reqs
}

type receivedRequest struct {
	header http.Header
	body   []byte
}

// newReceiver starts a receiver that answers with handle (200 "ok" when nil).
func newReceiver(t testing.TB, handle http.HandlerFunc) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, receivedRequest{header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
		if handle != nil {
			handle(w, r)
			return
		}
		w.Write([]byte("ok"))
	}))
	rc.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			rc.conns.Add(1)
		}
	}
	rc.srv.Start()
	t.Cleanup(rc.srv.Close)
	return rc
}

// requests returns what the receiver got so far.
func (rc *receiver) requests() []receivedRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receivedRequest(nil), rc.reqs...)
}

// port is the receiver's TCP port.
func (rc *receiver) port() string {
	_, port, _ := net.SplitHostPort(rc.srv.Listener.Addr().String())
	return port
}

// sendForm posts a form as c and returns the response with its body.
func sendForm(t *testing.T, c *http.Client, u string, form map[string]string, hx bool) (*http.Response, string) {
	t.Helper()
	vals := url.Values{}
	for k, v := range form {
		vals.Set(k, v)
	}
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(vals.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if hx {
		req.Header.Set("HX-Request", "true")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// waitUntil polls cond until it holds or 10 s pass (a background worker finishing, not a speed
// requirement).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// auditActions returns the audit entries whose action starts with prefix.
func auditActions(t *testing.T, d *db.DB, prefix string) []db.AuditEntry {
	t.Helper()
	es, _, err := d.FindAuditEntries(context.Background(), db.AuditFilter{ActionPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// readSSE opens a stream as c and returns the first message named name (its id, event and
// data lines).
func readSSE(t *testing.T, c *http.Client, u, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var msg strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if strings.Contains(msg.String(), "event: "+name+"\n") {
				return msg.String()
			}
			msg.Reset()
			continue
		}
		msg.WriteString(line + "\n")
	}
	t.Fatalf("stream %s ended without a %s message: %v", u, name, sc.Err())
	return ""
}
