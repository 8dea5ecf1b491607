package web_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web"
)

var tokenPattern = regexp.MustCompile(`ph_[A-Za-z0-9_-]{43}`)

// postForm posts a form with c and returns the status, Location and body.
func postForm(t *testing.T, c *http.Client, u string, form url.Values) (int, string, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// bearer sends a GET with an API token and no cookie.
func bearer(t *testing.T, token, method, u string) (int, string) {
	t.Helper()
	status, _, body := do(t, noFollow(), method, u, map[string]string{"Authorization": "Bearer " + token})
	return status, body
}

// createTokenInUI creates a token on the account page of c and returns it, as shown once.
func createTokenInUI(t *testing.T, e *env, c *http.Client, label string) string {
	t.Helper()
	status, loc, _ := postForm(t, c, e.ts.URL+"/account/tokens", url.Values{"label": {label}})
	if status != http.StatusSeeOther || loc != "/account#tokens" {
		t.Fatalf("create token = %d to %q, want 303 to /account#tokens", status, loc)
	}
	_, body := get(t, c, e.ts.URL+"/account")
	token := tokenPattern.FindString(body)
	if token == "" {
		t.Fatal("the account page after creating a token does not show it")
	}
	return token
}

// storedBytes returns the database file and its WAL, as they are on disk.
func storedBytes(t *testing.T, e *env) string {
	t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(e.db.Path + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return string(all)
}

// TestTokenLifecycle: a user creates a token on their account page, sees it once, uses it as a
// bearer token without any cookie, cannot revoke another user's, and revokes their own, which
// stops it at once. Only a hash is stored.
func TestTokenLifecycle(t *testing.T) {
	e := newEnv(t)
	viewer := e.client("viewer")

	// An empty label is refused beside the form.
	status, _, body := postForm(t, viewer, e.ts.URL+"/account/tokens", url.Values{"label": {" "}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, "a token needs a label") {
		t.Errorf("empty label = %d, want 422 with the reason", status)
	}

	token := createTokenInUI(t, e, viewer, "nightly export")
	if _, again := get(t, viewer, e.ts.URL+"/account"); strings.Contains(again, token) {
		t.Error("the token was shown a second time")
	} else if !strings.Contains(again, token[:db.TokenPrefixLen]+"…") || !strings.Contains(again, "nightly export") {
		t.Error("the token list lacks the token's prefix or label")
	}

	// Stored only as a hash.
	if strings.Contains(storedBytes(t, e), token) {
		t.Fatal("the database file holds the token in clear")
	}

	// The token reads the API without a cookie, with the viewer's role.
	if status, body := bearer(t, token, "GET", e.ts.URL+"/api/v1/events"); status != 200 || !strings.Contains(body, `"events"`) {
		t.Fatalf("GET /api/v1/events with token = %d %s, want 200", status, body)
	}
	if status, _ := bearer(t, token, "GET", e.ts.URL+"/audit"); status != http.StatusForbidden {
		t.Errorf("viewer token on /audit = %d, want 403", status)
	}

	// Another user cannot revoke it.
	tokens, err := e.db.FindTokens(context.Background(), 0)
	if err != nil || len(tokens) != 1 {
		t.Fatalf("tokens = %v %v, want 1", tokens, err)
	}
	revokeURL := e.ts.URL + "/account/tokens/" + itoa(tokens[0].ID) + "/revoke"
	if status, _, _ := postForm(t, e.client("operator"), revokeURL, nil); status != http.StatusNotFound {
		t.Errorf("operator revoking viewer's token = %d, want 404", status)
	}
	if status, _ := bearer(t, token, "GET", e.ts.URL+"/api/v1/events"); status != 200 {
		t.Fatalf("token after someone else's revoke attempt = %d, want 200", status)
	}

	// Its owner revokes it: the next request with it is refused.
	if status, loc, _ := postForm(t, viewer, revokeURL, nil); status != http.StatusSeeOther || !strings.HasPrefix(loc, "/account") {
		t.Fatalf("revoke = %d to %q, want 303 to /account", status, loc)
	}
	if status, body := bearer(t, token, "GET", e.ts.URL+"/api/v1/events"); status != http.StatusUnauthorized || jsonCode(body) != "invalid_token" {
		t.Errorf("revoked token = %d %s, want 401 invalid_token", status, body)
	}

	// Both are in the audit log, without the token.
	es, _, _ := e.db.FindAuditEntries(context.Background(), db.AuditFilter{ActionPrefix: "token."})
	if len(es) != 2 || es[0].Action != "token.revoke" || es[1].Action != "token.create" || es[0].Actor != "viewer" {
		t.Errorf("token audit entries = %+v, want create and revoke by viewer", es)
	}
	for _, a := range es {
		if strings.Contains(a.Target+a.Detail, token) {
			t.Error("the audit log holds the token")
		}
	}
}

// readStream opens the event stream with headers h and returns a channel closed when the
// server ends the stream.
func readStream(t *testing.T, e *env, c *http.Client, h map[string]string) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/events/stream", nil)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("stream = %d, want 200", resp.StatusCode)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
	}()
	return done
}

// TestDisabledUserStops: when an admin disables a user, their session, their API token and
// their open event streams (by cookie and by token) stop at once. Enabling them again lets them
// sign in and revives the token; the old session stays ended.
func TestDisabledUserStops(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	viewer := e.client("viewer")
	token := web.NewAPIToken()
	u, _ := e.db.FindUserByUsername(ctx, "viewer")
	if _, err := e.db.CreateToken(ctx, u.ID, "script", token); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := do(t, viewer, "GET", e.ts.URL+"/", nil); status != 200 {
		t.Fatalf("viewer before = %d, want 200", status)
	}
	byCookie := readStream(t, e, viewer, nil)
	byToken := readStream(t, e, noFollow(), map[string]string{"Authorization": "Bearer " + token})

	admin := e.client("admin")
	if status, loc, _ := postForm(t, admin, e.ts.URL+"/users/"+itoa(u.ID)+"/disable", nil); status != http.StatusSeeOther || loc != "/users?flash=user-disabled" {
		t.Fatalf("disable = %d to %q", status, loc)
	}

	if status, loc, _ := do(t, viewer, "GET", e.ts.URL+"/", nil); status != http.StatusSeeOther || !strings.HasPrefix(loc, "/login") {
		t.Errorf("disabled user's session = %d to %q, want 303 to /login", status, loc)
	}
	if status, body := bearer(t, token, "GET", e.ts.URL+"/api/v1/events"); status != http.StatusUnauthorized {
		t.Errorf("disabled user's token = %d %s, want 401", status, body)
	}
	if resp, _ := signInAttempt(t, e, "viewer", testPassword); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("disabled user signing in = %d, want 401", resp.StatusCode)
	}
	for name, done := range map[string]<-chan struct{}{"cookie": byCookie, "token": byToken} {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("the %s stream of a disabled user is still open", name)
		}
	}

	// Enabled again: the token works, the old session does not, a new sign-in does.
	if status, _, _ := postForm(t, admin, e.ts.URL+"/users/"+itoa(u.ID)+"/enable", nil); status != http.StatusSeeOther {
		t.Fatalf("enable = %d", status)
	}
	if status, _ := bearer(t, token, "GET", e.ts.URL+"/api/v1/events"); status != 200 {
		t.Errorf("token after enable = %d, want 200", status)
	}
	if status, _, _ := do(t, viewer, "GET", e.ts.URL+"/", nil); status != http.StatusSeeOther {
		t.Errorf("old session after enable = %d, want 303: disabling ended it", status)
	}
	if resp, _ := signInAttempt(t, e, "viewer", testPassword); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign in after enable = %d, want 303", resp.StatusCode)
	}
	if got := countAudit(t, e, "user.disable") + countAudit(t, e, "user.enable"); got != 2 {
		t.Errorf("disable/enable audit entries = %d, want 2", got)
	}
}

// TestNewAPIToken checks the token format: ph_ and 32 random bytes, never repeated.
func TestNewAPIToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok := web.NewAPIToken()
		if !tokenPattern.MatchString(tok) || len(tok) != 46 || seen[tok] {
			t.Fatalf("token %q: want ph_ and 43 URL-safe characters, never repeated", tok)
		}
		seen[tok] = true
	}
}
