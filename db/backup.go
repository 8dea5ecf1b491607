package db

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Backup writes a consistent copy of the database to dst while the server keeps writing: SQLite's
// VACUUM INTO reads one snapshot inside a read transaction, so the copy holds every transaction
// committed before it started and nothing of the ones after, and it never blocks the writer.
// The copy is written beside dst, synced to disk, then renamed into place, so dst is either
// absent or complete. It refuses to overwrite an existing dst.
func (db *DB) Backup(ctx context.Context, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("backup to %s: file exists", dst)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("backup to %s: %w", dst, err)
	}
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("backup folder: %w", err)
	}

	// Copy one snapshot into a temporary file beside the target. A read connection is enough:
	// VACUUM INTO only reads the source database.
	tmp := dst + ".partial"
	os.Remove(tmp)
	if _, err := db.r.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup to %s: %w", dst, err)
	}

	// The copy holds everything the database does (transcripts, encrypted secrets): readable by
	// its owner only, like the database folder.
	if err := os.Chmod(tmp, 0o600); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup to %s: %w", dst, err)
	}

	// VACUUM INTO does not sync its output: do it before the rename makes the copy visible.
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup to %s: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup to %s: %w", dst, err)
	}
	if err := syncFile(dir); err != nil {
		return fmt.Errorf("backup to %s: sync folder: %w", dst, err)
	}
	return nil
}

// syncFile fsyncs a file or folder.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return err
	}
	return nil
}

// Counts is a quick summary of what a database holds.
type Counts struct {
	Events     int64
	Deliveries int64
	Rejected   int64
}

// CountRecords counts events, deliveries and rejected deliveries.
func (db *DB) CountRecords(ctx context.Context) (Counts, error) {
	var c Counts
	err := db.r.QueryRowContext(ctx, `
		SELECT (SELECT count(*) FROM events),
			(SELECT count(*) FROM deliveries),
			(SELECT count(*) FROM deliveries WHERE verdict = 'rejected')`,
	).Scan(&c.Events, &c.Deliveries, &c.Rejected)
	if err != nil {
		return c, fmt.Errorf("count records: %w", err)
	}
	return c, nil
}
