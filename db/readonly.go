package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"
)

// OpenReadOnly opens an existing database file for reading only, beside a server that may be
// writing it: no migrations, no ingest writer, every connection in SQLite's read-only mode. It
// serves the load tool's check of what was stored and `plaudhook backup`. Writes through it
// fail; CreateDelivery answers ErrUnavailable.
func OpenReadOnly(ctx context.Context, path string) (*DB, error) {
	// A missing file is an error here, never a new empty database.
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open database read-only: %w", err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_busy_timeout", "5000")
	q.Set("_foreign_keys", "1")
	r, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database read-only: %w", err)
	}
	r.SetMaxOpenConns(4)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		return nil, fmt.Errorf("open database read-only: %w", err)
	}

	// No writer goroutine: the job queue is closed and the writer already "stopped", so Close
	// and CreateDelivery behave as on a closed database.
	db := &DB{Path: path, r: r, now: time.Now, jobs: make(chan *job),
		stopped: make(chan struct{}),
		log:     slog.New(slog.NewTextHandler(io.Discard, nil))}
	close(db.stopped)
	db.closeOnce.Do(func() { close(db.jobs) })
	return db, nil
}

// StoredBody is what FindStoredBodies reports for one event: the digest and length of the body
// bytes as stored, computed from the stored bytes themselves.
type StoredBody struct {
	SHA256 [32]byte
	Size   int
}

// FindStoredBodies returns, for each of ids that names a stored event, the SHA-256 and length of
// its stored body. Ids without an event are absent from the map. It lets the load tool and the
// crash test prove that every acknowledged delivery is on disk, byte for byte.
func (db *DB) FindStoredBodies(ctx context.Context, ids []int64) (map[int64]StoredBody, error) {
	out := make(map[int64]StoredBody, len(ids))

	// Ask in chunks, well under SQLite's limit on bound parameters.
	const chunk = 500
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		part := ids[:n]
		ids = ids[n:]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		rows, err := db.r.QueryContext(ctx, `
			SELECT v.id, b.body
			FROM events v
			JOIN delivery_bodies b ON b.delivery_id = v.body_delivery_id
			WHERE v.id IN (?`+strings.Repeat(",?", len(part)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("find stored bodies: %w", err)
		}
		for rows.Next() {
			var id int64
			var body []byte
			if err := rows.Scan(&id, &body); err != nil {
				rows.Close()
				return nil, fmt.Errorf("find stored bodies: %w", err)
			}
			out[id] = StoredBody{SHA256: sha256.Sum256(body), Size: len(body)}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("find stored bodies: %w", err)
		}
	}
	return out, nil
}
