package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fixtureSecret and fixtureTime are those of testdata/plaud/signatures.json.
const fixtureSecret = "plaud_test_secret_NOT_REAL_0123456789abcdef"

var fixtureTime = time.Unix(1767225600, 0)

const adminPassword = "first-run admin password"

// mustRunMain starts the whole program on 127.0.0.1:0 with a temporary database and the clock at
// now (zero: the real clock). It is closed when the test ends.
func mustRunMain(tb testing.TB, now time.Time, edit ...func(*Config)) *Main {
	tb.Helper()
	c := defaultConfig()
	c.Addr = "127.0.0.1:0"
	c.DB = filepath.Join(tb.TempDir(), "plaudhook.db")
	c.Secrets = []string{fixtureSecret}
	c.AdminPass = adminPassword
	c.Heartbeat = time.Second
	if !now.IsZero() {
		c.Now = func() time.Time { return now }
	}
	for _, e := range edit {
		e(&c)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	m := &Main{Config: c, Logger: logger, Args0: "plaudhook"}
	if err := m.Run(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

type fixtureFile struct {
	Scheme   string            `json:"scheme"`
	Devguide map[string]string `json:"devguide"`
	Embedded map[string]string `json:"embedded"`
}

// loadFixtures returns every fixture body with its published headers.
func loadFixtures(tb testing.TB) map[string]struct {
	body []byte
	sig  fixtureFile
} {
	tb.Helper()
	raw, err := os.ReadFile("testdata/plaud/signatures.json")
	if err != nil {
		tb.Fatal(err)
	}
	var s struct {
		Files map[string]fixtureFile `json:"files"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		tb.Fatal(err)
	}
	out := map[string]struct {
		body []byte
		sig  fixtureFile
	}{}
	for name, sig := range s.Files {
		b, err := os.ReadFile(filepath.Join("testdata/plaud", name))
		if err != nil {
			tb.Fatal(err)
		}
		out[name] = struct {
			body []byte
			sig  fixtureFile
		}{b, sig}
	}
	return out
}

func postSigned(tb testing.TB, url string, headers map[string]string, body []byte) (int, string) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func shaHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestHelpAndVersion: "plaudhook -h" lists the commands, "plaudhook serve -h" the server's
// flags, and --version prints the version, all without starting a server.
func TestHelpAndVersion(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-h"}, "Commands:"},
		{[]string{"--help"}, "Commands:"},
		{[]string{"help"}, "Commands:"},
		{[]string{"--version"}, "plaudhook " + version},
		{[]string{"version"}, "plaudhook " + version},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), tt.args, nil, &out, &errOut); err != nil {
			t.Errorf("%v: %v", tt.args, err)
		}
		if !bytes.Contains(out.Bytes(), []byte(tt.want)) {
			t.Errorf("%v printed %q, want %q", tt.args, out.String(), tt.want)
		}
	}

	// The server's own flags, with the flag package's help error (main exits 0 on it, and no
	// server starts).
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"serve", "-h"}, nil, &out, &errOut)
	if !errors.Is(err, flag.ErrHelp) || !bytes.Contains(errOut.Bytes(), []byte("-addr")) ||
		!bytes.HasPrefix(errOut.Bytes(), []byte("Usage: plaudhook serve [flags]")) {
		t.Errorf("serve -h: %v, printed %q; want a usage line and the server's flags", err, errOut.String())
	}
	errOut.Reset()
	if err := run(context.Background(), []string{"bench", "-h"}, nil, &out, &errOut); !errors.Is(err, flag.ErrHelp) ||
		!bytes.HasPrefix(errOut.Bytes(), []byte("Usage: plaudhook bench [flags]")) || !bytes.Contains(errOut.Bytes(), []byte("-concurrency")) {
		t.Errorf("bench -h: %v, printed %q; want a usage line and the bench's flags", err, errOut.String())
	}

	// A token or secret in the environment is never printed as a flag's default.
	t.Setenv("PLAUDHOOK_TOKEN", "ph_token_from_env_0123")
	t.Setenv("PLAUD_WEBHOOK_SECRET", "whsec_from_env_4567")
	for _, cmd := range []string{"replay", "send", "loadtest"} {
		var out, errOut bytes.Buffer
		run(context.Background(), []string{cmd, "-h"}, nil, &out, &errOut)
		help := out.String() + errOut.String()
		if !strings.Contains(help, "-") || strings.Contains(help, "ph_token_from_env") || strings.Contains(help, "whsec_from_env") {
			t.Errorf("%s -h printed %q: want its flags and no value from the environment", cmd, help)
		}
	}
}

// TestReachable: a listener on every address is told to people and to the server's own calls
// as 127.0.0.1, anything else as it is.
func TestReachable(t *testing.T) {
	for in, want := range map[string]string{"0.0.0.0:8080": "127.0.0.1:8080", "[::]:9000": "127.0.0.1:9000",
		"127.0.0.1:8080": "127.0.0.1:8080", "[::1]:8080": "[::1]:8080", "192.0.2.7:443": "192.0.2.7:443"} {
		a, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := reachable(a); got != want {
			t.Errorf("reachable(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestSubcommandHelp: every command made of subcommands answers -h with its subcommands, each
// subcommand's -h lists the flags it takes and no other's, and a flag it does not take is refused.
func TestSubcommandHelp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	// Help shows each flag's default, not a value given before -h.
	var out, errOut bytes.Buffer
	run(context.Background(), []string{"secret", "rotate", "--retire-after", "2h", "-h"}, nil, &out, &errOut)
	if !strings.Contains(errOut.String(), "(default 26h0m0s)") {
		t.Errorf("secret rotate --retire-after 2h -h printed %q, want the default 26h", errOut.String())
	}
	for _, g := range []commandGroup{endpointCommands, secretCommands, tokenCommands, userCommands, sessionCommands} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{g.name, "-h"}, nil, &out, &errOut); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s -h: %v, want the help", g.name, err)
		}
		for _, s := range g.subs {
			if !strings.Contains(errOut.String(), "  "+s.name+" ") {
				t.Errorf("%s -h printed %q: no %s", g.name, errOut.String(), s.name)
			}
		}
		all := map[string]bool{}
		for _, s := range g.subs {
			for _, f := range s.flags {
				all[f] = true
			}
		}
		for _, s := range g.subs {
			errOut.Reset()
			err := run(context.Background(), []string{g.name, s.name, "-h"}, nil, &out, &errOut)
			help := errOut.String()
			if !errors.Is(err, flag.ErrHelp) || !strings.Contains(help, "-db") {
				t.Errorf("%s %s -h: %v, printed %q", g.name, s.name, err, help)
			}
			for f := range all {
				if got, want := strings.Contains(help, "  -"+f+" "), slices.Contains(s.flags, f); got != want {
					t.Errorf("%s %s -h lists -%s: %v, want %v", g.name, s.name, f, got, want)
				}
			}
			for f := range all {
				if slices.Contains(s.flags, f) {
					continue
				}
				v := "1"
				if f == "retire-after" {
					v = "1h"
				}
				err := run(context.Background(), []string{g.name, s.name, "--db", path, "--" + f, v}, nil, &out, &errOut)
				if err == nil || !strings.Contains(err.Error(), "does not take --"+f) {
					t.Errorf("%s %s --%s: %v, want it refused", g.name, s.name, f, err)
				}
			}
		}
		// A word that is no flag is refused, not taken for one ("secret list meetings").
		if err := run(context.Background(), []string{g.name, g.subs[0].name, "--db", path, "stray"}, nil, &out, &errOut); err == nil ||
			!strings.Contains(err.Error(), `not "stray"`) {
			t.Errorf("%s %s stray: %v, want it refused", g.name, g.subs[0].name, err)
		}
		if err := run(context.Background(), []string{g.name, "nope"}, nil, &out, &errOut); err == nil ||
			!strings.Contains(err.Error(), "unknown "+g.name+" command") {
			t.Errorf("%s nope: %v, want an unknown-command error", g.name, err)
		}
	}
}

// TestSigningSecret: send and loadtest find their secret as documented, read as the server
// reads its own.
func TestSigningSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "s")
	empty := filepath.Join(dir, "empty")
	os.WriteFile(file, []byte(" from-file , second\n"), 0o600)
	os.WriteFile(empty, []byte(" \n"), 0o600)
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, c := range []struct {
		flag, file string
		env        map[string]string
		want, err  string
	}{
		{flag: " a,b ", want: "a"},
		{file: file, flag: "ignored", want: "from-file"},
		{env: map[string]string{"PLAUD_WEBHOOK_SECRET": "env-secret\n"}, want: "env-secret"},
		{env: map[string]string{"PLAUD_WEBHOOK_SECRET_FILE": file}, want: "from-file"},
		{flag: "flag", env: map[string]string{"PLAUD_WEBHOOK_SECRET": "env"}, want: "flag"},
		{file: empty, err: "holds no secret"},
		{flag: " , ", err: "data/webhook-secret"},
		{err: "data/webhook-secret"},
	} {
		got, err := signingSecret(c.flag, c.file, env(c.env))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: %q, %v; want an error with %q", c, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%+v: %q, %v; want %q", c, got, err, c.want)
		}
	}
}
