package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/plaudhook/plaudhook/db"
)

// logBuffer is a log destination that tests read while the server writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// mustRunMainLogged is mustRunMain with every log line, at debug level, captured.
func mustRunMainLogged(tb testing.TB, edit ...func(*Config)) (*Main, *logBuffer) {
	tb.Helper()
	c := defaultConfig()
	c.Addr = "127.0.0.1:0"
	c.DB = filepath.Join(tb.TempDir(), "plaudhook.db")
	c.Secrets = []string{fixtureSecret}
	c.AdminPass = adminPassword
	c.Heartbeat = time.Second
	for _, e := range edit {
		e(&c)
	}
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := &Main{Config: c, Logger: logger, Args0: "plaudhook"}
	if err := m.Run(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m, logs
}

// cli runs a plaudhook subcommand in-process and returns its stdout; stderr goes to the
// captured log too, so that it is searched for secrets like the server's log.
func cli(t *testing.T, logs io.Writer, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, logs)
	return out.String(), err
}

// browserClient is an HTTP client with a cookie jar that does not follow redirects.
func browserClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

func httpSignIn(t *testing.T, c *http.Client, base, username, password string) int {
	t.Helper()
	resp, err := c.PostForm(base+"/login", url.Values{"username": {username}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func bearerGet(t *testing.T, base, token, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var apiTokenPattern = regexp.MustCompile(`ph_[A-Za-z0-9_-]{43}`)

// TestSecretsNeverInClear exercises every way a password or token enters plaudhook (first-run
// admin password from the environment, `user add` and `user passwd` on stdin, sign-in, a failed
// sign-in, changing a password in the UI, an admin adding a user and resetting her password in
// the UI, `token create`, a token created in the UI, bearer requests), then searches the
// database files and everything logged at debug level for each plaintext: none may appear.
func TestSecretsNeverInClear(t *testing.T) {
	m, logs := mustRunMainLogged(t)
	base := m.URL()
	secrets := map[string]string{"first-run admin password": adminPassword}

	// Users and passwords from the command line.
	const annPassword, annNew = "ann's CLI password", "ann's second password"
	secrets["user add password"], secrets["user passwd password"] = annPassword, annNew
	if _, err := cli(t, logs, annPassword+"\n", "user", "add", "--db", m.Config.DB, "--username", "ann", "--role", "operator"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli(t, logs, annNew+"\n", "user", "passwd", "--db", m.Config.DB, "--username", "ann"); err != nil {
		t.Fatal(err)
	}

	// Sign-ins, a wrong one, and a password change in the UI.
	const wrong, annUI = "a wrong guess at ann's", "ann changed it in the UI"
	secrets["failed sign-in password"], secrets["UI password"] = wrong, annUI
	if got := httpSignIn(t, browserClient(), base, "ann", wrong); got != http.StatusUnauthorized {
		t.Fatalf("wrong password = %d, want 401", got)
	}
	ann := browserClient()
	if got := httpSignIn(t, ann, base, "ann", annNew); got != http.StatusSeeOther {
		t.Fatalf("ann signs in = %d, want 303", got)
	}
	resp, err := ann.PostForm(base+"/account/password", url.Values{"current": {annNew}, "password": {annUI}, "confirm": {annUI}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("change password = %d, want 303", resp.StatusCode)
	}
	if got := httpSignIn(t, browserClient(), base, "ann", annUI); got != http.StatusSeeOther {
		t.Fatalf("sign in with the changed password = %d, want 303", got)
	}
	u, _ := url.Parse(base)
	for _, ck := range ann.Jar.Cookies(u) {
		secrets["session cookie"] = ck.Value
	}

	// An admin adds a user and later sets her a new password, both in the UI.
	const boFirst, boReset = "bo's password set by the admin", "bo's password reset by the admin"
	secrets["admin UI new user password"], secrets["admin UI reset password"] = boFirst, boReset
	admin := browserClient()
	if got := httpSignIn(t, admin, base, "admin", adminPassword); got != http.StatusSeeOther {
		t.Fatalf("admin signs in = %d, want 303", got)
	}
	for _, step := range []struct {
		path string
		form url.Values
	}{
		{"/users", url.Values{"username": {"bo"}, "role": {"viewer"}, "password": {boFirst}}},
		{"/users/{bo}/password", url.Values{"password": {boReset}}},
	} {
		path := step.path
		if strings.Contains(path, "{bo}") {
			bo, err := m.DB.FindUserByUsername(context.Background(), "bo")
			if err != nil {
				t.Fatal(err)
			}
			path = strings.ReplaceAll(path, "{bo}", strconv.FormatInt(bo.ID, 10))
		}
		resp, err := admin.PostForm(base+path, step.form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST %s = %d, want 303", path, resp.StatusCode)
		}
	}
	if got := httpSignIn(t, browserClient(), base, "bo", boReset); got != http.StatusSeeOther {
		t.Fatalf("bo signs in with the reset password = %d, want 303", got)
	}

	// Tokens: one from the command line, one from the UI; both used.
	out, err := cli(t, logs, "", "token", "create", "--db", m.Config.DB, "--username", "admin", "--label", "ci")
	if err != nil {
		t.Fatal(err)
	}
	cliToken := strings.TrimSpace(out)
	if !apiTokenPattern.MatchString(cliToken) || strings.Count(out, "\n") != 1 {
		t.Fatalf("token create printed %q, want the token alone on one line", out)
	}
	secrets["CLI token"] = cliToken
	resp, err = ann.PostForm(base+"/account/tokens", url.Values{"label": {"notebook"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = ann.Get(base + "/account")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	uiToken := apiTokenPattern.FindString(string(page))
	if uiToken == "" {
		t.Fatal("the account page did not show the new token")
	}
	secrets["UI token"] = uiToken
	for _, tok := range []string{cliToken, uiToken} {
		if status, body := bearerGet(t, base, tok, "/api/v1/events"); status != 200 {
			t.Fatalf("bearer = %d %s, want 200", status, body)
		}
	}
	if status, _ := bearerGet(t, base, cliToken+"x", "/api/v1/events"); status != 401 {
		t.Fatalf("bad bearer = %d, want 401", status)
	}

	// Stored password hashes are bcrypt at cost 10 or more (OWASP).
	for _, name := range []string{"admin", "ann"} {
		u, err := m.DB.FindUserByUsername(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if cost, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil || cost < 10 {
			t.Errorf("%s's hash: bcrypt cost %d (%v), want at least 10", name, cost, err)
		}
	}

	// Make sure the writes reached the files, then search the database, its WAL and the logs.
	m.Close()
	var stored []byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(m.Config.DB + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		stored = append(stored, b...)
	}
	logged := logs.String()
	if len(stored) < 4096 || !strings.Contains(logged, "signed in") || !strings.Contains(logged, "sign-in failed") {
		t.Fatalf("nothing to search: %d stored bytes, log %d bytes", len(stored), len(logged))
	}
	for what, secret := range secrets {
		if bytes.Contains(stored, []byte(secret)) {
			t.Errorf("the database holds the %s in clear", what)
		}
		if strings.Contains(logged, secret) {
			t.Errorf("the log holds the %s in clear", what)
		}
	}
}

// TestTokenCLI: `token create` prints a token that acts with its user's role, `token list`
// names it without revealing it, `token revoke` stops it at once; all three are audited.
func TestTokenCLI(t *testing.T) {
	m, logs := mustRunMainLogged(t)
	dbArg := []string{"--db", m.Config.DB}
	if _, err := cli(t, logs, "viewer password 1\n", append([]string{"user", "add", "--username", "vic", "--role", "viewer"}, dbArg...)...); err != nil {
		t.Fatal(err)
	}
	out, err := cli(t, logs, "", append([]string{"token", "create", "--username", "vic", "--label", "dashboards"}, dbArg...)...)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(out)

	// It acts as vic, a viewer: the API reads, the audit log is refused.
	if status, body := bearerGet(t, m.URL(), token, "/api/v1/deliveries"); status != 200 || !strings.Contains(body, `"deliveries"`) {
		t.Fatalf("token on the API = %d %s", status, body)
	}
	if status, _ := bearerGet(t, m.URL(), token, "/audit"); status != http.StatusForbidden {
		t.Errorf("viewer token on /audit = %d, want 403", status)
	}

	list, err := cli(t, logs, "", append([]string{"token", "list"}, dbArg...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list, token[:10]+"…") || strings.Contains(list, token) || !strings.Contains(list, "dashboards") {
		t.Errorf("token list = %q, want the prefix and label, never the token", list)
	}
	id := strings.Fields(strings.Split(list, "\n")[1])[0]
	if _, err := cli(t, logs, "", append([]string{"token", "revoke", "--id", id}, dbArg...)...); err != nil {
		t.Fatal(err)
	}
	if status, _ := bearerGet(t, m.URL(), token, "/api/v1/deliveries"); status != http.StatusUnauthorized {
		t.Errorf("revoked token = %d, want 401", status)
	}

	// Mistakes are refused with a message.
	for _, args := range [][]string{
		{"token", "create", "--username", "vic"},
		{"token", "create", "--username", "nobody", "--label", "x"},
		{"token", "revoke"},
		{"user", "role", "--username", "vic"},
	} {
		if _, err := cli(t, logs, "", append(args, dbArg...)...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}

	// The audit log names the command line as the actor.
	admin := browserClient()
	if got := httpSignIn(t, admin, m.URL(), "admin", adminPassword); got != http.StatusSeeOther {
		t.Fatal("admin sign-in failed")
	}
	resp, err := admin.Get(m.URL() + "/audit?actor=cli")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, action := range []string{"user.create", "token.create", "token.revoke"} {
		if !strings.Contains(string(page), `data-action="`+action+`"`) {
			t.Errorf("audit page lacks %s by cli", action)
		}
	}
}

// TestSessionRotateKeys: after `session rotate-keys` and a restart, a cookie signed with the
// previous key still works (the previous pair is kept) and new sign-ins use the new key; with
// --keep 0 every old cookie stops working.
func TestSessionRotateKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plaudhook.db")
	onPath := func(c *Config) { c.DB = path }
	cookieFor := func(m *Main) *http.Cookie {
		c := browserClient()
		if got := httpSignIn(t, c, m.URL(), "admin", adminPassword); got != http.StatusSeeOther {
			t.Fatalf("sign in = %d", got)
		}
		u, _ := url.Parse(m.URL())
		return c.Jar.Cookies(u)[0]
	}
	status := func(m *Main, ck *http.Cookie) int {
		req, _ := http.NewRequest("GET", m.URL()+"/", nil)
		req.AddCookie(ck)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	m1, logs := mustRunMainLogged(t, onPath)
	old := cookieFor(m1)
	m1.Close()

	out, err := cli(t, logs, "", "session", "rotate-keys", "--db", path)
	if err != nil || !strings.Contains(out, "1 previous pair(s) still accepted") {
		t.Fatalf("rotate-keys = %q %v", out, err)
	}
	m2, _ := mustRunMainLogged(t, onPath)
	if got := status(m2, old); got != 200 {
		t.Errorf("cookie from before the rotation = %d, want 200 (previous key kept)", got)
	}
	fresh := cookieFor(m2)
	m2.Close()

	if _, err := cli(t, logs, "", "session", "rotate-keys", "--keep", "0", "--db", path); err != nil {
		t.Fatal(err)
	}
	m3, _ := mustRunMainLogged(t, onPath)
	for name, ck := range map[string]*http.Cookie{"old": old, "fresh": fresh} {
		if got := status(m3, ck); got != http.StatusSeeOther {
			t.Errorf("%s cookie after rotate-keys --keep 0 = %d, want 303 to sign in", name, got)
		}
	}
	if got := status(m3, cookieFor(m3)); got != 200 {
		t.Errorf("a new sign-in after the rotation = %d, want 200", got)
	}
}

// TestUserCLI: `user add` (password on stdin), `list`, `disable`, `enable`, `role` and `passwd`
// act on the running server's database at once: disabling stops the user's session and token
// and refuses her sign-in; a role change ends her session and applies; a new password ends her
// sessions. A password over bcrypt's 72 bytes is refused, never cut. Every change is audited
// with the actor "cli".
func TestUserCLI(t *testing.T) {
	m, logs := mustRunMainLogged(t)
	base, dbArg := m.URL(), []string{"--db", m.Config.DB}
	user := func(stdin string, args ...string) (string, error) {
		return cli(t, logs, stdin, append(append([]string{"user"}, args...), dbArg...)...)
	}
	status := func(c *http.Client, path string) int {
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const pass = "dana's first passphrase"

	// Refused: a password longer than 72 bytes, a role that does not exist, no username.
	long := strings.Repeat("é", 37) // 74 bytes
	if _, err := user(long+"\n", "add", "--username", "dana", "--role", "operator"); err == nil || !strings.Contains(err.Error(), "at most 72 bytes") {
		t.Errorf("a 74-byte password: err = %v, want refused as over 72 bytes", err)
	}
	if _, err := user(pass+"\n", "add", "--username", "dana", "--role", "root"); err == nil {
		t.Error("role root: no error")
	}
	if _, err := user(pass+"\n", "add", "--role", "viewer"); err == nil {
		t.Error("no --username: no error")
	}
	if out, _ := user("", "list"); strings.Contains(out, "dana") {
		t.Fatalf("a refused add created dana:\n%s", out)
	}

	out, err := user(pass+"\n", "add", "--username", "dana", "--role", "operator")
	if err != nil || !strings.Contains(out, "created dana (operator)") {
		t.Fatalf("user add = %q %v", out, err)
	}
	dana := browserClient()
	if got := httpSignIn(t, dana, base, "dana", pass); got != http.StatusSeeOther {
		t.Fatalf("dana signs in = %d, want 303", got)
	}
	tokOut, err := cli(t, logs, "", append([]string{"token", "create", "--username", "dana", "--label", "cli test"}, dbArg...)...)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(tokOut)
	if got := status(dana, "/bulk"); got != 200 {
		t.Fatalf("operator dana on /bulk = %d, want 200", got)
	}

	// Disabled: session, token and sign-in all stop at once.
	if out, err := user("", "disable", "--username", "dana"); err != nil || !strings.Contains(out, "disabled dana") {
		t.Fatalf("user disable = %q %v", out, err)
	}
	if out, _ := user("", "list"); !regexp.MustCompile(`dana\s+operator\s+disabled`).MatchString(out) {
		t.Errorf("user list after disable:\n%s", out)
	}
	if got := status(dana, "/"); got != http.StatusSeeOther {
		t.Errorf("disabled dana's session = %d, want 303 to sign in", got)
	}
	if got, _ := bearerGet(t, base, token, "/api/v1/events"); got != http.StatusUnauthorized {
		t.Errorf("disabled dana's token = %d, want 401", got)
	}
	if got := httpSignIn(t, browserClient(), base, "dana", pass); got != http.StatusUnauthorized {
		t.Errorf("disabled dana signs in = %d, want 401", got)
	}

	// Enabled again: she signs in, her token works.
	if _, err := user("", "enable", "--username", "dana"); err != nil {
		t.Fatal(err)
	}
	dana = browserClient()
	if got := httpSignIn(t, dana, base, "dana", pass); got != http.StatusSeeOther {
		t.Fatalf("enabled dana signs in = %d, want 303", got)
	}
	if got, _ := bearerGet(t, base, token, "/api/v1/events"); got != 200 {
		t.Errorf("enabled dana's token = %d, want 200", got)
	}

	// A role change ends her session and applies to the next one.
	if out, err := user("", "role", "--username", "dana", "--role", "viewer"); err != nil || !strings.Contains(out, "dana is now viewer") {
		t.Fatalf("user role = %q %v", out, err)
	}
	if got := status(dana, "/"); got != http.StatusSeeOther {
		t.Errorf("dana's session after a role change = %d, want 303", got)
	}
	dana = browserClient()
	httpSignIn(t, dana, base, "dana", pass)
	if got := status(dana, "/bulk"); got != http.StatusForbidden {
		t.Errorf("viewer dana on /bulk = %d, want 403", got)
	}

	// A new password ends her sessions; only the new one signs in.
	const newPass = "dana's second passphrase"
	if _, err := user(newPass+"\n", "passwd", "--username", "dana"); err != nil {
		t.Fatal(err)
	}
	if got := status(dana, "/"); got != http.StatusSeeOther {
		t.Errorf("dana's session after passwd = %d, want 303", got)
	}
	if got := httpSignIn(t, browserClient(), base, "dana", pass); got != http.StatusUnauthorized {
		t.Errorf("old password = %d, want 401", got)
	}
	if got := httpSignIn(t, browserClient(), base, "dana", newPass); got != http.StatusSeeOther {
		t.Errorf("new password = %d, want 303", got)
	}

	// Each change is in the audit log, by cli.
	entries, _, err := m.DB.FindAuditEntries(context.Background(), db.AuditFilter{Actor: "cli", ActionPrefix: "user."})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Action)
	}
	want := "user.password_reset user.role user.enable user.disable user.create"
	if strings.Join(got, " ") != want {
		t.Errorf("cli audit entries = %v, want %s", got, want)
	}
}

// TestAccessDefaults pins the defaults C26 depends on: a session lives at most 12 hours, and an
// open live list re-checks its user at every heartbeat, at most 30 seconds apart, so a disabled
// user's stream closes within 30 seconds.
func TestAccessDefaults(t *testing.T) {
	c := defaultConfig()
	if c.SessionMax <= 0 || c.SessionMax > 12*time.Hour {
		t.Errorf("default session lifetime = %v, want at most 12 h", c.SessionMax)
	}
	if c.SessionIdle <= 0 || c.SessionIdle > c.SessionMax {
		t.Errorf("default idle timeout = %v, want within the lifetime", c.SessionIdle)
	}
	if c.Heartbeat <= 0 || c.Heartbeat > 30*time.Second {
		t.Errorf("default heartbeat = %v, want at most 30 s", c.Heartbeat)
	}
}
