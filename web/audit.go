package web

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
)

// auditPageStore is what the audit page needs from storage.
type auditPageStore interface {
	FindAuditEntries(ctx context.Context, f db.AuditFilter) ([]db.AuditEntry, int64, error)
}

// handleAuditIndex is the admin's audit log: newest first, filtered by who, action prefix and a
// range of days (UTC, both ends included).
func (s *Server) handleAuditIndex(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	props := views.AuditProps{
		Actor:  strings.TrimSpace(q.Get("actor")),
		Action: strings.TrimSpace(q.Get("action")),
		Since:  q.Get("since"),
		Until:  q.Get("until"),
	}
	f := db.AuditFilter{Actor: props.Actor, ActionPrefix: props.Action, Limit: 100}
	f.Before, _ = strconv.ParseInt(q.Get("before"), 10, 64)
	if props.Since != "" {
		t, err := time.Parse(time.DateOnly, props.Since)
		if err != nil {
			s.respondError(w, r, &db.ValidationError{Message: "From: want a date like 2026-01-31"})
			return
		}
		f.Since = &t
	}
	if props.Until != "" {
		t, err := time.Parse(time.DateOnly, props.Until)
		if err != nil {
			s.respondError(w, r, &db.ValidationError{Message: "To: want a date like 2026-01-31"})
			return
		}
		t = t.AddDate(0, 0, 1) // the whole day
		f.Until = &t
	}

	entries, next, err := s.store.FindAuditEntries(r.Context(), f)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	props.Entries, props.Next = entries, next
	s.render(w, r, views.AuditPage(s.page(r, "Audit log", "audit"), props))
}
