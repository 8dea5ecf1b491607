package web

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/plaudhook/plaudhook/db"
)

// tokenStore is what API tokens need from storage.
type tokenStore interface {
	CreateToken(ctx context.Context, userID int64, label, token string) (db.Token, error)
	FindTokens(ctx context.Context, userID int64) ([]db.Token, error)
	FindTokenByToken(ctx context.Context, token string) (db.Token, db.User, error)
	TouchToken(ctx context.Context, id int64) error
	DeleteToken(ctx context.Context, id, userID int64) (db.Token, error)
}

// APITokenPrefix starts every API token, so that a leaked one is easy to recognise (and to
// search for in code and logs).
const APITokenPrefix = "ph_"

// NewAPIToken returns a new random API token: APITokenPrefix and 32 random bytes. Only its hash
// is ever stored.
func NewAPIToken() string { return APITokenPrefix + randomToken() }

// authenticateToken checks a bearer token: it must exist and its user must not be disabled.
func (s *Server) authenticateToken(r *http.Request, token string) (*auth, bool) {
	t, u, err := s.store.FindTokenByToken(r.Context(), token)
	if err != nil {
		if !errors.Is(err, db.ErrNotFound) {
			s.log.Error("find API token", "error", err, slogRequest(r))
		}
		return nil, false
	}
	if u.Disabled {
		return nil, false
	}

	// Record use at most once a minute, like sessions.
	if s.now().Sub(t.LastUsedAt) > time.Minute {
		if err := s.store.TouchToken(r.Context(), t.ID); err != nil {
			s.log.Warn("touch API token", "error", err)
		}
	}
	return &auth{tokenID: t.ID, user: u, token: token}, true
}

// handleTokenCreate creates an API token for the signed-in user. The token is shown once, on
// the account page this redirects to, and never again.
func (s *Server) handleTokenCreate(w http.ResponseWriter, r *http.Request) {
	a := r.Context().Value(authKey{}).(*auth)
	label := r.PostFormValue("label")

	token := NewAPIToken()
	t, err := s.store.CreateToken(r.Context(), a.user.ID, label, token)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	s.audit(r, "token.create", "token "+t.Prefix+"… of "+a.user.Username, "label "+t.Label)

	// Hand the token to the next page load of this session only (POST/redirect/GET): it never
	// travels in a URL or a cookie, and is not kept once shown.
	s.team.reveals.put(a.session.ID, t.ID, token, s.now())
	http.Redirect(w, r, "/account#tokens", http.StatusSeeOther)
}

// handleTokenRevoke revokes one of the signed-in user's tokens; it stops working at once.
func (s *Server) handleTokenRevoke(w http.ResponseWriter, r *http.Request) {
	a := r.Context().Value(authKey{}).(*auth)
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	t, err := s.store.DeleteToken(r.Context(), id, a.user.ID)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	s.audit(r, "token.revoke", "token "+t.Prefix+"… of "+a.user.Username, "label "+t.Label)
	http.Redirect(w, r, "/account?flash=token-revoked#tokens", http.StatusSeeOther)
}

// revealTTL is how long a new token waits to be shown before it is dropped unseen.
const revealTTL = 5 * time.Minute

// tokenReveals holds each session's newly created API token until its page shows it once. Its
// zero value is ready to use.
type tokenReveals struct {
	mu sync.Mutex
	m  map[int64]tokenReveal // by session id; guarded by mu
}

type tokenReveal struct {
	tokenID int64
	token   string
	at      time.Time
}

// put keeps token for the next page of sessionID, replacing any unseen one.
func (t *tokenReveals) put(sessionID, tokenID int64, token string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[int64]tokenReveal{}
	}
	for id, v := range t.m {
		if now.Sub(v.at) > revealTTL {
			delete(t.m, id)
		}
	}
	t.m[sessionID] = tokenReveal{tokenID: tokenID, token: token, at: now}
}

// take returns and forgets the token waiting for sessionID, if any.
func (t *tokenReveals) take(sessionID int64, now time.Time) (tokenReveal, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[sessionID]
	delete(t.m, sessionID)
	if !ok || now.Sub(v.at) > revealTTL {
		return tokenReveal{}, false
	}
	return v, true
}
