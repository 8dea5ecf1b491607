package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
)

// TestEndToEndFixtures starts the real program, posts every fixture under its own scheme, and
// finds each stored byte-exact; posting them all again (under the other scheme) counts
// duplicates instead of duplicating.
func TestEndToEndFixtures(t *testing.T) {
	m := mustRunMain(t, fixtureTime.Add(20*time.Second))
	fixtures := loadFixtures(t)
	if len(fixtures) < 18 {
		t.Fatalf("fixtures = %d, want every file of the corpus", len(fixtures))
	}

	ids := map[string]int64{}
	for name, f := range fixtures {
		h := f.sig.Devguide
		if f.sig.Scheme == "embedded" {
			h = f.sig.Embedded
		}
		status, reply := postSigned(t, m.URL()+"/webhook", h, f.body)
		if status != 200 {
			t.Fatalf("%s: %d %s", name, status, reply)
		}
		var r struct {
			Status  string `json:"status"`
			EventID int64  `json:"event_id"`
		}
		json.Unmarshal([]byte(reply), &r)
		if r.Status != "success" || r.EventID == 0 {
			t.Fatalf("%s: reply %s", name, reply)
		}
		ids[name] = r.EventID
	}

	ctx := context.Background()
	for name, f := range fixtures {
		e, err := m.DB.FindEventByID(ctx, ids[name])
		if err != nil {
			t.Fatal(err)
		}
		d, err := m.DB.FindDeliveryByID(ctx, e.BodyDeliveryID)
		if err != nil {
			t.Fatal(err)
		}
		if shaHex(d.Body) != shaHex(f.body) || d.BodySHA256 != shaHex(f.body) {
			t.Errorf("%s: stored sha256 %s, want %s", name, shaHex(d.Body), shaHex(f.body))
		}
		if want := string(bytes.SplitN(f.body, []byte(`"`), 5)[3]); e.EventType == "" && strings.Contains(want, ".") {
			t.Errorf("%s: no event type stored", name)
		}
	}

	// Every fixture again, signed the other way: all acknowledged, none stored twice.
	for name, f := range fixtures {
		h := f.sig.Embedded
		if f.sig.Scheme == "embedded" {
			h = f.sig.Devguide
		}
		if status, reply := postSigned(t, m.URL()+"/webhook", h, f.body); status != 200 || !strings.Contains(reply, `"duplicate":true`) {
			t.Fatalf("%s again: %d %s, want 200 duplicate", name, status, reply)
		}
	}
	events, _, err := m.DB.FindEvents(ctx, db.EventFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != len(fixtures) {
		t.Fatalf("events = %d, want %d", len(events), len(fixtures))
	}
	for _, e := range events {
		if e.DeliveryCount != 2 {
			t.Errorf("event %d (%s) delivered %d times, want 2", e.ID, e.EventType, e.DeliveryCount)
		}
	}
}

// TestSendCommand runs `plaudhook send` for every built-in sample against the real server, as
// the README tells a newcomer to.
func TestSendCommand(t *testing.T) {
	m := mustRunMain(t, time.Time{})
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"send", "--url", m.URL() + "/webhook",
		"--secret", fixtureSecret, "--sample", "all"}, nil, &out, &errOut)
	if err != nil {
		t.Fatalf("send: %v\n%s%s", err, out.String(), errOut.String())
	}
	if got := strings.Count(out.String(), "200 OK"); got != 18 {
		t.Errorf("accepted = %d, want 18:\n%s", got, out.String())
	}
	events, _, _ := m.DB.FindEvents(context.Background(), db.EventFilter{Limit: 100})
	if len(events) != 18 {
		t.Errorf("events = %d, want 18", len(events))
	}

	// A wrong secret is refused, and send says so with a failing exit.
	out.Reset()
	err = run(context.Background(), []string{"send", "--url", m.URL() + "/webhook",
		"--secret", "wrong", "--sample", "device.synced"}, nil, &out, &errOut)
	if err == nil || !strings.Contains(out.String(), "signature_mismatch") {
		t.Errorf("send with wrong secret: err %v, output %q", err, out.String())
	}

	// A secret pasted with spaces and a newline, or given as the server's list, signs as the
	// server reads it.
	for _, s := range []string{"  " + fixtureSecret + "\n", fixtureSecret + ",another-secret"} {
		out.Reset()
		err = run(context.Background(), []string{"send", "--url", m.URL() + "/webhook",
			"--secret", s, "--sample", "device.synced"}, nil, &out, &errOut)
		if err != nil || !strings.Contains(out.String(), "200 OK") {
			t.Errorf("send --secret %q: err %v, output %q; want 200", s, err, out.String())
		}
	}
	// No secret at all says where the generated one is.
	err = run(context.Background(), []string{"send", "--url", m.URL() + "/webhook",
		"--secret", " , ", "--sample", "device.synced"}, nil, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "data/webhook-secret") {
		t.Errorf("send without a secret: err %v, want one naming data/webhook-secret", err)
	}
}

