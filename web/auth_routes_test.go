package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web"
)

// openRoutes are the only routes anyone may use without signing in: the webhook endpoints
// (their signature authenticates them), health checks, metrics (which protect themselves),
// static files and the sign-in form.
var openRoutes = map[string]bool{
	"POST /webhook":        true,
	"POST /webhook/{slug}": true,
	"GET /healthz":         true,
	"GET /readyz":          true,
	"GET /metrics":         true,
	"GET /login":           true,
	"POST /login":          true,
}

func isOpen(pattern string) bool {
	return openRoutes[pattern] || strings.HasPrefix(pattern, "GET /static/")
}

// wantRoles is the access matrix: the least role of every route registered when it was last
// reviewed, and whether it refuses API tokens (sessionOnly: accounts, users, and every admin
// change). Reading is for viewers; replaying, bulk replays, forwarding and renaming speakers
// for operators; endpoints, secrets, replay targets, forwarding rules, users and the audit log
// for admins. Routes added later and not listed here are checked against minRoleByRule and their
// own guard; add them here once their role is decided.
type access struct {
	role        db.Role
	sessionOnly bool
}

var (
	forViewer, forViewerSession = access{db.RoleViewer, false}, access{db.RoleViewer, true}
	forOperator                 = access{db.RoleOperator, false}
	forAdmin, forAdminSession   = access{db.RoleAdmin, false}, access{db.RoleAdmin, true}
)

var wantRoles = map[string]access{
	"POST /logout":                               forViewer,
	"GET /{$}":                                   forViewer,
	"GET /events":                                forViewer,
	"GET /events/export":                         forViewer,
	"GET /events/{id}":                           forViewer,
	"GET /events/{id}/body":                      forViewer,
	"GET /deliveries":                            forViewer,
	"GET /deliveries/export":                     forViewer,
	"GET /deliveries/{id}":                       forViewer,
	"GET /compare":                               forViewer,
	"GET /schema":                                forViewer,
	"GET /events/stream":                         forViewer,
	"GET /account":                               forViewerSession,
	"POST /account/password":                     forViewerSession,
	"POST /account/tokens":                       forViewerSession,
	"POST /account/tokens/{id}/revoke":           forViewerSession,
	"GET /users":                                 forAdminSession,
	"POST /users":                                forAdminSession,
	"POST /users/{id}/role":                      forAdminSession,
	"POST /users/{id}/disable":                   forAdminSession,
	"POST /users/{id}/enable":                    forAdminSession,
	"POST /users/{id}/password":                  forAdminSession,
	"GET /audit":                                 forAdmin,
	"GET /endpoints":                             forAdmin,
	"GET /endpoints/new":                         forAdmin,
	"POST /endpoints":                            forAdminSession,
	"GET /endpoints/{slug}":                      forAdmin,
	"POST /endpoints/{slug}":                     forAdminSession,
	"POST /endpoints/{slug}/delete":              forAdminSession,
	"POST /endpoints/{slug}/test":                forAdminSession,
	"POST /endpoints/{slug}/secrets":             forAdminSession,
	"POST /endpoints/{slug}/secrets/rotate":      forAdminSession,
	"POST /endpoints/{slug}/secrets/{id}/revoke": forAdminSession,
	"POST /secrets/rotate":                       forAdminSession,
	"POST /deliveries/{id}/reverify":             forAdminSession,
	"GET /transcripts":                           forViewer,
	"POST /transcripts/privacy":                  forViewer,
	"GET /transcripts/{id}":                      forViewer,
	"GET /transcripts/{id}/export":               forViewer,
	"POST /transcripts/{id}/speakers":            forOperator,
	"GET /recordings":                            forViewer,
	"GET /recordings/{id}":                       forViewer,
	"POST /events/{id}/replay":                   forOperator,
	"GET /events/{id}/attempts/stream":           forViewer,
	"GET /attempts/{id}":                         forViewer,
	"GET /targets":                               forAdmin,
	"POST /targets":                              forAdminSession,
	"POST /targets/policy":                       forAdminSession,
	"GET /targets/{id}":                          forAdmin,
	"POST /targets/{id}":                         forAdminSession,
	"POST /targets/{id}/delete":                  forAdminSession,
	"GET /forwarding":                            forOperator,
	"POST /forwarding/rules":                     forAdminSession,
	"POST /forwarding/rules/{id}/enabled":        forAdminSession,
	"POST /forwarding/rules/{id}/delete":         forAdminSession,
	"POST /forwarding/queue/{id}/retry":          forOperator,
	"GET /bulk":                                  forOperator,
	"GET /bulk/new":                              forOperator,
	"POST /bulk":                                 forOperator,
	"GET /bulk/{id}":                             forOperator,
	"GET /bulk/{id}/stream":                      forOperator,
	"POST /bulk/{id}/cancel":                     forOperator,
	"POST /api/v1/events/{id}/replay":            forOperator,
	"GET /api/v1/events/{id}/attempts":           forViewer,
	"GET /api/v1/events":                         forViewer,
	"GET /api/v1/events/{id}":                    forViewer,
	"GET /api/v1/events/{id}/body":               forViewer,
	"GET /api/v1/deliveries":                     forViewer,
	"GET /api/v1/endpoints":                      forViewer,
	"GET /api/v1/transcripts":                    forViewer,
	"GET /api/v1/transcripts/{id}":               forViewer,
	"GET /api/v1/transcripts/{id}/export":        forViewer,
	"/api/":                                      forViewer,
}

