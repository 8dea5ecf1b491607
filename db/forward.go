package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ForwardingRule forwards newly stored events to a target. A trigger on the events table queues
// them inside the ingest transaction, so an acknowledged event never misses its forward.
type ForwardingRule struct {
	ID         int64
	TargetID   int64
	TargetName string // filled by queries
	EndpointID int64  // 0: every endpoint
	Endpoint   string // endpoint slug, filled by queries ("" for every endpoint)
	EventTypes []string
	Mode       ReplayMode // original or resign
	Enabled    bool
	CreatedAt  time.Time
}

// ForwardState is where a queued forward stands.
type ForwardState string

// The forward states.
const (
	ForwardPending   ForwardState = "pending"
	ForwardDelivered ForwardState = "delivered"
	ForwardDead      ForwardState = "dead"
)

// Forward is one event queued for one target by a forwarding rule.
type Forward struct {
	ID            int64
	RuleID        int64 // 0 once the rule is deleted
	TargetID      int64
	TargetName    string // filled by queries
	EventID       int64
	EventType     string // filled by queries
	Mode          ReplayMode
	State         ForwardState
	Tries         int
	NextAt        time.Time
	LastAttemptID int64
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// CreateForwardingRule stores a rule and sets its ID. Only events stored afterwards are
// forwarded. It returns a *ValidationError for a bad mode or event type list and ErrConflict
// when the target or endpoint does not exist.
func (db *DB) CreateForwardingRule(ctx context.Context, r *ForwardingRule) error {
	if r.Mode != ModeOriginal && r.Mode != ModeResign {
		return &ValidationError{Message: "A forwarding rule's mode must be original or resign."}
	}
	for _, t := range r.EventTypes {
		if t == "" || strings.ContainsAny(t, ", ") {
			return &ValidationError{Message: "Event types are names separated by commas."}
		}
	}
	now := db.now()
	err := db.w.QueryRowContext(ctx, `
		INSERT INTO forwarding_rules (target_id, endpoint_id, event_types, mode, enabled, created_at)
		VALUES (?, ?, ?, ?, ?, ?)
		RETURNING id`,
		r.TargetID, nullID(r.EndpointID), strings.Join(r.EventTypes, ","), r.Mode, r.Enabled,
		micros(now)).Scan(&r.ID)
	if err != nil {
		return fmt.Errorf("create forwarding rule: %w", conflict(unavailable(err)))
	}
	r.CreatedAt = fromMicros(micros(now))
	return nil
}

// UpdateForwardingRuleEnabled switches a rule on or off. It returns ErrNotFound when there is
// no such rule.
func (db *DB) UpdateForwardingRuleEnabled(ctx context.Context, id int64, enabled bool) error {
	res, err := db.w.ExecContext(ctx,
		`UPDATE forwarding_rules SET enabled = ? WHERE id = ?`, enabled, id)
	if err != nil {
		return fmt.Errorf("update forwarding rule %d: %w", id, unavailable(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("forwarding rule %d: %w", id, ErrNotFound)
	}
	return nil
}

// DeleteForwardingRule removes a rule; forwards it queued stay in the queue. It returns
// ErrNotFound when there is no such rule.
func (db *DB) DeleteForwardingRule(ctx context.Context, id int64) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM forwarding_rules WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete forwarding rule %d: %w", id, unavailable(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("forwarding rule %d: %w", id, ErrNotFound)
	}
	return nil
}

// FindForwardingRules returns every rule, oldest first.
func (db *DB) FindForwardingRules(ctx context.Context) ([]ForwardingRule, error) {
	rows, err := db.r.QueryContext(ctx, `
		SELECT r.id, r.target_id, t.name, coalesce(r.endpoint_id, 0), coalesce(e.slug, ''),
			r.event_types, r.mode, r.enabled, r.created_at
		FROM forwarding_rules r
		JOIN targets t ON t.id = r.target_id
		LEFT JOIN endpoints e ON e.id = r.endpoint_id
		ORDER BY r.id`)
	if err != nil {
		return nil, fmt.Errorf("find forwarding rules: %w", err)
	}
	defer rows.Close()
	var out []ForwardingRule
	for rows.Next() {
		var r ForwardingRule
		var types string
		var created int64
		if err := rows.Scan(&r.ID, &r.TargetID, &r.TargetName, &r.EndpointID, &r.Endpoint,
			&types, &r.Mode, &r.Enabled, &created); err != nil {
			return nil, fmt.Errorf("find forwarding rules: %w", err)
		}
		if types != "" {
			r.EventTypes = strings.Split(types, ",")
		}
		r.CreatedAt = fromMicros(created)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find forwarding rules: %w", err)
	}
	return out, nil
}

const forwardColumns = `f.id, coalesce(f.rule_id, 0), f.target_id, t.name, f.event_id,
	v.event_type, f.mode, f.state, f.tries, f.next_at, coalesce(f.last_attempt_id, 0),
	f.last_error, f.created_at, f.updated_at`

const forwardFrom = `forward_queue f
		JOIN targets t ON t.id = f.target_id
		JOIN events v ON v.id = f.event_id`

func scanForward(s interface{ Scan(...any) error }) (Forward, error) {
	var f Forward
	var next, created, updated int64
	err := s.Scan(&f.ID, &f.RuleID, &f.TargetID, &f.TargetName, &f.EventID, &f.EventType,
		&f.Mode, &f.State, &f.Tries, &next, &f.LastAttemptID, &f.LastError, &created, &updated)
	f.NextAt, f.CreatedAt, f.UpdatedAt = fromMicros(next), fromMicros(created), fromMicros(updated)
	return f, err
}

// ForwardFilter selects queued forwards. Zero fields are unset.
type ForwardFilter struct {
	State   ForwardState
	EventID int64
	Before  int64 // keyset cursor: only ids below it
	Limit   int   // at most 500; 0 means 100
}

// FindForwards returns queued forwards matching f, newest first.
func (db *DB) FindForwards(ctx context.Context, f ForwardFilter) ([]Forward, error) {
	var where []string
	var args []any
	if f.State != "" {
		where = append(where, "f.state = ?")
		args = append(args, f.State)
	}
	if f.EventID != 0 {
		where = append(where, "f.event_id = ?")
		args = append(args, f.EventID)
	}
	if f.Before > 0 {
		where = append(where, "f.id < ?")
		args = append(args, f.Before)
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	q := `SELECT ` + forwardColumns + ` FROM ` + forwardFrom
	if len(where) > 0 {
		q += "\n\t\tWHERE " + strings.Join(where, " AND ")
	}
	q += "\n\t\tORDER BY f.id DESC LIMIT ?"
	args = append(args, f.Limit)
	return db.queryForwards(ctx, q, args...)
}

// FindDueForwards returns up to limit pending forwards whose time has come at now, the most
// overdue first.
func (db *DB) FindDueForwards(ctx context.Context, now time.Time, limit int) ([]Forward, error) {
	return db.queryForwards(ctx, `SELECT `+forwardColumns+` FROM `+forwardFrom+`
		WHERE f.state = 'pending' AND f.next_at <= ?
		ORDER BY f.next_at, f.id
		LIMIT ?`, micros(now), limit)
}

func (db *DB) queryForwards(ctx context.Context, q string, args ...any) ([]Forward, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find forwards: %w", err)
	}
	defer rows.Close()
	var out []Forward
	for rows.Next() {
		f, err := scanForward(rows)
		if err != nil {
			return nil, fmt.Errorf("find forwards: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find forwards: %w", err)
	}
	return out, nil
}

// NextForwardAt returns when the earliest pending forward falls due; false when none is pending.
func (db *DB) NextForwardAt(ctx context.Context) (time.Time, bool, error) {
	var next sql.NullInt64
	err := db.r.QueryRowContext(ctx,
		`SELECT min(next_at) FROM forward_queue WHERE state = 'pending'`).Scan(&next)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next forward: %w", err)
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	return fromMicros(next.Int64), true, nil
}

// CountForwards returns how many queued forwards are in each state.
func (db *DB) CountForwards(ctx context.Context) (map[ForwardState]int, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT state, count(*) FROM forward_queue GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count forwards: %w", err)
	}
	defer rows.Close()
	out := map[ForwardState]int{}
	for rows.Next() {
		var s ForwardState
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("count forwards: %w", err)
		}
		out[s] = n
	}
	return out, rows.Err()
}