// TestConfigValidation checks bad settings are all reported at once, and env fallbacks work.
func TestConfigValidation(t *testing.T) {
	env := map[string]string{"PLAUDHOOK_ADDR": "127.0.0.1:9999", "PLAUD_WEBHOOK_SECRET": " a , b\n"}
	getenv := func(k string) string { return env[k] }
	c, err := parseServeFlags(nil, getenv, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9999" || len(c.Secrets) != 2 || c.Secrets[0] != "a" || c.Secrets[1] != "b" {
		t.Errorf("config = %+v", c)
	}
	if c.BodyLimit != 25<<20 || c.Tolerance != 5*time.Minute || c.DB != "./data/plaudhook.db" {
		t.Errorf("defaults = %d %v %s", c.BodyLimit, c.Tolerance, c.DB)
	}
	_, err = parseServeFlags([]string{"--addr", "nope", "--body-limit", "huge", "--tolerance", "-1s", "--log-level", "loud"}, getenv, &bytes.Buffer{})
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"--addr", "--body-limit", "--tolerance", "--log-level"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
}

// TestFirstRunTryIt is the README's first run: no secret configured, so the server generates
// one beside the database and logs the exact command that sends a signed sample. That command,
// run as printed (with the in-process run standing in for ./bin/plaudhook), stores the event.
func TestFirstRunTryIt(t *testing.T) {
	c := defaultConfig()
	c.Addr = "127.0.0.1:0"
	c.DB = filepath.Join(t.TempDir(), "plaudhook.db")
	c.Heartbeat = time.Second
	logs := &logBuffer{}
	m := &Main{Config: c, Logger: slog.New(slog.NewTextHandler(logs, nil)), Args0: "./bin/plaudhook"}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	// The generated secret: a 0600 file beside the database, announced in the log.
	secretFile := filepath.Join(filepath.Dir(c.DB), "webhook-secret")
	fi, err := os.Stat(secretFile)
	if err != nil {
		t.Fatalf("secret file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode = %v, want 0600", fi.Mode().Perm())
	}
	log := logs.String()
	if !strings.Contains(log, `msg="no PLAUD_WEBHOOK_SECRET set: generated a signing secret for trying plaudhook" file=`+secretFile) {
		t.Errorf("no log line about the generated secret:\n%s", log)
	}
	secret, _ := os.ReadFile(secretFile)
	if strings.Contains(log, strings.TrimSpace(string(secret))) {
		t.Error("the log reveals the generated secret")
	}

	// The "try it" line names this server's real address and the secret file.
	match := regexp.MustCompile(`msg="try it: send a signed sample event" command=("(?:[^"\\]|\\.)*")`).FindStringSubmatch(log)
	if match == nil {
		t.Fatalf("no try-it line in the log:\n%s", log)
	}
	command, err := strconv.Unquote(match[1])
	if err != nil {
		t.Fatal(err)
	}
	want := "./bin/plaudhook send --url " + m.URL() + "/webhook --secret-file " + secretFile +
		" --sample transcription.completed"
	if command != want {
		t.Fatalf("try-it command = %q, want %q", command, want)
	}

	// Run it exactly as printed.
	args := strings.Fields(command)
	var out, errOut bytes.Buffer
	if err := run(context.Background(), args[1:], nil, &out, &errOut); err != nil {
		t.Fatalf("%s: %v\n%s%s", command, err, out.String(), errOut.String())
	}
	events, _, err := m.DB.FindEvents(context.Background(), db.EventFilter{})
	if err != nil || len(events) != 1 || events[0].EventType != "transcription.completed" {
		t.Fatalf("events = %+v (%v), want one transcription.completed", events, err)
	}
	d, err := m.DB.FindDeliveryByID(context.Background(), events[0].BodyDeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	if d.SecretLabel != "generated (webhook-secret)" {
		t.Errorf("verified by %q, want generated (webhook-secret)", d.SecretLabel)
	}

	// Once the default endpoint has a secret of its own (Plaud's), the next start no longer
	// accepts the trial one: every copy of it could otherwise sign deliveries in production.
	if _, err := m.DB.CreateSecret(context.Background(), db.NewSecret{EndpointID: db.DefaultEndpointID,
		Label: "portal", Value: caseSecret}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	logs2 := &logBuffer{}
	m2 := &Main{Config: c, Logger: slog.New(slog.NewTextHandler(logs2, nil)), Args0: "./bin/plaudhook"}
	if err := m2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m2.Close() })
	if status, body := signedPost(t, m2.URL()+"/webhook", strings.TrimSpace(string(secret)), caseB1); status != 400 {
		t.Errorf("trial secret after a stored one was added: %d %s, want 400", status, body)
	}
	if status, body := signedPost(t, m2.URL()+"/webhook", caseSecret, caseB1); status != 200 {
		t.Errorf("the endpoint's own secret: %d %s, want 200", status, body)
	}
	if !strings.Contains(logs2.String(), "is no longer accepted") {
		t.Errorf("the start does not say the trial secret is dropped:\n%s", logs2.String())
	}
}

