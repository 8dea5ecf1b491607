package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/plaudhook/plaudhook/db"
)

// sessionKeyPair is the size of one stored cookie key pair: a 64-byte hash key (HMAC-SHA256)
// and a 32-byte block key (AES-256), as serve's sessionKeys reads them.
const sessionKeyPair = 64 + 32

var sessionCommands = commandGroup{name: "session", subs: []subcommand{
	{"rotate-keys", "replace the cookie signing keys (restart the server to use them)", []string{"keep"}},
}}

// runSession is `plaudhook session rotate-keys`: replace the cookie signing keys.
func runSession(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, rest, err := sessionCommands.pick(args, stderr)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("session rotate-keys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", envOr("PLAUDHOOK_DB", defaultConfig().DB), "SQLite database file (PLAUDHOOK_DB)")
	keep := fs.Int("keep", 1, "previous key pairs to keep accepting (0 signs everybody out)")
	if err := sessionCommands.parse(fs, s, rest, stderr); err != nil {
		return err
	}
	if *keep < 0 {
		return fmt.Errorf("--keep must be 0 or more")
	}
	d, err := db.Open(ctx, *dbPath, db.Options{})
	if err != nil {
		return err
	}
	defer d.Close()

	kept, err := rotateSessionKeys(ctx, d, *keep)
	if err != nil {
		return err
	}
	cliAudit(ctx, d, stderr, "session.rotate_keys", "session cookie keys",
		fmt.Sprintf("new key pair; %d previous kept", kept))
	fmt.Fprintf(stdout, "new session key pair stored; %d previous pair(s) still accepted\n", kept)
	fmt.Fprintln(stdout, "restart plaudhook serve to sign new cookies with it")
	if kept == 0 {
		fmt.Fprintln(stdout, "no previous pair kept: every signed-in user must sign in again")
	}
	return nil
}

// rotateSessionKeys puts a new random key pair first (it signs new cookies) and keeps at most
// keep of the previous pairs after it (they are still accepted, so current sessions survive).
// It returns how many previous pairs were kept.
func rotateSessionKeys(ctx context.Context, d *db.DB, keep int) (int, error) {
	old, err := d.FindSetting(ctx, "session_keys")
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return 0, fmt.Errorf("read session keys: %w", err)
	}
	kept := min(keep, len(old)/sessionKeyPair)

	v := make([]byte, sessionKeyPair, sessionKeyPair*(1+kept))
	rand.Read(v)
	v = append(v, old[:kept*sessionKeyPair]...)
	if err := d.UpdateSetting(ctx, "session_keys", v); err != nil {
		return 0, fmt.Errorf("store session keys: %w", err)
	}
	return kept, nil
}