// minRoleByRule is the least role the role definitions demand of a route: replaying
// and forwarding are for operators; secrets, users, the audit log, and changing endpoints or
// replay targets are for admins. Reading is for everyone signed in.
func minRoleByRule(pattern string) db.Role {
	method, path := splitPattern(pattern)
	write := method != "GET" && method != "HEAD"
	switch {
	case strings.Contains(path, "/secrets"), strings.HasPrefix(path, "/users"),
		strings.HasPrefix(path, "/audit"),
		write && (strings.HasPrefix(path, "/endpoints") || strings.HasPrefix(path, "/api/v1/endpoints")),
		write && (strings.HasPrefix(path, "/targets") || strings.HasPrefix(path, "/api/v1/targets")):
		return db.RoleAdmin
	case strings.Contains(path, "/replay"), strings.Contains(path, "/forward"):
		return db.RoleOperator
	}
	return db.RoleViewer
}

func splitPattern(pattern string) (method, path string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		return "GET", pattern
	}
	return method, path
}

var wildcard = regexp.MustCompile(`\{[^}]*\}`)

// concrete turns a pattern into a request that matches it. Ids name nothing that exists (so
// an allowed request is answered 404 by its handler, after the guard, and changes nothing).
func concrete(pattern string) (method, path string) {
	method, path = splitPattern(pattern)
	path = strings.ReplaceAll(path, "{$}", "")
	path = wildcard.ReplaceAllStringFunc(path, func(w string) string {
		switch {
		case strings.HasSuffix(w, "...}"):
			return "x"
		case strings.Contains(w, "slug"):
			return "no-such-endpoint"
		}
		return "999999"
	})
	if strings.HasSuffix(path, "/") && path != "/" {
		path += "x"
	}
	return method, path
}

func noFollow() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// do sends one request with optional headers and returns the status, Location and body.
func do(t *testing.T, c *http.Client, method, u string, h map[string]string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends event streams once their headers are in
	req, _ := http.NewRequestWithContext(ctx, method, u, nil)
	if method != "GET" && method != "HEAD" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	var body []byte
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	}
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

func jsonCode(body string) string {
	var v struct {
		Code string `json:"code"`
	}
	json.Unmarshal([]byte(body), &v)
	return v.Code
}

