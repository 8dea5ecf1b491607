package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web"
	"github.com/plaudhook/plaudhook/web/signature"
)

var (
	testSecret = "plaud_test_secret_do_not_use"
	testNow    = time.Unix(1796299200, 0).UTC()
	b1         = []byte(`{"event":"transcription.completed","data":{"file_id":"f_0001","transcriptionId":"tr_0001"}}`)
)

const testPassword = "correct horse battery"

// testHash hashes testPassword once for the whole package: bcrypt is slow on purpose.
var testHash = sync.OnceValue(func() string {
	h, err := web.HashPassword(testPassword)
	if err != nil {
		panic(err)
	}
	return h
})

type env struct {
	t     testing.TB
	db    *db.DB
	srv   *web.Server
	ts    *httptest.Server
	clock *syncClock
}

// syncClock is the server's clock in a test: the test moves it while request handlers and
// background work (normalisation after a commit) read it.
type syncClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *syncClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *syncClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// Add returns the clock's time moved by d, without moving the clock.
func (c *syncClock) Add(d time.Duration) time.Time { return c.Now().Add(d) }

// webConfig is the server configuration a test option may change.
type webConfig = web.Config

type option func(*web.Config)

// newEnv starts the real router over a real SQLite file, with the clock fixed at testNow and one
// user of each role (password testPassword).
func newEnv(t testing.TB, opts ...option) *env {
	t.Helper()
	clock := &syncClock{t: testNow}
	now := clock.Now
	d, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "web.db"), db.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	hash := testHash()
	for _, r := range []db.Role{db.RoleViewer, db.RoleOperator, db.RoleAdmin} {
		if _, err := d.CreateUser(context.Background(), string(r), hash, r); err != nil {
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
		SessionKeys: [][]byte{bytes.Repeat([]byte{1}, 64), bytes.Repeat([]byte{2}, 32)},
		Heartbeat:   50 * time.Millisecond,
		Now:         now,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv := web.NewServer(cfg, d)
	t.Cleanup(srv.Wait) // background normalising done before the database closes
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &env{t: t, db: d, srv: srv, ts: ts, clock: clock}
}

// post sends a webhook delivery.
func (e *env) post(path string, h http.Header, body []byte) (*http.Response, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+path, bytes.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// client returns an HTTP client signed in as username, which does not follow redirects.
func (e *env) client(username string) *http.Client {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := c.PostForm(e.ts.URL+"/login", url.Values{"username": {username}, "password": {testPassword}})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign in as %s: status %d", username, resp.StatusCode)
	}
	return c
}

func get(t testing.TB, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func signed(scheme signature.Scheme, body []byte, ts time.Time) http.Header {
	h := signature.Sign(scheme, []byte(testSecret), ts, body)
	h.Set("Content-Type", "application/json")
	return h
}

func shaHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func contains(t testing.TB, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("body lacks %q", w)
		}
	}
}
