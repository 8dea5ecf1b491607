package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/a-h/templ"

	"github.com/plaudhook/plaudhook/db"
)

// Who may do what. A request carries its user in one of two ways:
//   - a session cookie, set by signing in on /login (browsers);
//   - an API token in "Authorization: Bearer <token>" (scripts). A token acts with its user's
//     role, needs no cookie, and is never a browser request, so cross-origin protection lets it
//     through; browsers cannot attach it to a forged request.
//
// Every route but the open ones (routes.go) goes through a guard made by requireUser or
// requireSession, which also records the role it needs so that tests can walk every route.

var (
	errBadToken = &httpError{status: http.StatusUnauthorized, code: "invalid_token",
		msg: "This API token is not valid: it was revoked, or its user is disabled."}
	errSessionOnly = &httpError{status: http.StatusForbidden, code: "session_required",
		msg: "API tokens cannot manage accounts; sign in with a password to do this."}
)

type authKey struct{}

// auth is the signed-in state of a request: a session or an API token, and its user.
type auth struct {
	session db.Session // zero when authenticated by an API token
	tokenID int64      // the API token's id; 0 for a session
	user    db.User
	token   string // the cookie's session token or the bearer token, to re-check it later
}

// viaToken reports whether the request was authenticated by an API token.
func (a *auth) viaToken() bool { return a.tokenID != 0 }

// guard lets a request through only with credentials whose user has at least role need.
type guard struct {
	s           *Server
	need        db.Role
	sessionOnly bool // refuse API tokens: the action is for people signed in with a password
	next        http.HandlerFunc
}

// requireUser guards h: it needs a session or an API token of a user with at least role need.
// Browsers without credentials are sent to the sign-in page; scripts get 401 JSON.
func (s *Server) requireUser(need db.Role, h http.HandlerFunc) http.Handler {
	return &guard{s: s, need: need, next: h}
}

// requireSession guards h like requireUser but refuses API tokens: changing passwords, creating
// tokens and managing users need a person signed in with a password, so that a leaked token
// cannot mint more tokens or take over an account.
func (s *Server) requireSession(need db.Role, h http.HandlerFunc) http.Handler {
	return &guard{s: s, need: need, sessionOnly: true, next: h}
}

// ServeHTTP checks the request's credentials and role, then calls the guarded handler.
func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := g.s

	// A bearer token wins over a cookie; a bad one is refused outright, never retried as a
	// session, so a script learns at once that its token no longer works.
	var a *auth
	if token, ok := bearerToken(r); ok {
		if a, ok = s.authenticateToken(r, token); !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="plaudhook", error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{
				"error": errBadToken.msg, "code": errBadToken.code})
			return
		}
		if g.sessionOnly {
			s.respondError(w, r, errSessionOnly)
			return
		}
	} else if a, ok = s.authenticateSession(r); !ok {
		s.unauthenticated(w, r)
		return
	}

	// The role is read from the database on every request, so a change applies at once.
	if !a.user.Role.Allows(g.need) {
		s.respondError(w, r.WithContext(context.WithValue(r.Context(), authKey{}, a)),
			errForbidden)
		return
	}
	g.next(w, r.WithContext(context.WithValue(r.Context(), authKey{}, a)))
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// unauthenticated answers a request without credentials: 401 JSON for scripts and event
// streams (an EventSource cannot follow a redirect to a page), a redirect to the sign-in page
// (coming back here afterwards) for browsers.
func (s *Server) unauthenticated(w http.ResponseWriter, r *http.Request) {
	stream := strings.HasSuffix(r.URL.Path, "/stream") ||
		strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	if wantsJSON(r) || stream {
		w.Header().Set("WWW-Authenticate", `Bearer realm="plaudhook"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{
			"error": "sign in or send an API token", "code": "unauthenticated"})
		return
	}
	next := r.URL.RequestURI()
	if r.Method != http.MethodGet {
		next = "/" // a form post cannot be resumed by a redirect
	}
	http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
}

// renderStatus writes a templ component as an HTML response with a status other than 200.
func (s *Server) renderStatus(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := c.Render(r.Context(), w); err != nil {
		s.log.Error("render page", "error", err, slogRequest(r))
	}
}

// auditCrossOrigin records a state-changing request refused as cross-origin, naming the user
// whose browser was made to send it when its session cookie came along.
func (s *Server) auditCrossOrigin(r *http.Request) {
	if a, ok := s.authenticateSession(r); ok {
		r = r.WithContext(context.WithValue(r.Context(), authKey{}, a))
	}
	detail := "Origin " + r.Header.Get("Origin") + ", Sec-Fetch-Site " +
		r.Header.Get("Sec-Fetch-Site")
	if len(detail) > 200 {
		detail = detail[:200]
	}
	s.audit(r, "csrf.blocked", r.Method+" "+r.URL.Path, detail)
}

// originScheme closes the gap http.CrossOriginProtection leaves open on purpose: when a browser
// sends no Sec-Fetch-Site (those older than 2023), it compares the Origin with the Host only,
// so a page on http://dashboard could post to https://dashboard. When this server knows it is
// reached over https (TLS here, or an https base URL), an Origin naming another scheme is
// refused like any cross-site request. Behind a TLS proxy without a configured base URL the
// scheme is unknown and only the standard check applies. Webhook endpoints stay exempt.
func (s *Server) originScheme(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.schemeMismatch(r) {
			s.log.Warn("cross-origin request refused: origin scheme differs", slogRequest(r))
			s.auditCrossOrigin(r)
			s.respondError(w, r, errForbiddenCrossOrigin)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// schemeMismatch reports whether a state-changing browser request without Sec-Fetch-Site
// carries an Origin that is not https while this server is known to be served over https.
func (s *Server) schemeMismatch(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	if strings.HasPrefix(r.URL.Path, "/webhook") || r.Header.Get("Sec-Fetch-Site") != "" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" || !(r.TLS != nil || s.cfg.SecureCookies) {
		return false
	}
	o, err := url.Parse(origin)
	return err != nil || o.Scheme != "https"
}
