package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/sessions"
	"golang.org/x/crypto/bcrypt"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
)

// Only this file knows the cookie's name and what it holds: a random session token whose hash
// names a row in the sessions table. Deleting that row (logout, password change, disabling the
// user) ends the session at once, whatever copies of the cookie exist.
const (
	cookieName  = "plaudhook_session"
	cookieToken = "t"
)

// sessionStore is what sign-in needs from storage.
type sessionStore interface {
	FindUserByUsername(ctx context.Context, username string) (db.User, error)
	CreateSession(ctx context.Context, userID int64, token, remoteAddr, userAgent string) (db.Session, error)
	FindSessionByToken(ctx context.Context, token string) (db.Session, db.User, error)
	TouchSession(ctx context.Context, id int64) error
	DeleteSession(ctx context.Context, id int64) error
	DeleteExpiredSessions(ctx context.Context, idleBefore, createdBefore time.Time) error
}

func newCookieStore(cfg Config) *sessions.CookieStore {
	cs := sessions.NewCookieStore(cfg.SessionKeys...)
	cs.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(cfg.SessionMax / time.Second),
		HttpOnly: true,
		Secure:   cfg.SecureCookies,
		SameSite: http.SameSiteLaxMode,
	}
	return cs
}

// cookieOptions are the session cookie's attributes for this request: Secure whenever the
// configured base URL is https or the request itself came over TLS.
func (s *Server) cookieOptions(r *http.Request, maxAge int) *sessions.Options {
	opts := *s.cookies.Options
	opts.Secure = opts.Secure || r.TLS != nil
	opts.MaxAge = maxAge
	return &opts
}

// sessionToken returns the session token of the request's cookie, if it carries a valid one.
func (s *Server) sessionToken(r *http.Request) (string, bool) {
	sess, err := s.cookies.Get(r, cookieName)
	if err != nil {
		return "", false
	}
	token, _ := sess.Values[cookieToken].(string)
	return token, token != ""
}

// authenticateSession checks the session cookie against the sessions table.
func (s *Server) authenticateSession(r *http.Request) (*auth, bool) {
	token, ok := s.sessionToken(r)
	if !ok {
		return nil, false
	}
	a := &auth{token: token}
	var err error
	a.session, a.user, err = s.store.FindSessionByToken(r.Context(), token)
	if err != nil || !s.sessionUsable(r.Context(), a) {
		return nil, false
	}

	// Record activity at most once a minute: the idle timeout needs no finer grain.
	if s.now().Sub(a.session.LastSeenAt) > time.Minute {
		if err := s.store.TouchSession(r.Context(), a.session.ID); err != nil {
			s.log.Warn("touch session", "error", err)
		}
	}
	return a, true
}

// sessionUsable reports whether a session just read may be used: its user is not disabled, and
// neither the idle timeout nor the absolute lifetime has passed (an expired one is deleted).
func (s *Server) sessionUsable(ctx context.Context, a *auth) bool {
	if a.user.Disabled {
		return false
	}
	now := s.now()
	if now.Sub(a.session.LastSeenAt) > s.cfg.SessionIdle ||
		now.Sub(a.session.CreatedAt) > s.cfg.SessionMax {
		if err := s.store.DeleteSession(ctx, a.session.ID); err != nil {
			s.log.Warn("delete expired session", "error", err)
		}
		return false
	}
	return true
}

// sessionStillValid re-reads the credentials of a long request (an event stream) and reports
// whether they may still be used: the session or API token still exists, its user is not
// disabled, and a session has not expired.
func (s *Server) sessionStillValid(ctx context.Context, a *auth) bool {
	if a.viaToken() {
		_, u, err := s.store.FindTokenByToken(ctx, a.token)
		return err == nil && !u.Disabled
	}
	sess, user, err := s.store.FindSessionByToken(ctx, a.token)
	if err != nil {
		return false
	}
	return s.sessionUsable(ctx, &auth{session: sess, user: user, token: a.token})
}

