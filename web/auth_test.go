package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web"
)

// TestAuthRequired walks every page: without a session, browsers are sent to sign in and
// scripts get 401; only the webhook, health checks, static files and sign-in are open.
func TestAuthRequired(t *testing.T) {
	e := newEnv(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	closed := []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/?before=5"}, {"GET", "/events/1"}, {"GET", "/events/1/body"},
		{"GET", "/deliveries"}, {"GET", "/deliveries?verdict=rejected"}, {"GET", "/deliveries/1"},
		{"POST", "/logout"},
	}
	for _, c := range closed {
		req, _ := http.NewRequest(c.method, e.ts.URL+c.path, nil)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
			t.Errorf("%s %s = %d to %q, want 303 to /login", c.method, c.path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp, _ := get(t, noRedirect, e.ts.URL+"/events/stream"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /events/stream = %d, want 401", resp.StatusCode)
	}
	for _, open := range []string{"/healthz", "/login"} {
		if resp, _ := get(t, noRedirect, e.ts.URL+open); resp.StatusCode != 200 {
			t.Errorf("GET %s = %d, want 200", open, resp.StatusCode)
		}
	}
}

// TestLogin covers C26's session rules: cookie flags, a fresh token per sign-in, server-side
// logout that also kills copied cookies, and one message for both kinds of failure.
func TestLogin(t *testing.T) {
	e := newEnv(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login := func() *http.Cookie {
		resp, err := noRedirect.PostForm(e.ts.URL+"/login", url.Values{"username": {"viewer"}, "password": {testPassword}, "next": {"/deliveries"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/deliveries" {
			t.Fatalf("login = %d to %q, want 303 to /deliveries", resp.StatusCode, resp.Header.Get("Location"))
		}
		raw := resp.Header.Get("Set-Cookie")
		for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"} {
			if !strings.Contains(raw, want) {
				t.Errorf("Set-Cookie %q lacks %s", raw, want)
			}
		}
		return resp.Cookies()[0]
	}
	// Two sign-ins, each from a client without a cookie. Comparing the cookie values would
	// prove nothing (gorilla encrypts with a random IV, so even one token gives two values);
	// that the two are separate sessions shows below, when logging out one leaves the other
	// alive. That signing in again replaces a session the browser held is TestSessionCookie's.
	first, second := login(), login()

	withCookie := func(c *http.Cookie, method, path string) (int, http.Header, string) {
		req, _ := http.NewRequest(method, e.ts.URL+path, nil)
		req.AddCookie(c)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	if got, _, _ := withCookie(first, "GET", "/"); got != 200 {
		t.Fatalf("GET / with cookie = %d, want 200", got)
	}
	if got, _, _ := withCookie(first, "GET", "/api/v1/events"); got != 200 {
		t.Fatalf("GET /api/v1/events with cookie = %d, want 200", got)
	}
	if got, _, _ := withCookie(first, "POST", "/logout"); got != http.StatusSeeOther {
		t.Fatalf("logout = %d, want 303", got)
	}

	// A copy of the logged-out cookie is worthless: pages send it to sign in, the API answers
	// 401 JSON (C26). The other session lives on.
	if got, _, _ := withCookie(first, "GET", "/"); got != http.StatusSeeOther {
		t.Errorf("reused cookie after logout = %d, want 303 to sign in", got)
	}
	status, h, body := withCookie(first, "GET", "/api/v1/events")
	if status != http.StatusUnauthorized {
		t.Errorf("reused cookie on /api/v1/events after logout = %d, want 401", status)
	}
	var reply struct{ Code string }
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("reused cookie on /api/v1/events: Content-Type = %q, want application/json", ct)
	} else if err := json.Unmarshal([]byte(body), &reply); err != nil || reply.Code != "unauthenticated" {
		t.Errorf("reused cookie on /api/v1/events: body = %q (%v), want code unauthenticated", body, err)
	}
	if got, _, _ := withCookie(second, "GET", "/"); got != 200 {
		t.Errorf("other session after logout = %d, want 200", got)
	}
	if got, _, _ := withCookie(second, "GET", "/api/v1/events"); got != 200 {
		t.Errorf("other session on /api/v1/events after logout = %d, want 200", got)
	}

	// Unknown user and wrong password read the same.
	var bodies []string
	for _, u := range []string{"viewer", "nobody"} {
		resp, err := noRedirect.PostForm(e.ts.URL+"/login", url.Values{"username": {u}, "password": {"wrong password"}})
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1<<16)
		n, _ := resp.Body.Read(b)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("bad login for %s = %d, want 401", u, resp.StatusCode)
		}
		bodies = append(bodies, strings.ReplaceAll(string(b[:n]), u, ""))
	}
	if !strings.Contains(bodies[0], "Wrong username or password.") || bodies[0] != bodies[1] {
		t.Errorf("failure pages differ between unknown user and wrong password")
	}
}

// TestOpenRedirect checks that sign-in never redirects off-site.
func TestOpenRedirect(t *testing.T) {
	e := newEnv(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example"} {
		resp, err := noRedirect.PostForm(e.ts.URL+"/login", url.Values{"username": {"viewer"}, "password": {testPassword}, "next": {next}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); loc != "/" {
			t.Errorf("next=%q redirected to %q, want /", next, loc)
		}
	}
}

// TestSecurityHeaders checks every response carries the CSP and friends: each registered GET
// route as an admin (pages, API, streams, static files), a redirect to sign in, a 404 and a
// refused request.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	admin := e.client("admin")
	type probe struct {
		c    *http.Client
		path string
	}
	probes := []probe{{noFollow(), "/"}, {admin, "/no-such-page"}, {e.client("viewer"), "/audit"},
		{admin, "/static/nothing.js"}, {noFollow(), "/login"}, {noFollow(), "/healthz"}}
	for _, rt := range e.srv.Routes() {
		if method, _ := splitPattern(rt.Pattern); method == "GET" {
			_, path := concrete(rt.Pattern)
			probes = append(probes, probe{admin, path})
		}
	}
	for _, p := range probes {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+p.path, nil)
		resp, err := p.c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", p.path, err)
		}
		cancel() // event streams end once their headers are in
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s (%d) CSP = %q", p.path, resp.StatusCode, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s (%d) lacks nosniff or Referrer-Policy", p.path, resp.StatusCode)
		}
	}
}

