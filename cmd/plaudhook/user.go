package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web"
)

var userCommands = commandGroup{name: "user", subs: []subcommand{
	{"add", "add a user (the password is read from standard input)", []string{"username", "role"}},
	{"passwd", "set a user's password (from standard input) and end their sessions", []string{"username"}},
	{"role", "change a user's role", []string{"username", "role"}},
	{"disable", "stop a user signing in; their sessions end", []string{"username"}},
	{"enable", "let a disabled user sign in again", []string{"username"}},
	{"list", "list users, roles and states", nil},
}}

// runUser is `plaudhook user add|passwd|role|disable|enable|list`. Every change is recorded in
// the audit log with the actor "cli".
func runUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	s, args, err := userCommands.pick(args, stderr)
	if err != nil {
		return err
	}
	sub := s.name
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", envOr("PLAUDHOOK_DB", defaultConfig().DB), "SQLite database file (PLAUDHOOK_DB)")
	username := fs.String("username", "", "user name")
	role := fs.String("role", "viewer", "viewer, operator or admin (role: required)")
	if err := userCommands.parse(fs, s, args, stderr); err != nil {
		return err
	}
	d, err := db.Open(ctx, *dbPath, db.Options{})
	if err != nil {
		return err
	}
	defer d.Close()

	if sub == "list" {
		users, err := d.FindUsers(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tROLE\tSTATE\tCREATED")
		for _, u := range users {
			state := "active"
			if u.Disabled {
				state = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Username, u.Role, state, u.CreatedAt.Format("2006-01-02"))
		}
		return tw.Flush()
	}
	if *username == "" {
		return fmt.Errorf("--username is required")
	}
	switch sub {
	case "add":
		hash, err := readPassword(stdin, stdout)
		if err != nil {
			return err
		}
		u, err := d.CreateUser(ctx, *username, hash, db.Role(*role))
		if err != nil {
			return err
		}
		cliAudit(ctx, d, stderr, "user.create", "user "+u.Username, "role "+string(u.Role))
		fmt.Fprintf(stdout, "created %s (%s)\n", u.Username, u.Role)
	case "passwd":
		u, err := d.FindUserByUsername(ctx, *username)
		if err != nil {
			return err
		}
		hash, err := readPassword(stdin, stdout)
		if err != nil {
			return err
		}
		if err := d.UpdateUserPassword(ctx, u.ID, hash, 0); err != nil {
			return err
		}
		cliAudit(ctx, d, stderr, "user.password_reset", "user "+u.Username, "sessions ended")
		fmt.Fprintf(stdout, "password of %s changed; their sessions have ended\n", u.Username)
	case "disable", "enable":
		u, err := d.FindUserByUsername(ctx, *username)
		if err != nil {
			return err
		}
		if err := d.UpdateUserDisabled(ctx, u.ID, sub == "disable"); err != nil {
			return err
		}
		cliAudit(ctx, d, stderr, "user."+sub, "user "+u.Username, "")
		fmt.Fprintf(stdout, "%sd %s\n", sub, u.Username)
	case "role":
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "role" })
		if !set {
			return fmt.Errorf("--role is required: viewer, operator or admin")
		}
		u, err := d.FindUserByUsername(ctx, *username)
		if err != nil {
			return err
		}
		if err := d.UpdateUserRole(ctx, u.ID, db.Role(*role)); err != nil {
			return err
		}
		cliAudit(ctx, d, stderr, "user.role", "user "+u.Username, fmt.Sprintf("%s → %s", u.Role, *role))
		fmt.Fprintf(stdout, "%s is now %s; their sessions have ended\n", u.Username, *role)
	default:
		return fmt.Errorf("unknown user command %q", sub)
	}
	return nil
}

// readPassword reads one line from stdin (a pipe or a terminal) and hashes it.
func readPassword(stdin io.Reader, stdout io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(stdout, "Password: ")
		}
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	return web.HashPassword(strings.TrimRight(line, "\r\n"))
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