// handleLoginForm shows the sign-in page.
func (s *Server) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authenticateSession(r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	s.render(w, r, views.LoginPage(s.page(r, "Sign in", ""), "", "",
		safeNext(r.URL.Query().Get("next"))))
}

// errBadLogin is the one message for an unknown user, a disabled user and a wrong password
// alike.
const errBadLogin = "Wrong username or password."

// handleLogin checks the credentials and starts a new session with a fresh token. Failures are
// throttled per client address and per username (see loginThrottle).
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	// The form is three short fields; anything much larger is not a person signing in.
	r.Body = http.MaxBytesReader(w, r.Body, loginFormLimit)
	if err := r.ParseForm(); err != nil {
		s.respondError(w, r, &httpError{status: http.StatusBadRequest, code: "bad_request",
			msg: "The sign-in form was too large or malformed."})
		return
	}
	// Whatever was typed is looked up as is, but only its first 64 characters (the longest
	// possible username) are counted, logged and audited, so that a long made-up name cannot
	// fill memory, the log or the append-only audit table.
	typed := strings.TrimSpace(r.PostFormValue("username"))
	username := clipUsername(typed)
	password := r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	addr := remoteHost(r)

	// While the address or the username is backing off, refuse before checking anything: the
	// answer must not tell whether the password would have been right.
	if wait, first := s.team.logins.begin(addr, username, s.now()); wait > 0 {
		s.refuseLogin(w, r, username, wait, first)
		return
	}
	defer s.team.logins.end(addr, username)

	u, err := s.store.FindUserByUsername(r.Context(), typed)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		s.respondError(w, r, err)
		return
	}
	// Check the password even for an unknown user, so both failures look and take the same.
	passwordOK := checkPassword(u.PasswordHash, password)
	if err != nil || u.Disabled || !passwordOK {
		s.team.logins.fail(addr, username, s.now())
		s.log.Warn("sign-in failed", "username", username, slogRequest(r))
		s.audit(r, "login.failed", "user "+username, "wrong username or password")
		s.renderStatus(w, r, http.StatusUnauthorized,
			views.LoginPage(s.page(r, "Sign in", ""), username, errBadLogin, next))
		return
	}
	s.team.logins.succeed(username)

	// A session the browser already had (another user's, or one planted before sign-in) ends
	// here; the new one gets a new random token, so a session id fixed beforehand is worthless.
	if old, ok := s.sessionToken(r); ok {
		if sess, _, err := s.store.FindSessionByToken(r.Context(), old); err == nil {
			if err := s.store.DeleteSession(r.Context(), sess.ID); err != nil {
				s.log.Warn("end previous session", "error", err)
			}
		}
	}
	token := randomToken()
	sess, err := s.store.CreateSession(r.Context(), u.ID, token, addr, r.UserAgent())
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	c := sessions.NewSession(s.cookies, cookieName)
	c.Options = s.cookieOptions(r, s.cookies.Options.MaxAge)
	c.IsNew = true
	c.Values[cookieToken] = token
	if err := c.Save(r, w); err != nil {
		s.store.DeleteSession(r.Context(), sess.ID)
		s.respondError(w, r, fmt.Errorf("save session cookie: %w", err))
		return
	}
	// Each sign-in also clears out expired sessions, so the table never grows without bound
	// (a session that is never presented again would otherwise stay forever).
	now := s.now()
	if err := s.store.DeleteExpiredSessions(r.Context(), now.Add(-s.cfg.SessionIdle),
		now.Add(-s.cfg.SessionMax)); err != nil {
		s.log.Warn("delete expired sessions", "error", err)
	}
	s.log.Info("signed in", "username", u.Username, slogRequest(r))
	s.audit(r.WithContext(context.WithValue(r.Context(), authKey{}, &auth{user: u})),
		"login.ok", "user "+u.Username, "")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// loginFormLimit bounds the sign-in form's body.
