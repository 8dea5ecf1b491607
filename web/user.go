package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
)

// userStore is what the account page and the admin's user page need from storage.
type userStore interface {
	FindUsers(ctx context.Context) ([]db.User, error)
	FindUserByID(ctx context.Context, id int64) (db.User, error)
	CreateUser(ctx context.Context, username, passwordHash string, role db.Role) (db.User, error)
	UpdateUserPassword(ctx context.Context, userID int64, hash string, keepSessionID int64) error
	UpdateUserDisabled(ctx context.Context, userID int64, disabled bool) error
	UpdateUserRole(ctx context.Context, userID int64, role db.Role) error
}

// flashes are the one-time notices a redirect may ask for by code (?flash=...). Only these fixed
// texts are ever shown, so a link cannot put words on the page.
var flashes = map[string]string{
	"password-changed": "Your password was changed. Your other sessions were signed out.",
	"token-revoked":    "The token was revoked: it no longer works.",
	"user-created":     "User added.",
	"role-changed":     "Role changed; the user was signed out of their sessions.",
	"user-disabled":    "User disabled: their sessions ended and their API tokens stopped working.",
	"user-enabled":     "User enabled.",
	"password-reset":   "Password set; the user's sessions ended.",
}

// pageWithFlash is s.page plus the notice a redirect asked for.
func (s *Server) pageWithFlash(r *http.Request, title, nav string) views.Page {
	p := s.page(r, title, nav)
	p.Flash = flashes[r.URL.Query().Get("flash")]
	return p
}

// handleAccountView shows the signed-in user's account: password form and API tokens, with a
// token just created shown this once.
func (s *Server) handleAccountView(w http.ResponseWriter, r *http.Request) {
	a := r.Context().Value(authKey{}).(*auth)
	props := views.AccountProps{User: a.user}
	if v, ok := s.team.reveals.take(a.session.ID, s.now()); ok {
		props.NewToken, props.NewTokenID = v.token, v.tokenID
	}
	s.renderAccount(w, r, http.StatusOK, props)
}

// renderAccount renders the account page with the user's current tokens.
func (s *Server) renderAccount(w http.ResponseWriter, r *http.Request, status int,
	props views.AccountProps) {
	a := r.Context().Value(authKey{}).(*auth)
	tokens, err := s.store.FindTokens(r.Context(), a.user.ID)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	props.User, props.Tokens = a.user, tokens
	// The page may hold a token shown once: keep it out of every cache.
	s.renderStatus(w, r, status, views.AccountPage(s.pageWithFlash(r, "Your account", "account"),
		props))
}

// handlePasswordUpdate changes the signed-in user's password. It needs the current password
// (a wrong one counts as a failed sign-in for throttling), and ends the user's other sessions.
func (s *Server) handlePasswordUpdate(w http.ResponseWriter, r *http.Request) {
	a := r.Context().Value(authKey{}).(*auth)
	current := r.PostFormValue("current")
	password := r.PostFormValue("password")
	addr := remoteHost(r)

	// Check the current password, under the same throttle as sign-in.
	refuse := func(status int, msg string) {
		s.renderAccount(w, r, status, views.AccountProps{PasswordError: msg})
	}
	if wait, _ := s.team.logins.begin(addr, a.user.Username, s.now()); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		refuse(http.StatusTooManyRequests,
			"Too many wrong passwords. Wait "+humanWait(wait)+" and try again.")
		return
	}
	defer s.team.logins.end(addr, a.user.Username)
	if !checkPassword(a.user.PasswordHash, current) {
		s.team.logins.fail(addr, a.user.Username, s.now())
		s.audit(r, "password.failed", "user "+a.user.Username, "wrong current password")
		refuse(http.StatusUnprocessableEntity, "The current password is wrong.")
		return
	}
	if password != r.PostFormValue("confirm") {
		refuse(http.StatusUnprocessableEntity, "The two new passwords differ.")
		return
	}
	hash, err := HashPassword(password)
	if err != nil {
		refuse(http.StatusUnprocessableEntity, "The new "+err.Error()+".")
		return
	}

	// Store it and end every other session of this user.
	if err := s.store.UpdateUserPassword(r.Context(), a.user.ID, hash, a.session.ID); err != nil {
		s.respondError(w, r, err)
		return
	}
	s.endStreams(func(user int64, token string) bool { return user == a.user.ID && token != a.token })
	s.audit(r, "password.change", "user "+a.user.Username, "other sessions ended")
	http.Redirect(w, r, "/account?flash=password-changed", http.StatusSeeOther)
}

// handleUserIndex is the admin's user page.
func (s *Server) handleUserIndex(w http.ResponseWriter, r *http.Request) {
	s.renderUsers(w, r, http.StatusOK, views.UsersProps{Role: db.RoleViewer})
}

