package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/plaudhook/plaudhook/db"
)

// runBackup is `plaudhook backup FILE`: a consistent copy of the database, taken while the server
// runs, then checked (integrity and counts) before it is reported done.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("db", envOr("PLAUDHOOK_DB", "./data/plaudhook.db"), "the database to copy (PLAUDHOOK_DB)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: plaudhook backup [--db PATH] FILE\n\nWrites a consistent copy of the database to FILE (which must not exist) while the\nserver keeps running, then checks the copy.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("backup: want exactly one FILE")
	}
	dst := fs.Arg(0)

	// Copy from a read-only handle: the running server is never blocked or changed.
	src, err := db.OpenReadOnly(ctx, *path)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := src.Backup(ctx, dst); err != nil {
		return err
	}

	// Check the copy before calling it a backup.
	cp, err := db.OpenReadOnly(ctx, dst)
	if err != nil {
		return fmt.Errorf("check backup: %w", err)
	}
	defer cp.Close()
	verdict, err := cp.IntegrityCheck(ctx)
	if err != nil {
		return fmt.Errorf("check backup: %w", err)
	}
	if verdict != "ok" {
		return fmt.Errorf("check backup: integrity_check says %q", verdict)
	}
	n, err := cp.CountRecords(ctx)
	if err != nil {
		return fmt.Errorf("check backup: %w", err)
	}
	st, _ := os.Stat(dst)
	fmt.Fprintf(stdout, "backup written to %s (%d bytes): %d events, %d deliveries (%d rejected); integrity ok\n",
		dst, st.Size(), n.Events, n.Deliveries, n.Rejected)
	fmt.Fprintln(stdout, "the master key is not in the copy: keep it (PLAUDHOOK_MASTER_KEY, or master-key beside the database) with your backups, or stored secrets cannot be read")
	return nil
}