const loginFormLimit = 16 << 10

// clipUsername cuts what was typed as a username to the longest a username can be (64
// characters, db.ValidateUsername).
func clipUsername(typed string) string {
	n := 0
	for i := range typed {
		if n == 64 {
			return typed[:i]
		}
		n++
	}
	return typed
}

// refuseLogin answers a throttled sign-in: 429, Retry-After, and the sign-in page saying how
// long to wait. The first refusal of each back-off period is audited (not every one, so that a
// flood of attempts cannot flood the audit log).
func (s *Server) refuseLogin(w http.ResponseWriter, r *http.Request, username string,
	wait time.Duration, first bool) {
	secs := int((wait + time.Second - 1) / time.Second)
	if first {
		s.log.Warn("sign-in throttled", "username", username, "retry_after_s", secs,
			slogRequest(r))
		s.audit(r, "login.throttled", "user "+username,
			fmt.Sprintf("too many failed sign-ins; refused for %ds", secs))
	}
	w.Header().Set("Retry-After", fmt.Sprint(secs))
	msg := "Too many failed sign-ins. Wait " + humanWait(wait) + " and try again."
	s.renderStatus(w, r, http.StatusTooManyRequests, views.LoginPage(s.page(r, "Sign in", ""),
		username, msg, safeNext(r.PostFormValue("next"))))
}

// humanWait renders a back-off for people: "30 seconds", "2 minutes".
func humanWait(d time.Duration) string {
	secs := int((d + time.Second - 1) / time.Second)
	switch {
	case secs == 1:
		return "1 second"
	case secs < 90:
		return fmt.Sprintf("%d seconds", secs)
	}
	return fmt.Sprintf("%d minutes", (secs+59)/60)
}

// handleLogout ends the session server-side and clears the cookie. (A request authenticated by
// an API token has no session; it only clears a cookie if there is one.)
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	a := r.Context().Value(authKey{}).(*auth)
	if !a.viaToken() {
		if err := s.store.DeleteSession(r.Context(), a.session.ID); err != nil {
			s.respondError(w, r, err)
			return
		}
		s.audit(r, "logout", "user "+a.user.Username, "")
		s.endStreams(func(_ int64, token string) bool { return token == a.token })
	}
	c := sessions.NewSession(s.cookies, cookieName)
	c.Options = s.cookieOptions(r, -1)
	if err := c.Save(r, w); err != nil {
		s.log.Warn("clear session cookie", "error", err)
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps post-login redirects on this site: a path on this host, nothing else.
// Browsers drop tabs and line breaks from a Location and read a backslash as a slash, so
// "/\t/evil.example" or "/\\evil.example" would lead off-site: any of them refuses the value.
func safeNext(next string) string {
	bad := strings.ContainsFunc(next, func(c rune) bool { return c < 0x20 || c == 0x7f || c == '\\' })
	if next == "" || bad || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}

// HashPassword hashes a password with bcrypt. Passwords longer than bcrypt's 72 bytes are
// refused rather than silently cut.
func HashPassword(password string) (string, error) {
	if len(password) < 8 {
		return "", &db.ValidationError{Message: "password must be at least 8 characters"}
	}
	if len(password) > 72 {
		return "", &db.ValidationError{Message: "password must be at most 72 bytes"}
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// defaultBcryptCost is the work factor of new password hashes (OWASP: at least 10).
const defaultBcryptCost = 11

// bcryptCost is the work factor in use. NOTE: only this package's tests lower it
// (export_test.go), because the race detector makes each cost-11 hash take seconds.
var bcryptCost = defaultBcryptCost

// dummyHash is compared against when the user does not exist, so both failures take as long.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("plaudhook-no-such-user"), bcryptCost)
	return h
})

func checkPassword(hash, password string) bool {
	if hash == "" {
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// randomToken returns 32 random bytes, URL-safe encoded.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
