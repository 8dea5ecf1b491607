package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// BulkFilter selects the events a bulk replay sends. Nil fields are unset.
type BulkFilter struct {
	EndpointID *int64
	EventType  *string
	From, To   *time.Time // first receipt in [From, To)
}

// where returns the SQL condition (on events aliased v) and its arguments.
func (f BulkFilter) where() (string, []any) {
	conds := []string{"1"}
	var args []any
	if f.EndpointID != nil {
		conds = append(conds, "v.endpoint_id = ?")
		args = append(args, *f.EndpointID)
	}
	if f.EventType != nil {
		conds = append(conds, "v.event_type = ?")
		args = append(args, *f.EventType)
	}
	if f.From != nil {
		conds = append(conds, "v.first_received_at >= ?")
		args = append(args, micros(*f.From))
	}
	if f.To != nil {
		conds = append(conds, "v.first_received_at < ?")
		args = append(args, micros(*f.To))
	}
	return strings.Join(conds, " AND "), args
}

// BulkState is where a bulk replay stands.
type BulkState string

// The bulk replay states.
const (
	BulkRunning   BulkState = "running"
	BulkCancelled BulkState = "cancelled"
	BulkDone      BulkState = "done"
)

// BulkJob is one bulk replay: the events matching Filter (up to LastEventID, fixed when it was
// created) sent to URL at Rate per second, Concurrency at a time.
type BulkJob struct {
	ID          int64
	Actor       string
	ActorID     int64
	TargetID    int64 // 0 for a one-off URL or a deleted target
	URL         string
	Mode        ReplayMode // original or resign
	Scheme      string
	Secret      string // which secret signs a resign: "target" or an endpoint secret's label
	Filter      BulkFilter
	Rate        float64 // requests per second
	Concurrency int
	State       BulkState
	Total       int // events matching when the job was created
	Done        int // events handled so far, failures included
	Failed      int // handled events that did not get a 2xx
	LastEventID int64
	Cursor      int64 // every matching event with an id up to Cursor has been handled
	CreatedAt   time.Time
	UpdatedAt   time.Time
	FinishedAt  time.Time // zero while running
}

// CountBulkEvents returns how many stored events f matches.
func (db *DB) CountBulkEvents(ctx context.Context, f BulkFilter) (int, error) {
	where, args := f.where()
	var n int
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM events v WHERE `+where, args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// FindBulkEvents returns up to limit events matching f with ids in (after, upTo] (upTo 0: no
// bound), oldest first. With jobID set, events that already have an attempt of that job are
// left out, so a resumed job never resends what it sent before a restart.
func (db *DB) FindBulkEvents(ctx context.Context, f BulkFilter, jobID, after, upTo int64, limit int) ([]Event, error) {
	where, args := f.where()
	where += " AND v.id > ?"
	args = append(args, after)
	if upTo > 0 {
		where += " AND v.id <= ?"
		args = append(args, upTo)
	}
	if jobID > 0 {
		where += ` AND NOT EXISTS (SELECT 1 FROM attempts a
			WHERE a.bulk_job_id = ? AND a.event_id = v.id)`
		args = append(args, jobID)
	}
	args = append(args, limit)
	rows, err := db.r.QueryContext(ctx, `SELECT `+eventColumns+`
		FROM events v
		JOIN endpoints e ON e.id = v.endpoint_id
		WHERE `+where+`
		ORDER BY v.id
		LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("find bulk events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		v, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("find bulk events: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find bulk events: %w", err)
	}
	return out, nil
}

