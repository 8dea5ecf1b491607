package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/db/sealed"
)

// runReplay is `plaudhook replay EVENT_ID --to URL --mode MODE`: it asks a running plaudhook
// server to replay one stored event, through the replay API, and prints the attempt. The server
// sends it, so its address policy, signing secrets, attempt log, live event page and audit log
// all apply, exactly as for a replay from the event page.
func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", envOr("PLAUDHOOK_URL", "http://127.0.0.1:8080"),
		"the plaudhook server (PLAUDHOOK_URL)")
	token := fs.String("token", "", "an API token of an operator or admin (default $PLAUDHOOK_TOKEN)")
	tokenFile := fs.String("token-file", "", "read the API token from this file")
	to := fs.String("to", "", "send to this URL")
	target := fs.String("target", "", "or to this saved target (name or id)")
	mode := fs.String("mode", "", "original, resign or edited (default: the target's, else original)")
	scheme := fs.String("scheme", "", "signing scheme of resign/edited: devguide or embedded")
	secret := fs.String("secret", "", `which secret signs resign/edited: "target" or an endpoint secret's label`)
	bodyFile := fs.String("body-file", "", "the edited body (mode edited); - reads standard input")
	storeAsNew := fs.Bool("store-as-new", false, "when the target is this plaudhook's own webhook, store the replay as a new event instead of a duplicate")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the server")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: plaudhook replay EVENT_ID (--to URL | --target NAME) [--mode MODE] [flags]\n\n")
		fs.PrintDefaults()
	}

	// The event id may come before or after the flags.
	var idArg string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		idArg, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *token == "" {
		*token = os.Getenv("PLAUDHOOK_TOKEN") // never a flag default: -h would print it
	}
	if idArg == "" && fs.NArg() > 0 {
		idArg = fs.Arg(0)
	}
	id, err := strconv.ParseInt(idArg, 10, 64)
	if err != nil || id <= 0 {
		fs.Usage()
		return fmt.Errorf("replay: EVENT_ID must be an event number, got %q", idArg)
	}

	// Credentials and what to send.
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("read token: %w", err)
		}
		*token = strings.TrimSpace(string(b))
	}
	if *token == "" {
		return errors.New("replay: no API token: pass --token, --token-file or set PLAUDHOOK_TOKEN " +
			"(create one on your account page or with `plaudhook token create`)")
	}
	if (*to == "") == (*target == "") {
		return errors.New("replay: give exactly one of --to URL and --target NAME")
	}
	req := map[string]any{"target_url": *to, "target": *target, "mode": *mode,
		"scheme": *scheme, "secret": *secret}
	if *storeAsNew {
		req["store_as_new"] = true
	}
	if *bodyFile != "" {
		var b []byte
		if *bodyFile == "-" {
			b, err = io.ReadAll(os.Stdin)
		} else {
			b, err = os.ReadFile(*bodyFile)
		}
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
		req["body"] = string(b)
	}

	// Ask the server.
	att, err := postReplay(ctx, *server, *token, id, req, *timeout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "attempt #%d: %s → %s (%s) in %.0f ms\n", att.ID, att.URL, att.Outcome,
		att.Mode, att.DurationMS)
	if att.Error != "" {
		fmt.Fprintf(stdout, "  %s\n", att.Error)
	}
	if !att.OK {
		return fmt.Errorf("replay: the target did not accept it (%s)", att.Outcome)
	}
	return nil
}

// cliAttempt is the part of the API's attempt the command prints.
type cliAttempt struct {
	ID         int64   `json:"id"`
	URL        string  `json:"url"`
	Mode       string  `json:"mode"`
	OK         bool    `json:"ok"`
	Outcome    string  `json:"outcome"`
	Error      string  `json:"error"`
	DurationMS float64 `json:"duration_ms"`
}

// postReplay calls POST /api/v1/events/{id}/replay and decodes the attempt. A policy refusal
// (403 with an attempt) returns the attempt; other errors come back as errors.
func postReplay(ctx context.Context, server, token string, id int64, req map[string]any, timeout time.Duration) (cliAttempt, error) {
	var att cliAttempt
	for k, v := range req {
		if v == "" {
			delete(req, k)
		}
	}
	body, _ := json.Marshal(req)
	u := strings.TrimSuffix(server, "/") + "/api/v1/events/" + strconv.FormatInt(id, 10) + "/replay"
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return att, fmt.Errorf("replay: %w", err)
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", "plaudhook-replay/"+version)
	resp, err := (&http.Client{Timeout: timeout}).Do(hr)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return att, fmt.Errorf("replay: ask the server: %w (is it running there? --server or "+
			"PLAUDHOOK_URL takes the dashboard URL the server's log shows)", err)
	}
	if err != nil {
		return att, fmt.Errorf("replay: ask the server: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))

	// 201: sent; 403 with an attempt: refused by the address policy; anything else: an error.
	var reply struct {
		cliAttempt
		ErrorText string          `json:"error"`
		Code      string          `json:"code"`
		Attempt   json.RawMessage `json:"attempt"`
	}
	if err := json.Unmarshal(raw, &reply); err != nil {
		return att, fmt.Errorf("replay: the server answered %s: %.200s", resp.Status, raw)
	}
	switch {
	case resp.StatusCode == http.StatusCreated:
		att = reply.cliAttempt
		att.Error = reply.ErrorText
		return att, nil
	case resp.StatusCode == http.StatusForbidden && len(reply.Attempt) > 0:
		json.Unmarshal(reply.Attempt, &att)
		return att, nil
	}
	return att, fmt.Errorf("replay: %s: %s", resp.Status, reply.ErrorText)
}

// checkTargetKeys does for replay targets what checkSecretKeys does for signing secrets: it
// refuses to start when a target's secret or headers were sealed under a master key that is not
// configured, and re-seals under the current key what a rotation left under a previous one.
func checkTargetKeys(ctx context.Context, d *db.DB, ring *sealed.Keyring, log *slog.Logger) error {
	ids, err := d.FindTargetKeyIDs(ctx)
	if err != nil {
		return err
	}
	var missing []string
	stale := false
	for _, id := range ids {
		if !ring.Has(id) {
			missing = append(missing, id)
		}
		stale = stale || id != ring.KeyID()
	}
	if len(missing) > 0 {
		return fmt.Errorf("replay targets' secrets and headers are sealed with master key %s, "+
			"which is not configured: set PLAUDHOOK_MASTER_KEY (or _FILE) to that key",
			strings.Join(missing, ", "))
	}
	if !stale {
		return nil
	}
	n, err := d.ResealTargets(ctx)
	if err != nil {
		return err
	}
	log.Info("re-sealed replay target values under the current master key", "values", n,
		"key_id", ring.KeyID())
	return nil
}
