package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/plaudhook/plaudhook/db"
)

var endpointCommands = commandGroup{name: "endpoint", subs: []subcommand{
	{"add", "add an endpoint, with its own URL /webhook/SLUG", []string{"slug", "name", "types", "note"}},
	{"list", "list the endpoints and their URLs", nil},
}}

// runEndpoint is `plaudhook endpoint add|list`: one endpoint per Plaud subscription, each with
// its own URL /webhook/SLUG. Adding one is audited with the actor "cli".
func runEndpoint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, args, err := endpointCommands.pick(args, stderr)
	if err != nil {
		return err
	}
	sub := s.name
	fs := flag.NewFlagSet("endpoint "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", envOr("PLAUDHOOK_DB", defaultConfig().DB), "SQLite database file (PLAUDHOOK_DB)")
	slug := fs.String("slug", "", "add: the URL is /webhook/SLUG (lowercase letters, digits, dashes)")
	name := fs.String("name", "", "add: a name for people (default: the slug)")
	types := fs.String("types", "", "add: the event types it expects, comma-separated (others are flagged)")
	note := fs.String("note", "", "add: a note, e.g. which Plaud subscription it is")
	if err := endpointCommands.parse(fs, s, args, stderr); err != nil {
		return err
	}
	d, err := db.Open(ctx, *dbPath, db.Options{})
	if err != nil {
		return err
	}
	defer d.Close()

	switch sub {
	case "list":
		return endpointList(ctx, d, stdout)
	case "add":
		if *slug == "" {
			return fmt.Errorf("--slug is required")
		}
		if *name == "" {
			*name = *slug
		}
		expected, err := db.ParseEventTypes(*types)
		if err != nil {
			return err
		}
		e, err := d.CreateEndpoint(ctx, db.Endpoint{Slug: *slug, Name: *name, ExpectedTypes: expected, Note: *note})
		if err != nil {
			return fmt.Errorf("add endpoint %q: %w", *slug, err)
		}
		cliAudit(ctx, d, stderr, "endpoint.create", "endpoint "+e.Slug, fmt.Sprintf("%q, expects %s",
			e.Name, typesText(e.ExpectedTypes)))
		fmt.Fprintf(stdout, "created endpoint %s: Plaud posts to %s\n", e.Slug, e.Path())
		fmt.Fprintf(stdout, "next: printf %%s \"$SECRET\" | plaudhook secret add --endpoint %s --label portal\n", e.Slug)
		return nil
	}
	return fmt.Errorf("unknown endpoint command %q", sub)
}

// endpointList prints every endpoint with its URL path, expected types and secrets in use.
func endpointList(ctx context.Context, d *db.DB, stdout io.Writer) error {
	endpoints, err := d.FindEndpoints(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLUG\tNAME\tPATH\tEXPECTED TYPES\tSECRETS IN USE")
	for _, e := range endpoints {
		secrets, err := d.FindSecrets(ctx, e.ID)
		if err != nil {
			return err
		}
		var inUse []string
		for _, s := range secrets {
			if s.Usable(now) {
				inUse = append(inUse, s.Label+" ("+s.Fingerprint+")")
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Slug, e.Name, e.Path(), typesText(e.ExpectedTypes),
			strings.Join(inUse, ", "))
	}
	return tw.Flush()
}

func typesText(types []string) string {
	if len(types) == 0 {
		return "any"
	}
	return strings.Join(types, ",")
}
