package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/plaudhook/plaudhook/web/sample"
	"github.com/plaudhook/plaudhook/web/signature"
)

// runSend is `plaudhook send`: sign a sample (or a file) with a secret and POST it, printing the
// status and the response.
func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080/webhook", "webhook URL to POST to")
	secret := fs.String("secret", "", "signing secret (default $PLAUD_WEBHOOK_SECRET)")
	secretFile := fs.String("secret-file", "", "read the signing secret from this file")
	name := fs.String("sample", "", "built-in sample to send (see -list); \"all\" sends every one")
	file := fs.String("file", "", "send this file's bytes instead of a sample")
	scheme := fs.String("scheme", "", "devguide or embedded (default: the sample's own scheme; devguide for files)")
	list := fs.Bool("list", false, "list the built-in samples")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: plaudhook send [--url URL] (--secret S | --secret-file F) (--sample NAME | --file PATH)\n\nSamples: %s\n\n",
			strings.Join(sample.Names(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *list {
		for _, n := range sample.Names() {
			fmt.Fprintf(stdout, "%-50s %s\n", n, sample.Scheme(n))
		}
		return nil
	}
	key, err := signingSecret(*secret, *secretFile, os.Getenv)
	if err != nil {
		return err
	}
	*secret = key

	// Collect what to send.
	type item struct {
		name   string
		body   []byte
		scheme string
	}
	var items []item
	switch {
	case *file != "":
		b, err := os.ReadFile(*file)
		if err != nil {
			return fmt.Errorf("read payload: %w", err)
		}
		items = append(items, item{*file, b, "devguide"})
	case *name == "all":
		for _, n := range sample.Names() {
			b, _, _ := sample.Get(n)
			items = append(items, item{n, b, sample.Scheme(n)})
		}
	case *name != "":
		b, n, err := sample.Get(*name)
		if err != nil {
			return err
		}
		items = append(items, item{n, b, sample.Scheme(n)})
	default:
		return fmt.Errorf("nothing to send: pass --sample NAME (see --list) or --file PATH")
	}

	client := &http.Client{Timeout: 30 * time.Second}
	failed := 0
	for _, it := range items {
		sch := it.scheme
		if *scheme != "" {
			sch = *scheme
		}
		if sch != string(signature.SchemeDevguide) && sch != string(signature.SchemeEmbedded) {
			return fmt.Errorf("--scheme %q: want devguide or embedded", sch)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, *url, bytes.NewReader(it.body))
		if err != nil {
			return fmt.Errorf("build request: %w", err)
		}
		req.Header = signature.Sign(signature.Scheme(sch), []byte(*secret), time.Now(), it.body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "plaudhook-send/"+version)
		resp, err := client.Do(req)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("send %s: %w (is the server running there? --url takes the webhook URL "+
				"the server's log shows)", it.name, err)
		}
		if err != nil {
			return fmt.Errorf("send %s: %w", it.name, err)
		}
		reply, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		fmt.Fprintf(stdout, "%s (%s, %d bytes) → %s %s\n", it.name, sch, len(it.body), resp.Status,
			strings.TrimSpace(string(reply)))
		if resp.StatusCode/100 != 2 {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d deliveries were not accepted", failed, len(items))
	}
	return nil
}

// signingSecret is the secret send and loadtest sign with: --secret-file, --secret, then
// $PLAUD_WEBHOOK_SECRET and $PLAUD_WEBHOOK_SECRET_FILE, each read as the server reads its own:
// trimmed, and the first of a comma- or line-separated list (the server accepts any of them), so
// a value pasted with a space or a newline signs as the server expects.
func signingSecret(flagSecret, flagFile string, getenv func(string) string) (string, error) {
	file, value := flagFile, flagSecret
	if file == "" && value == "" {
		// Never a flag default: -h would print it.
		value, file = getenv("PLAUD_WEBHOOK_SECRET"), ""
		if value == "" {
			file = getenv("PLAUD_WEBHOOK_SECRET_FILE")
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read secret: %w", err)
		}
		if ss := splitSecrets(string(b)); len(ss) > 0 {
			return ss[0], nil
		}
		return "", fmt.Errorf("%s holds no secret", file)
	}
	if ss := splitSecrets(value); len(ss) > 0 {
		return ss[0], nil
	}
	return "", fmt.Errorf("no secret: pass --secret or --secret-file, or set PLAUD_WEBHOOK_SECRET " +
		"(a server started without secrets writes the one it generated to webhook-secret beside " +
		"its database, data/webhook-secret by default)")
}