// TestLoginLongInput: a made-up username of any length is refused like any wrong one, but only
// its first 64 characters (the longest a username can be) reach the audit log; a sign-in form
// over 16 KiB is refused outright.
func TestLoginLongInput(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("é", 1000) + strings.Repeat("a", 4000) // 6 KiB as sent
	resp, body := signInAttempt(t, e, long, "wrong password")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong username or password.") {
		t.Fatalf("a 5,000-character username = %d, want 401 with the usual message", resp.StatusCode)
	}
	es, _, err := e.db.FindAuditEntries(context.Background(), db.AuditFilter{ActionPrefix: "login.failed"})
	if err != nil || len(es) != 1 {
		t.Fatalf("login.failed entries = %d (%v), want 1", len(es), err)
	}
	if want := "user " + strings.Repeat("é", 64); es[0].Target != want {
		t.Errorf("audited target is %d bytes, want the first 64 characters", len(es[0].Target))
	}

	resp, _ = signInAttempt(t, e, "viewer", strings.Repeat("x", 17<<10))
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a 17 KiB sign-in form = %d, want 400", resp.StatusCode)
	}
	if resp, _ := signInAttempt(t, e, "viewer", testPassword); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a normal sign-in afterwards = %d, want 303", resp.StatusCode)
	}
}

// BenchmarkGuard measures what signing in adds to each request: GET /api/v1/events?limit=1
// through the real router over a real SQLite file, with no credentials (401), a session cookie,
// and an API token. p50 and p99 of the per-request times are reported beside ns/op.
func BenchmarkGuard(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	u, err := e.db.FindUserByUsername(ctx, "viewer")
	if err != nil {
		b.Fatal(err)
	}
	token := web.NewAPIToken()
	if _, err := e.db.CreateToken(ctx, u.ID, "bench", token); err != nil {
		b.Fatal(err)
	}
	jar := e.client("viewer").Jar
	base, _ := url.Parse(e.ts.URL)
	cookie := jar.Cookies(base)[0]

	for _, c := range []struct {
		name string
		set  func(*http.Request)
		want int
	}{
		{"none", func(*http.Request) {}, http.StatusUnauthorized},
		{"session", func(r *http.Request) { r.AddCookie(cookie) }, http.StatusOK},
		{"token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }, http.StatusOK},
	} {
		b.Run(c.name, func(b *testing.B) {
			times := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				req := httptest.NewRequest("GET", "/api/v1/events?limit=1", nil)
				c.set(req)
				w := httptest.NewRecorder()
				start := time.Now()
				e.srv.ServeHTTP(w, req)
				times = append(times, time.Since(start))
				if w.Code != c.want {
					b.Fatalf("status %d, want %d: %s", w.Code, c.want, w.Body)
				}
			}
			b.StopTimer()
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "p99-µs")
		})
	}
}
