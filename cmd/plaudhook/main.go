// Command plaudhook receives Plaud webhooks, verifies and stores them in SQLite, and serves the
// dashboard that shows them live. Subcommands:
//
//	plaudhook [serve] [flags]    run the server (the default)
//	plaudhook send [flags]       sign a sample or a file and POST it to a plaudhook server
//	plaudhook user ...           manage users
//	plaudhook endpoint ...       endpoints: add, list
//	plaudhook secret ...         signing secrets: add, rotate, revoke, list
//	plaudhook token ...          API tokens: create, list, revoke
//	plaudhook replay EVENT_ID    replay a stored event through a running server (--to, --mode)
//	plaudhook session rotate-keys  new session cookie keys
//	plaudhook loadtest [flags]   load-test a local server and check what it stored
//	plaudhook bench [flags]      ingest figures beside a bare net/http handler
//	plaudhook backup FILE        online, consistent copy of the database
//	plaudhook reindex [flags]    rebuild recordings and transcripts from stored events
//	plaudhook version            print the version
//
// This is the only package that reads flags, the environment and configuration files, and the
// only one that exits the process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Build information, set with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // "-h" asked for the help it printed: not a failure
		}
		fmt.Fprintln(os.Stderr, "plaudhook:", err)
		os.Exit(2)
	}
}

// run dispatches to a subcommand.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	// The program's own help and version, before serve (the default command) reads the flags:
	// "plaudhook -h" lists the commands, "plaudhook serve -h" the server's flags.
	if len(args) == 1 {
		switch args[0] {
		case "-h", "-help", "--help":
			fmt.Fprint(stdout, usage)
			return nil
		case "-version", "--version":
			args = []string{"version"}
		}
	}
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, args, stdout, stderr)
	case "send":
		return runSend(ctx, args, stdout, stderr)
	case "user":
		return runUser(ctx, args, stdin, stdout, stderr)
	case "endpoint":
		return runEndpoint(ctx, args, stdout, stderr)
	case "secret":
		return runSecret(ctx, args, stdin, stdout, stderr)
	case "token":
		return runToken(ctx, args, stdout, stderr)
	case "replay":
		return runReplay(ctx, args, stdout, stderr)
	case "session":
		return runSession(ctx, args, stdout, stderr)
	case "loadtest":
		return runLoadtest(ctx, args, stdout, stderr)
	case "bench":
		return runBench(ctx, args, stdout, stderr)
	case "backup":
		return runBackup(ctx, args, stdout, stderr)
	case "reindex":
		return runReindex(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "plaudhook %s (%s)\n", version, commit)
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
}

const usage = `Usage: plaudhook [command] [flags]

Commands:
  serve     run the webhook receiver and dashboard (default)
  send      sign a sample Plaud event (or a file) and POST it to a plaudhook server
  user      manage users: add, passwd, role, disable, enable, list
  endpoint  endpoints, one per Plaud subscription: add, list
  secret    signing secrets (value on standard input): add, rotate, revoke, list
  token     API tokens for scripts: create, list, revoke
  replay    replay a stored event to a URL or target: replay EVENT_ID --to URL --mode MODE
  session   rotate-keys: new keys for the session cookie
  loadtest  send signed events to a local server; report rate, latency and what was stored
  bench     measure ingest against a bare net/http handler (what make bench runs)
  backup    write a consistent copy of the database while the server runs
  reindex   rebuild recordings and transcripts from every stored event (after an upgrade)
  version   print the version (also --version)

Run "plaudhook COMMAND -h" for a command's flags ("plaudhook serve -h" for the server's).
`
