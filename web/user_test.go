package web_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web"
)

// TestChangePassword: the current password is required and checked, both new ones must match
// and be valid; a change keeps this session, ends the user's other sessions, and is audited.
func TestChangePassword(t *testing.T) {
	e := newEnv(t)
	here, elsewhere := e.client("viewer"), e.client("viewer")
	const newPassword = "a brand new passphrase"
	change := func(current, password, confirm string) (int, string, string) {
		return postForm(t, here, e.ts.URL+"/account/password",
			url.Values{"current": {current}, "password": {password}, "confirm": {confirm}})
	}

	refusals := []struct {
		name, current, password, confirm, want string
	}{
		{"wrong current", "not my password", newPassword, newPassword, "The current password is wrong."},
		{"mismatch", testPassword, newPassword, newPassword + "!", "The two new passwords differ."},
		{"too short", testPassword, "short", "short", "at least 8 characters"},
		{"too long", testPassword, strings.Repeat("x", 73), strings.Repeat("x", 73), "at most 72 bytes"},
	}
	for _, r := range refusals {
		status, _, body := change(r.current, r.password, r.confirm)
		if status != http.StatusUnprocessableEntity || !strings.Contains(body, r.want) {
			t.Errorf("%s = %d, want 422 with %q", r.name, status, r.want)
		}
	}

	status, loc, _ := change(testPassword, newPassword, newPassword)
	if status != http.StatusSeeOther || loc != "/account?flash=password-changed" {
		t.Fatalf("change = %d to %q, want 303 to /account?flash=password-changed", status, loc)
	}
	if _, body := get(t, here, e.ts.URL+loc); !strings.Contains(body, "Your password was changed.") {
		t.Error("this session ended or shows no notice after the change")
	}
	if status, _, _ := do(t, elsewhere, "GET", e.ts.URL+"/", nil); status != http.StatusSeeOther {
		t.Errorf("the other session after the change = %d, want 303 to sign in", status)
	}
	if resp, _ := signInAttempt(t, e, "viewer", testPassword); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("old password = %d, want 401", resp.StatusCode)
	}
	if resp, _ := signInAttempt(t, e, "viewer", newPassword); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("new password = %d, want 303", resp.StatusCode)
	}
	if got := countAudit(t, e, "password.change"); got != 1 {
		t.Errorf("password.change entries = %d, want 1", got)
	}
	if got := countAudit(t, e, "password.failed"); got != 1 {
		t.Errorf("password.failed entries = %d, want 1", got)
	}
}

// TestUserAdmin: an admin adds a user, changes their role (which signs them out), resets their
// password, and cannot remove the last admin or disable themselves. Every change is audited.
func TestUserAdmin(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.client("admin")
	const danaPassword = testPassword

	status, loc, _ := postForm(t, admin, e.ts.URL+"/users",
		url.Values{"username": {"dana"}, "role": {"operator"}, "password": {danaPassword}})
	if status != http.StatusSeeOther || loc != "/users?flash=user-created" {
		t.Fatalf("add user = %d to %q", status, loc)
	}
	_, page := get(t, admin, e.ts.URL+loc)
	contains(t, page, `data-username="dana"`, "User added.")

	refused := []struct {
		name     string
		form     url.Values
		status   int
		fragment string
	}{
		{"taken (any case)", url.Values{"username": {"Dana"}, "role": {"viewer"}, "password": {danaPassword}}, http.StatusConflict, "That username is taken."},
		{"bad name", url.Values{"username": {"dana smith"}, "role": {"viewer"}, "password": {danaPassword}}, http.StatusUnprocessableEntity, "no spaces"},
		{"bad role", url.Values{"username": {"erin"}, "role": {"root"}, "password": {danaPassword}}, http.StatusUnprocessableEntity, "Choose viewer, operator or admin."},
		{"short password", url.Values{"username": {"erin"}, "role": {"viewer"}, "password": {"short"}}, http.StatusUnprocessableEntity, "at least 8"},
	}
	for _, r := range refused {
		status, _, body := postForm(t, admin, e.ts.URL+"/users", r.form)
		if status != r.status || !strings.Contains(body, r.fragment) {
			t.Errorf("%s = %d, want %d with %q", r.name, status, r.status, r.fragment)
		}
	}

	// Dana signs in as an operator; a role change signs her out and applies.
	dana := e.client("dana")
	_, body := get(t, dana, e.ts.URL+"/account")
	contains(t, body, `data-testid="account-role">operator`)
	d, _ := e.db.FindUserByUsername(ctx, "dana")
	if status, _, _ := postForm(t, admin, e.ts.URL+"/users/"+itoa(d.ID)+"/role", url.Values{"role": {"viewer"}}); status != http.StatusSeeOther {
		t.Fatalf("change role = %d", status)
	}
	if status, _, _ := do(t, dana, "GET", e.ts.URL+"/", nil); status != http.StatusSeeOther {
		t.Errorf("dana's session after a role change = %d, want 303 to sign in", status)
	}
	if d, _ = e.db.FindUserByUsername(ctx, "dana"); d.Role != db.RoleViewer {
		t.Errorf("dana's role = %s, want viewer", d.Role)
	}

	// A password reset replaces the password and ends her sessions.
	dana = e.client("dana")
	const reset = "reset by the admin"
	if status, _, _ := postForm(t, admin, e.ts.URL+"/users/"+itoa(d.ID)+"/password", url.Values{"password": {reset}}); status != http.StatusSeeOther {
		t.Fatalf("reset password = %d", status)
	}
	if status, _, _ := do(t, dana, "GET", e.ts.URL+"/", nil); status != http.StatusSeeOther {
		t.Errorf("dana's session after a reset = %d, want 303", status)
	}
	if resp, _ := signInAttempt(t, e, "dana", reset); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("dana with the reset password = %d, want 303", resp.StatusCode)
	}

	// The last admin stays: no self-demotion, no self-disable.
	a, _ := e.db.FindUserByUsername(ctx, "admin")
	status, _, body = postForm(t, admin, e.ts.URL+"/users/"+itoa(a.ID)+"/role", url.Values{"role": {"viewer"}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, "at least one enabled admin must remain") {
		t.Errorf("demoting the last admin = %d, want 422", status)
	}
	status, _, body = postForm(t, admin, e.ts.URL+"/users/"+itoa(a.ID)+"/disable", nil)
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, "You cannot disable yourself.") {
		t.Errorf("disabling oneself = %d, want 422", status)
	}
	if a, _ = e.db.FindUserByUsername(ctx, "admin"); a.Role != db.RoleAdmin || a.Disabled {
		t.Errorf("admin = %s disabled=%v, want an enabled admin", a.Role, a.Disabled)
	}
	if status, _, _ := postForm(t, admin, e.ts.URL+"/users/999999/disable", nil); status != http.StatusNotFound {
		t.Errorf("disabling no one = %d, want 404", status)
	}

	es, _, _ := e.db.FindAuditEntries(ctx, db.AuditFilter{ActionPrefix: "user.", Actor: "admin"})
	var got []string
	for _, x := range es {
		got = append(got, x.Action+" "+x.Target+" "+x.Detail)
	}
	want := []string{"user.password_reset user dana sessions ended", "user.role user dana operator → viewer", "user.create user dana role operator"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("audit = %q, want %q", got, want)
	}
}

