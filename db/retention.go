package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Retention defaults, documented in the README.
const (
	// DefaultMaxRejected is how many rejected deliveries are kept.
	DefaultMaxRejected = 10000
	// DefaultMaxRejectedBytes bounds the stored bytes (bodies and headers) of rejected
	// deliveries.
	DefaultMaxRejectedBytes = 256 << 20
	// pruneBatch is how many rows one pruning transaction deletes: small enough that the ingest
	// writer, which shares the one write connection, waits at most a few milliseconds.
	pruneBatch = 200
)

// PruneResult says what one pruning pass deleted.
type PruneResult struct {
	Events   int64 // events (with all their deliveries) past the age or per-endpoint limit
	Rejected int64 // rejected deliveries past the age, count or bytes limit
}

// Prune applies the retention policy of Options once: events whose last delivery is older than
// RetainDays, events beyond the newest RetainPerEndpoint of each endpoint, and rejected
// deliveries beyond the age, MaxRejected and MaxRejectedBytes. It deletes in transactions of a
// few hundred rows on the writer connection and gives the connection back between them, so
// ingest keeps committing while a large backlog is pruned.
func (db *DB) Prune(ctx context.Context) (PruneResult, error) {
	var res PruneResult
	o := db.opt

	// By age: events by their last delivery, rejected deliveries by arrival.
	if o.RetainDays > 0 {
		cutoff := micros(db.now().Add(-time.Duration(o.RetainDays) * 24 * time.Hour))
		n, err := db.pruneLoop(ctx, `
			DELETE FROM events WHERE id IN (
				SELECT id FROM events WHERE last_received_at < ? LIMIT ?)`, cutoff)
		res.Events += n
		if err != nil {
			return res, fmt.Errorf("prune events by age: %w", err)
		}
		n, err = db.pruneLoop(ctx, `
			DELETE FROM deliveries WHERE id IN (
				SELECT id FROM deliveries
				WHERE verdict = 'rejected' AND received_at < ? LIMIT ?)`, cutoff)
		res.Rejected += n
		if err != nil {
			return res, fmt.Errorf("prune rejected by age: %w", err)
		}
	}

	// By count per endpoint: everything older than the newest RetainPerEndpoint events.
	if o.RetainPerEndpoint > 0 {
		ids, err := db.endpointIDs(ctx)
		if err != nil {
			return res, err
		}
		for _, ep := range ids {
			cut, err := db.cutoffID(ctx, `
				SELECT id FROM events WHERE endpoint_id = ?
				ORDER BY id DESC LIMIT 1 OFFSET ?`, ep, o.RetainPerEndpoint)
			if err != nil || cut == 0 {
				if err != nil {
					return res, fmt.Errorf("prune endpoint %d: %w", ep, err)
				}
				continue
			}
			n, err := db.pruneLoop(ctx, `
				DELETE FROM events WHERE id IN (
					SELECT id FROM events WHERE endpoint_id = ? AND id <= ?
					ORDER BY id LIMIT ?)`, ep, cut)
			res.Events += n
			if err != nil {
				return res, fmt.Errorf("prune endpoint %d: %w", ep, err)
			}
		}
	}

	// Rejected deliveries: at most MaxRejected of them and MaxRejectedBytes of what they store.
	n, err := db.pruneRejectedBounds(ctx)
	res.Rejected += n
	return res, err
}

// pruneRejectedBounds deletes the oldest rejected deliveries beyond the count and bytes bounds.
func (db *DB) pruneRejectedBounds(ctx context.Context) (int64, error) {
	var total int64
	const deleteUpTo = `
		DELETE FROM deliveries WHERE id IN (
			SELECT id FROM deliveries WHERE verdict = 'rejected' AND id <= ?
			ORDER BY id LIMIT ?)`
	cut, err := db.cutoffID(ctx, `
		SELECT id FROM deliveries WHERE verdict = 'rejected'
		ORDER BY id DESC LIMIT 1 OFFSET ?`, db.opt.MaxRejected)
	if err != nil {
		return 0, fmt.Errorf("prune rejected by count: %w", err)
	}
	if cut > 0 {
		n, err := db.pruneLoop(ctx, deleteUpTo, cut)
		total += n
		if err != nil {
			return total, fmt.Errorf("prune rejected by count: %w", err)
		}
	}

	// The newest rejected deliveries whose running total of stored bytes stays within the
	// bound are kept; the first one past it and everything older goes.
	cut, err = db.cutoffID(ctx, `
		SELECT id FROM (
			SELECT d.id, sum(length(b.body) + length(CAST(d.headers AS BLOB)))
				OVER (ORDER BY d.id DESC) AS running
			FROM deliveries d
			JOIN delivery_bodies b ON b.delivery_id = d.id
			WHERE d.verdict = 'rejected')
		WHERE running > ?
		ORDER BY id DESC LIMIT 1`, db.opt.MaxRejectedBytes)
	if err != nil {
		return total, fmt.Errorf("prune rejected by bytes: %w", err)
	}
	if cut > 0 {
		n, err := db.pruneLoop(ctx, deleteUpTo, cut)
		total += n
		if err != nil {
			return total, fmt.Errorf("prune rejected by bytes: %w", err)
		}
	}
	return total, nil
}

// pruneLoop runs a DELETE whose last parameter is the batch size until it deletes nothing,
// one short transaction per batch.
func (db *DB) pruneLoop(ctx context.Context, query string, args ...any) (int64, error) {
	var total int64
	args = append(args, pruneBatch)
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		res, err := db.w.ExecContext(ctx, query, args...)
		if err != nil {
			return total, unavailable(err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < pruneBatch {
			return total, nil
		}

		// Let the ingest writer have the connection before the next batch.
		time.Sleep(time.Millisecond)
	}
}

// cutoffID runs a query for one id on the read pool; 0 when there is no row.
func (db *DB) cutoffID(ctx context.Context, query string, args ...any) (int64, error) {
	var id int64
	err := db.r.QueryRowContext(ctx, query, args...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return id, err
}

// endpointIDs lists every endpoint's id.
func (db *DB) endpointIDs(ctx context.Context) ([]int64, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id FROM endpoints ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list endpoints: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// RunRetention prunes now and then every interval (and soon after a flood of rejected
// deliveries) until ctx ends. Errors are logged and retried at the next interval.
func (db *DB) RunRetention(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 5 * time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		start := time.Now()
		res, err := db.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			db.log.Error("retention pass failed", "error", err)
		case res.Events > 0 || res.Rejected > 0:
			db.log.Info("retention pass", "events_deleted", res.Events,
				"rejected_deleted", res.Rejected, "duration_ms", time.Since(start).Milliseconds())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-db.kick:
		}
	}
}

// kickRetention asks RunRetention for an early pass; it never blocks.
func (db *DB) kickRetention() {
	select {
	case db.kick <- struct{}{}:
	default:
	}
}