// CreateBulkJob counts the events j.Filter matches, fixes the newest one as the job's end, and
// stores the job as running; it sets j's ID, Total, LastEventID and times. It returns a
// *ValidationError when nothing matches.
func (db *DB) CreateBulkJob(ctx context.Context, j *BulkJob) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create bulk job: %w", unavailable(err))
	}
	defer tx.Rollback()

	// Count and bound in the same transaction, so events arriving later are not part of it.
	where, args := j.Filter.where()
	var last sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT count(*), max(v.id) FROM events v WHERE `+where,
		args...).Scan(&j.Total, &last)
	if err != nil {
		return fmt.Errorf("create bulk job: %w", err)
	}
	if j.Total == 0 {
		return &ValidationError{Message: "No stored event matches this filter."}
	}
	j.LastEventID = last.Int64

	// Store it.
	now := db.now()
	j.State, j.CreatedAt, j.UpdatedAt = BulkRunning, fromMicros(micros(now)), fromMicros(micros(now))
	var from, to any
	if j.Filter.From != nil {
		from = micros(*j.Filter.From)
	}
	if j.Filter.To != nil {
		to = micros(*j.Filter.To)
	}
	err = tx.QueryRowContext(ctx, `
		INSERT INTO bulk_jobs (actor, actor_id, target_id, url, mode, scheme, secret, endpoint_id,
			event_type, received_from, received_to, rate, concurrency, state, total,
			last_event_id, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)
		RETURNING id`,
		j.Actor, nullID(j.ActorID), nullID(j.TargetID), j.URL, j.Mode, j.Scheme, j.Secret,
		j.Filter.EndpointID, j.Filter.EventType, from, to, j.Rate, j.Concurrency, j.Total,
		j.LastEventID, micros(now), micros(now)).Scan(&j.ID)
	if err != nil {
		return fmt.Errorf("create bulk job: %w", conflict(unavailable(err)))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create bulk job: %w", unavailable(err))
	}
	return nil
}

const bulkColumns = `id, actor, coalesce(actor_id, 0), coalesce(target_id, 0), url, mode, scheme,
	secret, endpoint_id, event_type, received_from, received_to, rate, concurrency, state, total,
	done, failed, last_event_id, cursor, created_at, updated_at, coalesce(finished_at, 0)`

func scanBulkJob(s interface{ Scan(...any) error }) (BulkJob, error) {
	var j BulkJob
	var endpoint, from, to sql.NullInt64
	var typ sql.NullString
	var created, updated, finished int64
	err := s.Scan(&j.ID, &j.Actor, &j.ActorID, &j.TargetID, &j.URL, &j.Mode, &j.Scheme,
		&j.Secret, &endpoint, &typ, &from, &to, &j.Rate, &j.Concurrency, &j.State, &j.Total,
		&j.Done, &j.Failed, &j.LastEventID, &j.Cursor, &created, &updated, &finished)
	if err != nil {
		return j, err
	}
	if endpoint.Valid {
		j.Filter.EndpointID = &endpoint.Int64
	}
	if typ.Valid {
		j.Filter.EventType = &typ.String
	}
	if from.Valid {
		t := fromMicros(from.Int64)
		j.Filter.From = &t
	}
	if to.Valid {
		t := fromMicros(to.Int64)
		j.Filter.To = &t
	}
	j.CreatedAt, j.UpdatedAt = fromMicros(created), fromMicros(updated)
	if finished > 0 {
		j.FinishedAt = fromMicros(finished)
	}
	return j, nil
}

// FindBulkJobByID returns one bulk job, or ErrNotFound.
func (db *DB) FindBulkJobByID(ctx context.Context, id int64) (BulkJob, error) {
	row := db.r.QueryRowContext(ctx, `SELECT `+bulkColumns+` FROM bulk_jobs WHERE id = ?`, id)
	j, err := scanBulkJob(row)
	if errors.Is(err, sql.ErrNoRows) {
		return j, fmt.Errorf("bulk job %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return j, fmt.Errorf("find bulk job %d: %w", id, err)
	}
	return j, nil
}

// FindBulkJobs returns the newest limit jobs, or only those in state when it is not "".
func (db *DB) FindBulkJobs(ctx context.Context, state BulkState, limit int) ([]BulkJob, error) {
	q := `SELECT ` + bulkColumns + ` FROM bulk_jobs`
	var args []any
	if state != "" {
		q += ` WHERE state = ?`
		args = append(args, state)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find bulk jobs: %w", err)
	}
	defer rows.Close()
	var out []BulkJob
	for rows.Next() {
		j, err := scanBulkJob(rows)
		if err != nil {
			return nil, fmt.Errorf("find bulk jobs: %w", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find bulk jobs: %w", err)
	}
	return out, nil
}

// RecordBulkTry stores the attempt a of job jobID (setting its ID) and counts it as done, and
// as failed unless it got a 2xx, in one transaction.
func (db *DB) RecordBulkTry(ctx context.Context, jobID int64, a *Attempt) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record bulk try: %w", unavailable(err))
	}
	defer tx.Rollback()

	a.BulkJobID = jobID
	if err := insertAttempt(ctx, tx, a); err != nil {
		return err
	}
	failed := 0
	if !a.OK() {
		failed = 1
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE bulk_jobs SET done = done + 1, failed = failed + ?, updated_at = ? WHERE id = ?`,
		failed, micros(db.now()), jobID); err != nil {
		return fmt.Errorf("record bulk try: %w", unavailable(err))
	}

	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record bulk try: %w", unavailable(err))
	}
	return nil
}

// UpdateBulkCursor records that every event of the job up to cursor has been handled.
func (db *DB) UpdateBulkCursor(ctx context.Context, id, cursor int64) error {
	_, err := db.w.ExecContext(ctx,
		`UPDATE bulk_jobs SET cursor = max(cursor, ?), updated_at = ? WHERE id = ?`,
		cursor, micros(db.now()), id)
	if err != nil {
		return fmt.Errorf("update bulk job %d: %w", id, unavailable(err))
	}
	return nil
}

// FinishBulkJob moves a running job to state (done or cancelled). It returns ErrNotFound when
// there is no such job and a *ValidationError when it had already finished.
func (db *DB) FinishBulkJob(ctx context.Context, id int64, state BulkState) error {
	now := micros(db.now())
	res, err := db.w.ExecContext(ctx, `
		UPDATE bulk_jobs SET state = ?, finished_at = ?, updated_at = ?
		WHERE id = ? AND state = 'running'`, state, now, now, id)
	if err != nil {
		return fmt.Errorf("finish bulk job %d: %w", id, unavailable(err))
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	if _, err := db.FindBulkJobByID(ctx, id); err != nil {
		return err
	}
	return &ValidationError{Message: "This bulk replay has already finished."}
}
