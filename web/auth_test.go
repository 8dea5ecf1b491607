package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
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
	first, second := login(), login()
	if first.Value == second.Value {
		t.Fatal("two sign-ins gave the same cookie: session ids must be fresh")
	}

	withCookie := func(c *http.Cookie, method, path string) int {
		req, _ := http.NewRequest(method, e.ts.URL+path, nil)
		req.AddCookie(c)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := withCookie(first, "GET", "/"); got != 200 {
		t.Fatalf("GET / with cookie = %d, want 200", got)
	}
	if got := withCookie(first, "POST", "/logout"); got != http.StatusSeeOther {
		t.Fatalf("logout = %d, want 303", got)
	}
	// A copy of the logged-out cookie is worthless; the other session lives on.
	if got := withCookie(first, "GET", "/"); got != http.StatusSeeOther {
		t.Errorf("reused cookie after logout = %d, want 303 to sign in", got)
	}
	if got := withCookie(second, "GET", "/"); got != 200 {
		t.Errorf("other session after logout = %d, want 200", got)
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

// TestSecurityHeaders checks every response carries the CSP and friends.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	c := e.client("viewer")
	for _, path := range []string{"/", "/login", "/healthz", "/deliveries"} {
		resp, _ := get(t, c, e.ts.URL+path)
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s CSP = %q", path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s lacks nosniff or Referrer-Policy", path)
		}
	}
}