// TestSessionCookie: the cookie is Secure over TLS and behind an https base URL (and not on
// plain HTTP without one), HttpOnly, SameSite=Lax, Max-Age the absolute lifetime; signing in
// again ends the session the browser had before and issues a different id.
func TestSessionCookie(t *testing.T) {
	e := newEnv(t)
	setCookie := func(c *http.Client, base string) string {
		t.Helper()
		resp, err := c.PostForm(base+"/login", url.Values{"username": {"viewer"}, "password": {testPassword}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign in = %d", resp.StatusCode)
		}
		return resp.Header.Get("Set-Cookie")
	}
	plain := setCookie(noFollow(), e.ts.URL)
	if strings.Contains(plain, "Secure") {
		t.Errorf("plain HTTP cookie %q is Secure: a browser would drop it", plain)
	}

	tlsServer := httptest.NewTLSServer(e.srv)
	defer tlsServer.Close()
	tc := tlsServer.Client()
	tc.CheckRedirect = noFollow().CheckRedirect
	overTLS := setCookie(tc, tlsServer.URL)
	for _, want := range []string{"Secure", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"} {
		if !strings.Contains(overTLS, want) {
			t.Errorf("cookie over TLS %q lacks %s", overTLS, want)
		}
	}

	https := newEnv(t, func(c *web.Config) { c.SecureCookies = true })
	if got := setCookie(noFollow(), https.ts.URL); !strings.Contains(got, "Secure") {
		t.Errorf("cookie with an https base URL %q lacks Secure", got)
	}

	// A browser that signs in while holding a session gets a new id; the old one is ended.
	// Comparing the two cookie values would prove nothing (gorilla encrypts each with a random
	// IV); what proves the id changed is that the old cookie no longer authenticates, while
	// the new one does.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: noFollow().CheckRedirect}
	setCookie(c, e.ts.URL)
	u, _ := url.Parse(e.ts.URL)
	before := jar.Cookies(u)[0]
	setCookie(c, e.ts.URL)
	if resp, _ := get(t, c, e.ts.URL+"/"); resp.StatusCode != 200 {
		t.Fatalf("the new session = %d, want 200", resp.StatusCode)
	}
	old := &http.Client{CheckRedirect: noFollow().CheckRedirect}
	req, _ := http.NewRequest("GET", e.ts.URL+"/", nil)
	req.AddCookie(before)
	resp, err := old.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the session held before signing in again = %d, want 303: it must end", resp.StatusCode)
	}
}

// TestSessionTimeouts: a session ends after 2 hours idle, and after 12 hours however active;
// signing in clears out expired sessions that are never presented again.
func TestSessionTimeouts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u, _ := e.db.FindUserByUsername(ctx, "operator")
	if _, err := e.db.CreateSession(ctx, u.ID, "abandoned-session-token", "", ""); err != nil {
		t.Fatal(err)
	}

	idle := e.client("viewer")
	advance(e, 2*time.Hour+time.Minute)
	if status, _, _ := do(t, idle, "GET", e.ts.URL+"/", nil); status != http.StatusSeeOther {
		t.Errorf("after 2 h idle = %d, want 303 to sign in", status)
	}

	busy := e.client("viewer")
	for range 12 {
		if status, _, _ := do(t, busy, "GET", e.ts.URL+"/", nil); status != 200 {
			t.Fatalf("active session = %d, want 200", status)
		}
		advance(e, time.Hour)
	}
	advance(e, time.Minute)
	if status, _, _ := do(t, busy, "GET", e.ts.URL+"/", nil); status != http.StatusSeeOther {
		t.Errorf("after 12 h however active = %d, want 303 to sign in", status)
	}

	e.client("admin")
	if _, _, err := e.db.FindSessionByToken(ctx, "abandoned-session-token"); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("abandoned expired session after a sign-in: err = %v, want ErrNotFound", err)
	}
}
