package db

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// AuditEntry records who did what. Entries are append-only; the table refuses changes.
type AuditEntry struct {
	ID         int64
	At         time.Time
	Actor      string // username, or "system" / "cli"
	ActorID    int64  // 0 when no user acted
	Action     string // dotted verb, e.g. "login.failed", "secret.rotate"
	Target     string // what was acted on
	Detail     string // short human text; never a secret value
	RemoteAddr string
}

// AuditFilter selects audit entries. Empty fields are unset.
type AuditFilter struct {
	Actor        string
	ActionPrefix string     // e.g. "login." for every login entry
	Since        *time.Time // at or after
	Until        *time.Time // before
	Before       int64      // keyset cursor
	Limit        int
}

// CreateAuditEntry appends an entry; At defaults to the storage clock.
func (db *DB) CreateAuditEntry(ctx context.Context, e AuditEntry) error {
	if e.At.IsZero() {
		e.At = db.now()
	}
	var actorID any
	if e.ActorID != 0 {
		actorID = e.ActorID
	}
	_, err := db.w.ExecContext(ctx, `
		INSERT INTO audit (at, actor, actor_id, action, target, detail, remote_addr)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		micros(e.At), e.Actor, actorID, e.Action, e.Target, e.Detail, e.RemoteAddr)
	if err != nil {
		return fmt.Errorf("create audit entry %s: %w", e.Action, unavailable(err))
	}
	return nil
}

// FindAuditEntries returns entries matching f, newest first, and the next page's cursor.
func (db *DB) FindAuditEntries(ctx context.Context, f AuditFilter) ([]AuditEntry, int64, error) {
	var where []string
	var args []any
	if f.Actor != "" {
		where = append(where, "actor = ?")
		args = append(args, f.Actor)
	}
	if f.ActionPrefix != "" {
		where = append(where, "action >= ? AND action < ?")
		args = append(args, f.ActionPrefix, f.ActionPrefix+"\uffff")
	}
	if f.Since != nil {
		where = append(where, "at >= ?")
		args = append(args, micros(*f.Since))
	}
	if f.Until != nil {
		where = append(where, "at < ?")
		args = append(args, micros(*f.Until))
	}
	if f.Before > 0 {
		where = append(where, "id < ?")
		args = append(args, f.Before)
	}
	// A time range also bounds the ids (entries are appended as they happen), so the page is
	// read by id from the range's end instead of testing every newer entry's time.
	if f.Since != nil || f.Until != nil {
		lo, hi, ok, err := db.idBounds(ctx, "audit", "at", f.Since, f.Until)
		if err != nil {
			return nil, 0, fmt.Errorf("find audit entries: %w", err)
		}
		if !ok {
			return nil, 0, nil
		}
		where = append(where, "id BETWEEN ? AND ?")
		args = append(args, lo, hi)
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	q := `SELECT id, at, actor, coalesce(actor_id, 0), action, target, detail, remote_addr FROM audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, f.Limit+1)

	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("find audit entries: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.ActorID, &e.Action, &e.Target, &e.Detail, &e.RemoteAddr); err != nil {
			return nil, 0, fmt.Errorf("find audit entries: %w", err)
		}
		e.At = fromMicros(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("find audit entries: %w", err)
	}
	var next int64
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = out[len(out)-1].ID
	}
	return out, next, nil
}
