package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
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
}

type authKey struct{}

// auth is the signed-in state of a request.
type auth struct {
	session db.Session
	user    db.User
	token   string
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

// requireUser lets the request through only with a valid session whose user has at least role
// need. Browsers without one are sent to the sign-in page; scripts get 401.
func (s *Server) requireUser(need db.Role, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := s.authenticate(r)
		if !ok {
			s.unauthenticated(w, r)
			return
		}
		if !a.user.Role.Allows(need) {
			s.respondError(w, r, errForbidden)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), authKey{}, a)))
	})
}

// authenticate checks the session cookie against the sessions table.
func (s *Server) authenticate(r *http.Request) (*auth, bool) {
	sess, err := s.cookies.Get(r, cookieName)
	if err != nil {
		return nil, false
	}
	token, _ := sess.Values[cookieToken].(string)
	if token == "" {
		return nil, false
	}
	a := &auth{token: token}
	a.session, a.user, err = s.store.FindSessionByToken(r.Context(), token)
	if err != nil {
		return nil, false
	}
	if !s.sessionStillValid(r.Context(), a) {
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

// sessionStillValid re-reads the session and reports whether it may still be used: not deleted,
// user not disabled, neither idle nor absolute lifetime exceeded.
func (s *Server) sessionStillValid(ctx context.Context, a *auth) bool {
	sess, user, err := s.store.FindSessionByToken(ctx, a.token)
	if err != nil || user.Disabled {
		return false
	}
	now := s.now()
	if now.Sub(sess.LastSeenAt) > s.cfg.SessionIdle || now.Sub(sess.CreatedAt) > s.cfg.SessionMax {
		s.store.DeleteSession(ctx, sess.ID)
		return false
	}
	return true
}

func (s *Server) unauthenticated(w http.ResponseWriter, r *http.Request) {
	if wantsJSON(r) || r.URL.Path == "/events/stream" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="plaudhook"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{
			"error": "sign in or send an API token", "code": "unauthenticated"})
		return
	}
	next := r.URL.RequestURI()
	http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
}

// handleLoginForm shows the sign-in page.
func (s *Server) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authenticate(r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	views.LoginPage(s.page(r, "Sign in", ""), "", "", safeNext(r.URL.Query().Get("next"))).
		Render(r.Context(), w)
}

// errBadLogin is the one message for an unknown user and a wrong password alike.
const errBadLogin = "Wrong username or password."

// handleLogin checks the credentials and starts a new session with a fresh token.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	username := strings.TrimSpace(r.PostFormValue("username"))
	password := r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))

	u, err := s.store.FindUserByUsername(r.Context(), username)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		s.respondError(w, r, err)
		return
	}
	// Check the password even for an unknown user, so both failures look and take the same.
	passwordOK := checkPassword(u.PasswordHash, password)
	if err != nil || u.Disabled || !passwordOK {
		s.log.Warn("sign-in failed", "username", username, slogRequest(r))
		s.audit(r, "login.failed", "user "+username, "wrong username or password")
		w.WriteHeader(http.StatusUnauthorized)
		views.LoginPage(s.page(r, "Sign in", ""), username, errBadLogin, next).Render(r.Context(), w)
		return
	}

	// A new random token for every sign-in: a session id planted before login is worthless.
	token := randomToken()
	sess, err := s.store.CreateSession(r.Context(), u.ID, token, remoteHost(r), r.UserAgent())
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	c := sessions.NewSession(s.cookies, cookieName)
	c.Options = s.cookies.Options
	c.IsNew = true
	c.Values[cookieToken] = token
	if err := c.Save(r, w); err != nil {
		s.store.DeleteSession(r.Context(), sess.ID)
		s.respondError(w, r, err)
		return
	}
	s.log.Info("signed in", "username", u.Username, slogRequest(r))
	s.audit(r.WithContext(context.WithValue(r.Context(), authKey{}, &auth{user: u})),
		"login.ok", "user "+u.Username, "")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// handleLogout ends the session server-side and clears the cookie.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	a := r.Context().Value(authKey{}).(*auth)
	if err := s.store.DeleteSession(r.Context(), a.session.ID); err != nil {
		s.respondError(w, r, err)
		return
	}
	c := sessions.NewSession(s.cookies, cookieName)
	opts := *s.cookies.Options
	opts.MaxAge = -1
	c.Options = &opts
	c.Save(r, w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps post-login redirects on this site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.HasPrefix(next, "/\\") {
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
		return "", err
	}
	return string(h), nil
}

// bcryptCost is the work factor of new password hashes.
const bcryptCost = 11

// dummyHash is compared against when the user does not exist, so both failures take as long.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("plaudhook-no-such-user"), bcryptCost)

func checkPassword(hash, password string) bool {
	if hash == "" {
		bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
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