// TestEveryRouteRequiresAuth walks every registered route, including any added after this test
// was written: without credentials each one sends browsers to sign in (or answers 401 JSON for
// the API and streams), except the open routes. A revoked-looking bearer token gets 401.
func TestEveryRouteRequiresAuth(t *testing.T) {
	e := newEnv(t)
	routes := e.srv.Routes()
	if len(routes) < len(wantRoles) {
		t.Fatalf("Routes() = %d routes, want at least %d", len(routes), len(wantRoles))
	}
	c := noFollow()
	for _, rt := range routes {
		if isOpen(rt.Pattern) {
			if rt.Role != "" {
				t.Errorf("%s is in the open list but guarded for %s", rt.Pattern, rt.Role)
			}
			continue
		}
		t.Run(rt.Pattern, func(t *testing.T) {
			if rt.Role == "" {
				t.Fatalf("%s has no guard: wrap it in requireUser or requireSession, or add it to openRoutes if it must be public", rt.Pattern)
			}
			method, path := concrete(rt.Pattern)
			status, loc, body := do(t, c, method, e.ts.URL+path, nil)
			api := strings.HasPrefix(path, "/api/") || strings.HasSuffix(path, "/stream")
			switch {
			case api && (status != http.StatusUnauthorized || jsonCode(body) != "unauthenticated"):
				t.Errorf("%s %s = %d %q, want 401 unauthenticated", method, path, status, body)
			case !api && (status != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?next=")):
				t.Errorf("%s %s = %d to %q, want 303 to /login", method, path, status, loc)
			}

			// A token that names nothing is refused outright, never taken for a session.
			status, _, body = do(t, c, method, e.ts.URL+path,
				map[string]string{"Authorization": "Bearer " + web.NewAPIToken()})
			if status != http.StatusUnauthorized || jsonCode(body) != "invalid_token" {
				t.Errorf("%s %s with an unknown token = %d %q, want 401 invalid_token", method, path, status, body)
			}
		})
	}
}

// TestRoleMatrix proves each role reaches exactly the routes it should: every guarded route is
// tried by a viewer, an operator and an admin, with a session and with an API token. A role
// below the route's need gets 403; a role at or above it gets past the guard. Session-only
// routes refuse every API token.
func TestRoleMatrix(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	roles := []db.Role{db.RoleViewer, db.RoleOperator, db.RoleAdmin}
	sessions := map[db.Role]*http.Client{}
	tokens := map[db.Role]string{}
	for _, r := range roles {
		sessions[r] = e.client(string(r))
		u, err := e.db.FindUserByUsername(ctx, string(r))
		if err != nil {
			t.Fatal(err)
		}
		tokens[r] = web.NewAPIToken()
		if _, err := e.db.CreateToken(ctx, u.ID, "matrix", tokens[r]); err != nil {
			t.Fatal(err)
		}
	}

	// The matrix names no route that is gone: a renamed route would otherwise leave its row.
	registered := map[string]bool{}
	for _, rt := range e.srv.Routes() {
		registered[rt.Pattern] = true
	}
	for p := range wantRoles {
		if !registered[p] {
			t.Errorf("the matrix lists %s, which is not registered", p)
		}
	}

	for _, rt := range e.srv.Routes() {
		if isOpen(rt.Pattern) || rt.Role == "" {
			continue // TestEveryRouteRequiresAuth fails unguarded routes
		}
		t.Run(rt.Pattern, func(t *testing.T) {
			// The guard must ask for what the issue says.
			w, listed := wantRoles[rt.Pattern]
			want := w.role
			if !listed {
				want = minRoleByRule(rt.Pattern)
				if !rt.Role.Allows(want) {
					t.Errorf("%s is open to %s, want at least %s", rt.Pattern, rt.Role, want)
				}
				want = rt.Role
			}
			if rt.Role != want {
				t.Errorf("%s needs %s, want %s", rt.Pattern, rt.Role, want)
			}
			if listed && rt.SessionOnly != w.sessionOnly {
				t.Errorf("%s session-only = %v, want %v", rt.Pattern, rt.SessionOnly, w.sessionOnly)
			}

			method, path := concrete(rt.Pattern)
			for _, r := range roles {
				c := sessions[r]
				if rt.Pattern == "POST /logout" {
					c = e.client(string(r)) // signing out must not end the shared session
				}
				status, loc, body := do(t, c, method, e.ts.URL+path, nil)
				checkReach(t, "session of "+string(r), method, path, r.Allows(want), status, loc, body)

				status, loc, body = do(t, noFollow(), method, e.ts.URL+path,
					map[string]string{"Authorization": "Bearer " + tokens[r]})
				if rt.SessionOnly {
					if status != http.StatusForbidden {
						t.Errorf("token of %s: %s %s = %d, want 403: session-only route", r, method, path, status)
					}
					continue
				}
				checkReach(t, "token of "+string(r), method, path, r.Allows(want), status, loc, body)
			}
		})
	}
}

// checkReach checks that a request got past the guard (allowed) or was refused with 403.
func checkReach(t *testing.T, who, method, path string, allowed bool, status int, loc, body string) {
	t.Helper()
	refused := status == http.StatusForbidden
	toLogin := status == http.StatusSeeOther && strings.HasPrefix(loc, "/login?next=")
	switch {
	case allowed && (refused || toLogin || status == http.StatusUnauthorized):
		t.Errorf("%s: %s %s = %d (%s), want past the guard", who, method, path, status, strings.TrimSpace(firstLine(body)))
	case !allowed && !refused:
		t.Errorf("%s: %s %s = %d, want 403", who, method, path, status)
	}
}

func firstLine(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// TestCrossOriginRefused sends every state-changing route a request with a valid session cookie
// from another site: all are refused with 403 and audited, nothing changes. An API token sent by
// a script (no browser headers) passes cross-origin protection.
func TestCrossOriginRefused(t *testing.T) {
	e := newEnv(t)
	admin := e.client("admin")
	foreign := []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		{"Origin": "https://evil.example"}, // an older browser: no Sec-Fetch-Site
	}
	var posts []string
	for _, rt := range e.srv.Routes() {
		method, _ := splitPattern(rt.Pattern)
		if method == "GET" || method == "HEAD" || strings.HasPrefix(rt.Pattern, "POST /webhook") {
			continue
		}
		posts = append(posts, rt.Pattern)
	}
	// An API POST, whatever routes exist: cross-origin protection runs before routing.
	posts = append(posts, "POST /api/v1/events/999999/replay")
	for _, p := range posts {
		method, path := concrete(p)
		for _, h := range foreign {
			status, _, body := do(t, admin, method, e.ts.URL+path, h)
			if status != http.StatusForbidden || !(jsonCode(body) == "cross_origin" ||
				strings.Contains(body, "came from another site")) {
				t.Errorf("cross-origin %s %s %v = %d, want 403 cross_origin", method, path, h, status)
			}
		}
	}

	// The refusal is audited, naming the user whose browser was made to send it.
	entries, _, err := e.db.FindAuditEntries(context.Background(), db.AuditFilter{ActionPrefix: "csrf."})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2*len(posts) || entries[0].Actor != "admin" {
		t.Errorf("csrf audit entries = %d (first by %q), want %d by admin", len(entries), actorOf(entries), 2*len(posts))
	}

	// The same session still works: the refusals did not sign it out; and a user disabled by a
	// forged request would have been noticed here.
	if status, _, _ := do(t, admin, "GET", e.ts.URL+"/users", nil); status != 200 {
		t.Errorf("GET /users after refusals = %d, want 200", status)
	}
	u, _ := e.db.FindUserByUsername(context.Background(), "viewer")
	if status, _, _ := do(t, admin, "POST", e.ts.URL+"/users/"+itoa(u.ID)+"/disable", foreign[0]); status != 403 {
		t.Errorf("cross-site disable = %d, want 403", status)
	}
	if u, _ = e.db.FindUserByUsername(context.Background(), "viewer"); u.Disabled {
		t.Error("a cross-site POST disabled a user")
	}

	// Same-origin browser requests pass.
	if status, _, _ := do(t, admin, "POST", e.ts.URL+"/users/"+itoa(u.ID)+"/disable",
		map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": e.ts.URL}); status != http.StatusSeeOther {
		t.Errorf("same-origin disable = %d, want 303", status)
	}

	// A script with a token sends no browser headers: cross-origin protection lets it through
	// (here to the guard's own verdict on a session-only route, not the cross-origin refusal).
	admTok := web.NewAPIToken()
	adm, _ := e.db.FindUserByUsername(context.Background(), "admin")
	if _, err := e.db.CreateToken(context.Background(), adm.ID, "script", admTok); err != nil {
		t.Fatal(err)
	}
	status, _, body := do(t, noFollow(), "POST", e.ts.URL+"/api/v1/no-such-route",
		map[string]string{"Authorization": "Bearer " + admTok})
	if status != http.StatusNotFound || jsonCode(body) != "not_found" {
		t.Errorf("token POST = %d %s, want 404 not_found from the API (past cross-origin protection)", status, body)
	}
	status, _, body = do(t, noFollow(), "POST", e.ts.URL+"/logout",
		map[string]string{"Authorization": "Bearer " + admTok})
	if status != http.StatusSeeOther {
		t.Errorf("token POST /logout = %d %s, want 303", status, body)
	}
}

func actorOf(es []db.AuditEntry) string {
	if len(es) == 0 {
		return ""
	}
	return es[0].Actor
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestCrossOriginSchemeDiffers is the rest of C28: on a dashboard served over https, a browser
// that sends no Sec-Fetch-Site and an Origin of the same host over plain http is refused (403,
// audited, no rotation), which the standard check alone lets through; the https origin and a
// same-origin browser pass; a script without browser headers and the webhook are untouched.
func TestCrossOriginSchemeDiffers(t *testing.T) {
	e := newSecretEnv(t)
	e.addSecret(e.client("admin"), "default", "old", oldSecret)
	count := func() int {
		s, err := e.db.FindSecrets(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		return len(s)
	}

	// The same server over TLS, with a browser signed in there.
	tlsServer := httptest.NewTLSServer(e.srv)
	defer tlsServer.Close()
	jar, _ := cookiejar.New(nil)
	admin := tlsServer.Client()
	admin.Jar, admin.CheckRedirect = jar, noFollow().CheckRedirect
	if status, _, _ := postForm(t, admin, tlsServer.URL+"/login",
		url.Values{"username": {"admin"}, "password": {testPassword}}); status != http.StatusSeeOther {
		t.Fatalf("sign in over TLS = %d", status)
	}
	host := strings.TrimPrefix(tlsServer.URL, "https://")
	n := 0
	rotate := func(h map[string]string) (int, string) {
		n++ // each rotation a new label and value
		req, _ := http.NewRequest("POST", tlsServer.URL+"/secrets/rotate", strings.NewReader(
			url.Values{"endpoint": {"default"}, "value": {"plaud_scheme_test_" + strconv.Itoa(n)},
				"label": {"new " + strconv.Itoa(n)}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := admin.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	for _, origin := range []string{"http://" + host, "null"} {
		if status, body := rotate(map[string]string{"Origin": origin}); status != http.StatusForbidden ||
			!strings.Contains(body, "came from another site") || count() != 1 {
			t.Errorf("Origin %s without Sec-Fetch-Site = %d with %d secrets, want 403 and 1", origin, status, count())
		}
	}
	if got := countAudit(t, e.env, "csrf.blocked"); got != 2 {
		t.Errorf("csrf.blocked entries = %d, want 2", got)
	}
	if status, _ := rotate(map[string]string{"Origin": "https://" + host}); status != http.StatusSeeOther || count() != 2 {
		t.Fatalf("Origin https://%s = %d with %d secrets, want 303 and 2", host, status, count())
	}
	// A modern browser's own verdict stands: Sec-Fetch-Site already accounts for the scheme.
	if status, _ := rotate(map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "https://" + host}); status != http.StatusSeeOther || count() != 3 {
		t.Fatalf("same-origin = %d with %d secrets, want 303 and 3", status, count())
	}
	if status, _ := rotate(map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://" + host}); status != http.StatusForbidden || count() != 3 {
		t.Fatalf("cross-site = %d with %d secrets, want 403 and 3", status, count())
	}

	// A signed delivery over TLS with browser-looking headers still lands.
	req, _ := http.NewRequest("POST", tlsServer.URL+"/webhook", bytes.NewReader(b1))
	req.Header = devguide("plaud_scheme_test_4", b1) // the secret of the last rotation
	req.Header.Set("Origin", "http://"+host)
	resp, err := tlsServer.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("webhook with an http Origin over TLS = %d, want 200", resp.StatusCode)
	}

	// Plain http with no https base URL: the scheme is unknown (perhaps a TLS proxy in front),
	// so only the standard check applies and the old browser's same-host Origin passes.
	plain := e.client("admin")
	req, _ = http.NewRequest("POST", e.ts.URL+"/secrets/rotate", strings.NewReader(
		url.Values{"endpoint": {"default"}, "value": {testSecret}, "label": {"plain"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://"+strings.TrimPrefix(e.ts.URL, "http://"))
	if resp, err = plain.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || count() != 4 {
		t.Errorf("plain http, unknown scheme = %d with %d secrets, want 303 and 4", resp.StatusCode, count())
	}
}
