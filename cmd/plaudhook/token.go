package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web"
)

var tokenCommands = commandGroup{name: "token", subs: []subcommand{
	{"create", "make an API token for a user and print it once", []string{"username", "label"}},
	{"list", "list tokens (never their values)", []string{"username"}},
	{"revoke", "delete a token", []string{"id"}},
}}

// runToken is `plaudhook token create|list|revoke`: API tokens for scripts.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, args, err := tokenCommands.pick(args, stderr)
	if err != nil {
		return err
	}
	sub := s.name
	fs := flag.NewFlagSet("token "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", envOr("PLAUDHOOK_DB", defaultConfig().DB), "SQLite database file (PLAUDHOOK_DB)")
	username := fs.String("username", "", "the user the token acts as (list: only theirs)")
	label := fs.String("label", "", "what the token is for, e.g. \"nightly export\"")
	id := fs.Int64("id", 0, "the token to revoke (see token list)")
	if err := tokenCommands.parse(fs, s, args, stderr); err != nil {
		return err
	}
	d, err := db.Open(ctx, *dbPath, db.Options{})
	if err != nil {
		return err
	}
	defer d.Close()

	switch sub {
	case "create":
		return tokenCreate(ctx, d, *username, *label, stdout, stderr)
	case "list":
		return tokenList(ctx, d, *username, stdout)
	case "revoke":
		if *id == 0 {
			return fmt.Errorf("--id is required (see plaudhook token list)")
		}
		t, err := d.DeleteToken(ctx, *id, 0)
		if err != nil {
			return err
		}
		cliAudit(ctx, d, stderr, "token.revoke", "token "+t.Prefix+"… of "+t.Username, "label "+t.Label)
		fmt.Fprintf(stdout, "revoked token %d (%s… %q of %s)\n", t.ID, t.Prefix, t.Label, t.Username)
		return nil
	}
	return fmt.Errorf("unknown token command %q", sub)
}

// tokenCreate makes a token for username and prints it, once, alone on stdout (so that
// TOKEN=$(plaudhook token create ...) works); only its hash is stored.
func tokenCreate(ctx context.Context, d *db.DB, username, label string, stdout, stderr io.Writer) error {
	if username == "" || label == "" {
		return fmt.Errorf("--username and --label are required")
	}
	u, err := d.FindUserByUsername(ctx, username)
	if err != nil {
		return err
	}
	if u.Disabled {
		fmt.Fprintf(stderr, "note: %s is disabled; the token works only once they are enabled\n", u.Username)
	}
	token := web.NewAPIToken()
	t, err := d.CreateToken(ctx, u.ID, label, token)
	if err != nil {
		return err
	}
	cliAudit(ctx, d, stderr, "token.create", "token "+t.Prefix+"… of "+u.Username, "label "+t.Label)
	fmt.Fprintln(stdout, token)
	fmt.Fprintf(stderr, "created token %d %q for %s (%s); it is shown only now: send it as \"Authorization: Bearer <token>\"\n",
		t.ID, t.Label, u.Username, u.Role)
	return nil
}

// tokenList prints every token (or one user's) without the secret part.
func tokenList(ctx context.Context, d *db.DB, username string, stdout io.Writer) error {
	var userID int64
	if username != "" {
		u, err := d.FindUserByUsername(ctx, username)
		if err != nil {
			return err
		}
		userID = u.ID
	}
	tokens, err := d.FindTokens(ctx, userID)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSERNAME\tLABEL\tTOKEN\tCREATED\tLAST USED")
	for _, t := range tokens {
		used := "never"
		if !t.LastUsedAt.IsZero() {
			used = t.LastUsedAt.Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s…\t%s\t%s\n", t.ID, t.Username, t.Label, t.Prefix,
			t.CreatedAt.Format("2006-01-02 15:04"), used)
	}
	return tw.Flush()
}

// cliAudit records an action taken on the command line (actor "cli"). A failure to record is
// reported on stderr; it does not undo the action.
func cliAudit(ctx context.Context, d *db.DB, stderr io.Writer, action, target, detail string) {
	err := d.CreateAuditEntry(ctx, db.AuditEntry{Actor: "cli", Action: action, Target: target,
		Detail: detail})
	if err != nil {
		fmt.Fprintf(stderr, "warning: could not record %s in the audit log: %v\n", action, err)
	}
}