// TestLogFormatJSON: `plaudhook serve --log-format json` writes every log line as one JSON
// object with time, level and msg, start-up lines included.
func TestLogFormatJSON(t *testing.T) {
	t.Setenv("PLAUD_WEBHOOK_SECRET", fixtureSecret)
	t.Setenv("PLAUDHOOK_ADMIN_PASSWORD", adminPassword)
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--db",
			filepath.Join(t.TempDir(), "plaudhook.db"), "--log-format", "json"}, nil, io.Discard, logs)
	}()

	// Wait until it serves, then stop it as a signal would.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "try it: send a signed sample event") {
		select {
		case err := <-done:
			t.Fatalf("serve ended early: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no start-up lines after 20 s:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}

	msgs := map[string]map[string]any{}
	for i, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %q (%v)", i+1, line, err)
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("line %d has no %q: %q", i+1, k, line)
			}
		}
		msg, _ := rec["msg"].(string)
		msgs[msg] = rec
	}
	for _, want := range []string{"starting plaudhook", "listening", "try it: send a signed sample event", "shutting down"} {
		if _, ok := msgs[want]; !ok {
			t.Errorf("no %q line in the JSON log", want)
		}
	}
	if addr, _ := msgs["listening"]["addr"].(string); !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("listening addr = %q, want an attribute of its own", addr)
	}
	if cmd, _ := msgs["try it: send a signed sample event"]["command"].(string); !strings.Contains(cmd, " send --url http://127.0.0.1:") {
		t.Errorf("try-it command = %q", cmd)
	}
}

// TestTryItWithSecretFile: with the secrets in PLAUD_WEBHOOK_SECRET_FILE (rotation: two of
// them), the try-it command names that file, and it works as printed.
func TestTryItWithSecretFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secrets")
	if err := os.WriteFile(file, []byte("first_secret_of_two\nsecond_secret_of_two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseServeFlags([]string{"--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "p.db")},
		func(k string) string {
			if k == "PLAUD_WEBHOOK_SECRET_FILE" {
				return file
			}
			return ""
		}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	m := &Main{Config: c, Logger: slog.New(slog.NewTextHandler(logs, nil)), Args0: "plaudhook"}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	match := regexp.MustCompile(`command=("(?:[^"\\]|\\.)*")`).FindStringSubmatch(logs.String())
	if match == nil {
		t.Fatalf("no try-it line in the log:\n%s", logs.String())
	}
	command, _ := strconv.Unquote(match[1])
	if !strings.Contains(command, "--secret-file "+file) {
		t.Fatalf("try-it command = %q, want it to name %s", command, file)
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), strings.Fields(command)[1:], nil, &out, &errOut); err != nil {
		t.Fatalf("%s: %v\n%s%s", command, err, out.String(), errOut.String())
	}
}