// renderUsers renders the user page with every user and their token counts.
func (s *Server) renderUsers(w http.ResponseWriter, r *http.Request, status int,
	props views.UsersProps) {
	a := r.Context().Value(authKey{}).(*auth)
	users, err := s.store.FindUsers(r.Context())
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	tokens, err := s.store.FindTokens(r.Context(), 0)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	props.Users, props.Self, props.Tokens = users, a.user.ID, map[int64]int{}
	for _, t := range tokens {
		props.Tokens[t.UserID]++
	}
	s.renderStatus(w, r, status, views.UsersPage(s.pageWithFlash(r, "Users", "users"), props))
}

// userError shows a refused user change on the user page (a 5xx goes to the error responder).
func (s *Server) userError(w http.ResponseWriter, r *http.Request, err error, props views.UsersProps) {
	status, _, msg := statusOf(err)
	if status >= 500 {
		s.respondError(w, r, err)
		return
	}
	if errors.Is(err, db.ErrConflict) {
		msg = "That username is taken."
	}
	props.Error = msg
	if props.Role == "" {
		props.Role = db.RoleViewer
	}
	s.renderUsers(w, r, status, props)
}

// handleUserCreate adds a user with a role and an initial password.
func (s *Server) handleUserCreate(w http.ResponseWriter, r *http.Request) {
	username := strings.TrimSpace(r.PostFormValue("username"))
	role := db.Role(r.PostFormValue("role"))
	props := views.UsersProps{Username: username, Role: role}
	if !role.Valid() {
		s.userError(w, r, &db.ValidationError{Message: "Choose viewer, operator or admin."}, props)
		return
	}
	hash, err := HashPassword(r.PostFormValue("password"))
	if err != nil {
		s.userError(w, r, err, props)
		return
	}

	u, err := s.store.CreateUser(r.Context(), username, hash, role)
	if err != nil {
		s.userError(w, r, err, props)
		return
	}
	s.audit(r, "user.create", "user "+u.Username, "role "+string(u.Role))
	http.Redirect(w, r, "/users?flash=user-created", http.StatusSeeOther)
}

// targetUser reads the {id} of a /users/{id}/... route.
func (s *Server) targetUser(r *http.Request) (db.User, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return db.User{}, errBadID
	}
	return s.store.FindUserByID(r.Context(), id)
}

// handleUserRole changes a user's role. The last enabled admin cannot be demoted.
func (s *Server) handleUserRole(w http.ResponseWriter, r *http.Request) {
	u, err := s.targetUser(r)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	role := db.Role(r.PostFormValue("role"))
	if err := s.store.UpdateUserRole(r.Context(), u.ID, role); err != nil {
		s.userError(w, r, err, views.UsersProps{})
		return
	}
	if role != u.Role {
		s.audit(r, "user.role", "user "+u.Username, fmt.Sprintf("%s → %s", u.Role, role))
	}
	http.Redirect(w, r, "/users?flash=role-changed", http.StatusSeeOther)
}

// handleUserDisable disables a user: their sessions end and their tokens stop at once.
func (s *Server) handleUserDisable(w http.ResponseWriter, r *http.Request) {
	s.setDisabled(w, r, true)
}

// handleUserEnable lets a disabled user sign in again (and their tokens work again).
func (s *Server) handleUserEnable(w http.ResponseWriter, r *http.Request) {
	s.setDisabled(w, r, false)
}

func (s *Server) setDisabled(w http.ResponseWriter, r *http.Request, disabled bool) {
	a := r.Context().Value(authKey{}).(*auth)
	u, err := s.targetUser(r)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	if disabled && u.ID == a.user.ID {
		s.userError(w, r, &db.ValidationError{Message: "You cannot disable yourself."},
			views.UsersProps{})
		return
	}
	if err := s.store.UpdateUserDisabled(r.Context(), u.ID, disabled); err != nil {
		s.userError(w, r, err, views.UsersProps{})
		return
	}
	if disabled {
		s.endStreams(func(user int64, _ string) bool { return user == u.ID })
	}
	action, flash := "user.enable", "user-enabled"
	if disabled {
		action, flash = "user.disable", "user-disabled"
	}
	s.audit(r, action, "user "+u.Username, "")
	http.Redirect(w, r, "/users?flash="+flash, http.StatusSeeOther)
}

// handleUserPassword sets a new password for a user (an admin's reset) and ends their sessions
// (all but the admin's own current one, when resetting their own).
func (s *Server) handleUserPassword(w http.ResponseWriter, r *http.Request) {
	a := r.Context().Value(authKey{}).(*auth)
	u, err := s.targetUser(r)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	hash, err := HashPassword(r.PostFormValue("password"))
	if err != nil {
		s.userError(w, r, err, views.UsersProps{})
		return
	}
	keep := int64(0)
	if u.ID == a.user.ID {
		keep = a.session.ID
	}
	if err := s.store.UpdateUserPassword(r.Context(), u.ID, hash, keep); err != nil {
		s.userError(w, r, err, views.UsersProps{})
		return
	}
	s.endStreams(func(user int64, token string) bool { return user == u.ID && (keep == 0 || token != a.token) })
	s.audit(r, "user.password_reset", "user "+u.Username, "sessions ended")
	http.Redirect(w, r, "/users?flash=password-reset", http.StatusSeeOther)
}
