package web_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/db/sealed"
	"github.com/plaudhook/plaudhook/web"
	"github.com/plaudhook/plaudhook/web/signature"
)

// Values of ../shared/cases/CASES.md used by the endpoint and secret tests.
const (
	oldSecret = "plaud_old_secret_do_not_use"
	sigS      = "f7b769ef5f5cd3dc7d658aea9e2a211e7798d637e0ca4379150c8448335305b1" // B1, devguide, S
	sigOld    = "94d878937624341f045d2469972f68b3ce4de5965d320858361a095084f84b19" // B1, devguide, old
)

// secretEnv is a server whose database has a master key, so secrets can be stored; no secret
// comes from the environment unless an option adds one. The clock is atomic: handlers read it
// while the test moves it.
type secretEnv struct {
	*env
	clock *atomic.Int64 // Unix nanoseconds
	logs  *syncBuffer   // everything the server logged
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newSecretEnv(t *testing.T, opts ...option) *secretEnv {
	t.Helper()
	ctx := context.Background()
	clock := &atomic.Int64{}
	clock.Store(testNow.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	ring, err := sealed.New(sealed.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(ctx, filepath.Join(t.TempDir(), "secrets.db"), db.Options{Now: now, Sealer: ring})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []db.Role{db.RoleViewer, db.RoleOperator, db.RoleAdmin} {
		if _, err := d.CreateUser(ctx, string(r), testHash(), r); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncBuffer{}
	cfg := web.Config{
		BodyLimit:   1 << 20,
		Tolerance:   5 * time.Minute,
		SessionKeys: [][]byte{bytes.Repeat([]byte{1}, 64), bytes.Repeat([]byte{2}, 32)},
		Heartbeat:   50 * time.Millisecond,
		Version:     "test",
		Now:         now,
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv := web.NewServer(cfg, d)
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.CloseStreams()
		ts.Close()
		srv.Wait()
		d.Close()
	})
	return &secretEnv{env: &env{t: t, db: d, srv: srv, ts: ts}, clock: clock, logs: logs}
}

func (e *secretEnv) now() time.Time { return time.Unix(0, e.clock.Load()).UTC() }

func (e *secretEnv) setClock(t time.Time) { e.clock.Store(t.UnixNano()) }

// form posts a form as a signed-in client and returns the response with its body read.
func form(t *testing.T, c *http.Client, u string, v url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, v)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// mustForm posts a form that must be answered with a redirect (post/redirect/get), and returns
// the page it redirects to.
func (e *secretEnv) mustForm(c *http.Client, path string, v url.Values) string {
	e.t.Helper()
	resp, body := form(e.t.(*testing.T), c, e.ts.URL+path, v)
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("POST %s: %d, want 303\n%s", path, resp.StatusCode, body)
	}
	_, page := get(e.t.(*testing.T), c, e.ts.URL+resp.Header.Get("Location"))
	return page
}

// addSecret adds a secret through the UI as admin.
func (e *secretEnv) addSecret(c *http.Client, slug, label, value string) string {
	e.t.Helper()
	return e.mustForm(c, "/endpoints/"+slug+"/secrets", url.Values{"label": {label}, "value": {value}})
}

// deliveryPage returns the page of the newest delivery, as admin.
func (e *secretEnv) newestDelivery(c *http.Client) (db.Delivery, *goquery.Document) {
	e.t.Helper()
	ds, err := e.db.FindDeliveries(context.Background(), db.DeliveryFilter{Limit: 1})
	if err != nil || len(ds) == 0 {
		e.t.Fatalf("no delivery: %v", err)
	}
	return ds[0], e.deliveryDoc(c, ds[0].ID)
}

func (e *secretEnv) deliveryDoc(c *http.Client, id int64) *goquery.Document {
	e.t.Helper()
	resp, body := get(e.t.(*testing.T), c, fmt.Sprintf("%s/deliveries/%d", e.ts.URL, id))
	if resp.StatusCode != 200 {
		e.t.Fatalf("delivery page: %d", resp.StatusCode)
	}
	return mustDoc(e.t, body)
}

func mustDoc(t testing.TB, body string) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// hintKinds lists the debugger hints on a delivery page.
func hintKinds(doc *goquery.Document) []string {
	var out []string
	doc.Find("[data-testid=hint]").Each(func(_ int, s *goquery.Selection) {
		out = append(out, s.AttrOr("data-kind", ""))
	})
	return out
}

// reply decodes a webhook answer.
type reply struct {
	Status    string `json:"status"`
	Reason    string `json:"reason"`
	EventID   int64  `json:"event_id"`
	Duplicate bool   `json:"duplicate"`
}

var hex64 = regexp.MustCompile(`[0-9a-f]{64}`)

func devguide(key string, body []byte) http.Header {
	h := signature.Sign(signature.SchemeDevguide, []byte(key), time.Time{}, body)
	h.Set("Content-Type", "application/json")
	return h
}

func embedded(key string, ts time.Time, body []byte) http.Header {
	h := signature.Sign(signature.SchemeEmbedded, []byte(key), ts, body)
	h.Set("Content-Type", "application/json")
	return h
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
