package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
)

var (
	errForbiddenCrossOrigin = &httpError{status: http.StatusForbidden, code: "cross_origin",
		msg: "This request came from another site and was refused."}
	errForbidden = &httpError{status: http.StatusForbidden, code: "forbidden",
		msg: "Your role does not allow this."}
	errBadID = &httpError{status: http.StatusNotFound, code: "not_found", msg: "No such page."}
)

// httpError is an error with the status and user-safe message to answer it with.
type httpError struct {
	status int
	code   string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// statusOf maps an error to a status code, a machine code and a message safe to show.
func statusOf(err error) (int, string, string) {
	var he *httpError
	var ve *db.ValidationError
	switch {
	case errors.As(err, &he):
		return he.status, he.code, he.msg
	case errors.Is(err, db.ErrNotFound):
		return http.StatusNotFound, "not_found", "Not found."
	case errors.As(err, &ve):
		return http.StatusUnprocessableEntity, "invalid", ve.Message
	case errors.Is(err, db.ErrConflict):
		return http.StatusConflict, "conflict", "That conflicts with something already stored."
	case errors.Is(err, db.ErrUnavailable):
		return http.StatusServiceUnavailable, "unavailable",
			"Storage is unavailable; try again shortly."
	}
	return http.StatusInternalServerError, "internal", "Something went wrong; the details are in the server log."
}

// respondError is the one place errors become responses: JSON for the API and webhooks, a
// fragment for htmx requests, a full page for browsers. Details of 5xx go to the log only.
func (s *Server) respondError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := statusOf(err)
	if status >= 500 {
		s.log.Error("request failed", "status_code", status, "error", err, slogRequest(r))
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "30")
	}
	switch {
	case wantsJSON(r):
		writeJSON(w, status, map[string]string{"error": msg, "code": code})
	case r.Header.Get("HX-Request") == "true":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		views.ErrorFragment(msg).Render(r.Context(), w)
	default:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		views.ErrorPage(s.page(r, http.StatusText(status), ""), status, msg).Render(r.Context(), w)
	}
}

// wantsJSON reports whether the caller is a script rather than a browser page.
func wantsJSON(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/webhook")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// slogRequest groups the request details logged with a message.
func slogRequest(r *http.Request) slog.Attr {
	return slog.Group("request", "method", r.Method, "path", r.URL.Path,
		"remote_addr", r.RemoteAddr)
}