// RecordForwardTry stores the attempt a (setting its ID) and the forward's new state, tries,
// next time and last error in one transaction, so the queue never disagrees with the attempt
// log. It returns ErrNotFound when the forward is gone (its event or target was deleted).
func (db *DB) RecordForwardTry(ctx context.Context, a *Attempt, f Forward) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record forward %d: %w", f.ID, unavailable(err))
	}
	defer tx.Rollback()

	// The attempt first, so the queue row can point at it.
	a.ForwardID = f.ID
	if err := insertAttempt(ctx, tx, a); err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `
		UPDATE forward_queue
		SET state = ?, tries = ?, next_at = ?, last_attempt_id = ?, last_error = ?, updated_at = ?
		WHERE id = ?`,
		f.State, f.Tries, micros(f.NextAt), a.ID, f.LastError, micros(db.now()), f.ID)
	if err != nil {
		return fmt.Errorf("record forward %d: %w", f.ID, unavailable(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("forward %d: %w", f.ID, ErrNotFound)
	}

	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record forward %d: %w", f.ID, unavailable(err))
	}
	return nil
}

// RetryForward puts a dead (or pending) forward back in the queue, due at once with a fresh
// retry schedule. It returns ErrNotFound when there is no such forward and a *ValidationError
// when it was already delivered.
func (db *DB) RetryForward(ctx context.Context, id int64) error {
	now := micros(db.now())
	res, err := db.w.ExecContext(ctx, `
		UPDATE forward_queue SET state = 'pending', tries = 0, next_at = ?, updated_at = ?
		WHERE id = ? AND state != 'delivered'`, now, now, id)
	if err != nil {
		return fmt.Errorf("retry forward %d: %w", id, unavailable(err))
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}

	// Nothing changed: say whether it is missing or already delivered.
	var state string
	err = db.r.QueryRowContext(ctx, `SELECT state FROM forward_queue WHERE id = ?`, id).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("forward %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("retry forward %d: %w", id, err)
	}
	return &ValidationError{Message: "This forward was already delivered; replay the event instead."}
}
