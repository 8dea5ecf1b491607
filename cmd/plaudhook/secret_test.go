package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/db/sealed"
	"github.com/plaudhook/plaudhook/web/signature"
)

const (
	caseSecret    = "plaud_test_secret_do_not_use"
	caseOldSecret = "plaud_old_secret_do_not_use"
)

var caseB1 = []byte(`{"event":"transcription.completed","data":{"file_id":"f_0001","transcriptionId":"tr_0001"}}`)

// signedPost posts body to url signed (devguide) with secret and returns the status.
func signedPost(t *testing.T, url, secret string, body []byte) (int, string) {
	t.Helper()
	h := signature.Sign(signature.SchemeDevguide, []byte(secret), time.Time{}, body)
	return postSigned(t, url, map[string]string{"Plaud-Signature": h.Get("Plaud-Signature")}, body)
}

// TestMasterKeyEnv: the master key is read from PLAUDHOOK_MASTER_KEY or its _FILE, as hex or
// base64, a list for rotation; bad values are reported without being echoed.
func TestMasterKeyEnv(t *testing.T) {
	a, b := sealed.GenerateKey(), sealed.GenerateKey()
	file := filepath.Join(t.TempDir(), "key")
	os.WriteFile(file, []byte(sealed.EncodeKey(a)+"\n"), 0o600)
	tests := []struct {
		name     string
		env      map[string]string
		keys     int
		problems string
	}{
		{"unset", nil, 0, ""},
		{"base64", map[string]string{"PLAUDHOOK_MASTER_KEY": sealed.EncodeKey(a)}, 1, ""},
		{"hex, new then old", map[string]string{"PLAUDHOOK_MASTER_KEY": hex.EncodeToString(b) + "," + sealed.EncodeKey(a)}, 2, ""},
		{"file", map[string]string{"PLAUDHOOK_MASTER_KEY_FILE": file}, 1, ""},
		{"both", map[string]string{"PLAUDHOOK_MASTER_KEY": sealed.EncodeKey(a), "PLAUDHOOK_MASTER_KEY_FILE": file}, 0, "both set"},
		{"too short", map[string]string{"PLAUDHOOK_MASTER_KEY": "c2hvcnQta2V5LXZhbHVl"}, 0, "key #1"},
		{"missing file", map[string]string{"PLAUDHOOK_MASTER_KEY_FILE": file + ".nope"}, 0, "PLAUDHOOK_MASTER_KEY_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, problems := masterKeysFromEnv(func(k string) string { return tt.env[k] })
			if len(keys) != tt.keys {
				t.Errorf("keys = %d, want %d", len(keys), tt.keys)
			}
			got := strings.Join(problems, "; ")
			if (tt.problems == "") != (got == "") || !strings.Contains(got, tt.problems) {
				t.Errorf("problems = %q, want %q", got, tt.problems)
			}
			if strings.Contains(got, "c2hvcnQta2V5LXZhbHVl") {
				t.Errorf("a problem echoes the key")
			}
		})
	}
	// The whole config validation reports it with everything else.
	_, err := parseServeFlags(nil, func(k string) string {
		return map[string]string{"PLAUDHOOK_MASTER_KEY": "junk"}[k]
	}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "PLAUDHOOK_MASTER_KEY") {
		t.Errorf("config error = %v", err)
	}
}

// TestGeneratedMasterKey: without a configured key, a 0600 key file is generated beside the
// database on first run and reused afterwards, so stored secrets survive a restart.
func TestGeneratedMasterKey(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "data", "plaudhook.db")
	m := mustRunMain(t, time.Time{}, func(c *Config) { c.DB = dbPath })
	keyPath := filepath.Join(filepath.Dir(dbPath), "master-key")
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", fi.Mode().Perm())
	}
	key1, _ := os.ReadFile(keyPath)
	if _, err := m.DB.CreateSecret(context.Background(), db.NewSecret{EndpointID: 1, Label: "stored", Value: caseSecret}); err != nil {
		t.Fatal(err)
	}
	m.Close()

	m = mustRunMain(t, time.Time{}, func(c *Config) { c.DB = dbPath; c.Secrets = []string{"other_env_secret"} })
	key2, _ := os.ReadFile(keyPath)
	if !bytes.Equal(key1, key2) {
		t.Fatal("the key file changed on restart")
	}
	if status, body := signedPost(t, m.URL()+"/webhook", caseSecret, caseB1); status != 200 {
		t.Fatalf("stored secret after restart: %d %s", status, body)
	}
	m.Close()

	// A copy of the database restored elsewhere without its key file: the server refuses to
	// start, says where the key goes, and leaves no key of its own there to be mistaken for it.
	restored := filepath.Join(t.TempDir(), "restored", "plaudhook.db")
	if err := os.MkdirAll(filepath.Dir(restored), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"backup", "--db", dbPath, restored}, nil, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	c := defaultConfig()
	c.Addr, c.DB, c.Secrets = "127.0.0.1:0", restored, []string{"other_env_secret"}
	m2 := &Main{Config: c}
	err = m2.Run(context.Background())
	m2.Close()
	restoredKey := filepath.Join(filepath.Dir(restored), "master-key")
	if err == nil || !strings.Contains(err.Error(), "put the master-key file that was beside it at "+restoredKey) {
		t.Errorf("restored without its key: %v, want the refusal saying where the key goes", err)
	}
	if _, err := os.Stat(restoredKey); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key generated for the restored copy was left behind: %v", err)
	}
	// A CLI command on that copy refuses the same way, and generates no key either.
	if _, err := cli(t, io.Discard, "", "secret", "list", "--db", restored); err == nil ||
		!strings.Contains(err.Error(), restoredKey) {
		t.Errorf("secret list on the restored copy: %v, want the refusal", err)
	}
	if _, err := os.Stat(restoredKey); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("secret list generated a key for the restored copy: %v", err)
	}
	// With the key copied beside it, it starts.
	if err := os.WriteFile(restoredKey, key1, 0o600); err != nil {
		t.Fatal(err)
	}
	m3 := mustRunMain(t, time.Time{}, func(c *Config) { c.DB = restored; c.Secrets = []string{"other_env_secret"} })
	if status, body := signedPost(t, m3.URL()+"/webhook", caseSecret, caseB1); status != 200 {
		t.Fatalf("restored copy with its key: %d %s", status, body)
	}
}

// TestRestoredTargetsNeedTheirKey: a database whose only sealed values are a replay target's
// secret, restored without its key file, is refused by the server and by CLI commands alike, and
// no key is generated beside it.
func TestRestoredTargetsNeedTheirKey(t *testing.T) {
	m := mustRunMain(t, time.Time{})
	secret := "target-signing-secret"
	if _, err := m.DB.CreateTarget(context.Background(), db.TargetInput{Name: "App", URL: "http://127.0.0.1:1/",
		DefaultMode: db.ModeOriginal, Secret: &secret}); err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(t.TempDir(), "plaudhook.db")
	if err := run(context.Background(), []string{"backup", "--db", m.Config.DB, restored}, nil, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(filepath.Dir(restored), "master-key")
	for _, args := range [][]string{{"secret", "add", "--label", "fresh", "--db", restored}, {"secret", "list", "--db", restored}} {
		if _, err := cli(t, io.Discard, "new-secret-value-123\n", args...); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%v on the restored copy: %v, want the refusal naming %s", args, err, key)
		}
	}
	c := defaultConfig()
	c.Addr, c.DB, c.Secrets = "127.0.0.1:0", restored, []string{fixtureSecret}
	m2 := &Main{Config: c}
	err := m2.Run(context.Background())
	m2.Close()
	if err == nil || !strings.Contains(err.Error(), key) {
		t.Errorf("serve on the restored copy: %v, want the refusal naming %s", err, key)
	}
	if _, err := os.Stat(key); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key was generated beside the restored copy: %v", err)
	}
}

// TestSecretCLI drives `plaudhook endpoint add|list` and `secret add|rotate|revoke|list`, then a
// server on the same database: the CLI's secrets verify (the retiring one too, the revoked one
// not), the CLI never prints a value, and the audit log records each change as "cli".
func TestSecretCLI(t *testing.T) {
	logs := &logBuffer{}
	dbPath := filepath.Join(t.TempDir(), "plaudhook.db")
	dbArg := "--db=" + dbPath

	out, err := cli(t, logs, "", "endpoint", "add", dbArg, "--slug", "calls", "--name", "Calls", "--types", "transcription.completed")
	if err != nil || !strings.Contains(out, "/webhook/calls") {
		t.Fatalf("endpoint add: %v %q", err, out)
	}
	if _, err := cli(t, logs, "", "endpoint", "add", dbArg, "--slug", "Bad Slug"); err == nil {
		t.Error("endpoint add accepted a bad slug")
	}
	if out, err = cli(t, logs, "  "+caseOldSecret+"\n", "secret", "add", dbArg, "--endpoint", "calls", "--label", "old"); err != nil {
		t.Fatalf("secret add: %v", err)
	}
	if !strings.Contains(out, db.Fingerprint([]byte(caseOldSecret))) || !strings.Contains(logs.String(), "whitespace removed") {
		t.Errorf("secret add output %q, stderr %q; want the fingerprint and the whitespace note", out, logs.String())
	}
	if _, err := cli(t, logs, "two words\n", "secret", "add", dbArg, "--endpoint", "calls", "--label", "bad"); err == nil {
		t.Error("secret add accepted a value with a space")
	}
	if out, err = cli(t, logs, caseSecret+"\n", "secret", "rotate", dbArg, "--endpoint", "calls", "--label", "new"); err != nil || !strings.Contains(out, "1 previous secret(s) verify until") {
		t.Fatalf("secret rotate: %v %q", err, out)
	}
	if _, err = cli(t, logs, "plaud_third_secret\n", "secret", "add", dbArg, "--endpoint", "calls", "--label", "third"); err != nil {
		t.Fatal(err)
	}
	if _, err = cli(t, logs, "", "secret", "revoke", dbArg, "--endpoint", "calls", "--label", "third"); err != nil {
		t.Fatalf("secret revoke: %v", err)
	}
	list, err := cli(t, logs, "", "secret", "list", dbArg, "--endpoint", "calls")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"old", "retiring until", "new", "active", "third", "revoked"} {
		if !strings.Contains(list, want) {
			t.Errorf("secret list lacks %q:\n%s", want, list)
		}
	}
	endpoints, _ := cli(t, logs, "", "endpoint", "list", dbArg)
	if !strings.Contains(endpoints, "calls") || !strings.Contains(endpoints, "transcription.completed") || !strings.Contains(endpoints, "new (") {
		t.Errorf("endpoint list:\n%s", endpoints)
	}
	for _, text := range []string{list, endpoints, logs.String()} {
		for _, v := range []string{caseSecret, caseOldSecret, "plaud_third_secret"} {
			if strings.Contains(text, v) {
				t.Errorf("the CLI printed the secret %q", v)
			}
		}
	}

	// A server on the same database: new and retiring verify, revoked does not.
	m := mustRunMain(t, time.Time{}, func(c *Config) { c.DB = dbPath })
	for _, tt := range []struct {
		secret string
		status int
	}{{caseSecret, 200}, {caseOldSecret, 200}, {"plaud_third_secret", 400}} {
		body := []byte(`{"event":"transcription.completed","id":"` + tt.secret + `"}`)
		if status, reply := signedPost(t, m.URL()+"/webhook/calls", tt.secret, body); status != tt.status {
			t.Errorf("signed by %s…: %d %s, want %d", tt.secret[:8], status, reply, tt.status)
		}
	}
	entries, _, _ := m.DB.FindAuditEntries(context.Background(), db.AuditFilter{Actor: "cli"})
	got := map[string]bool{}
	for _, e := range entries {
		got[e.Action] = true
	}
	for _, a := range []string{"endpoint.create", "secret.create", "secret.rotate", "secret.revoke"} {
		if !got[a] {
			t.Errorf("no %s audit entry by cli", a)
		}
	}
}

// TestMasterKeyRotationServe: a server refuses to start without the key its stored secrets were
// sealed with; given the new key first and the old one after, it re-seals them, after which the
// new key alone suffices.
func TestMasterKeyRotationServe(t *testing.T) {
	oldKey, newKey := sealed.GenerateKey(), sealed.GenerateKey()
	dbPath := filepath.Join(t.TempDir(), "plaudhook.db")
	withKeys := func(keys ...[]byte) func(*Config) {
		return func(c *Config) { c.DB = dbPath; c.MasterKeys = keys }
	}
	m := mustRunMain(t, time.Time{}, withKeys(oldKey))
	if _, err := m.DB.CreateSecret(context.Background(), db.NewSecret{EndpointID: 1, Label: "stored", Value: caseSecret}); err != nil {
		t.Fatal(err)
	}
	m.Close()

	c := defaultConfig()
	c.Addr, c.AdminPass = "127.0.0.1:0", adminPassword
	withKeys(newKey)(&c)
	bad := &Main{Config: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	err := bad.Run(context.Background())
	bad.Close()
	if err == nil || !strings.Contains(err.Error(), sealed.KeyID(oldKey)) {
		t.Fatalf("start with the wrong key: %v, want a refusal naming key %s", err, sealed.KeyID(oldKey))
	}

	m = mustRunMain(t, time.Time{}, withKeys(newKey, oldKey))
	m.Close()
	m = mustRunMain(t, time.Time{}, withKeys(newKey))
	if status, body := signedPost(t, m.URL()+"/webhook", caseSecret, caseB1); status != 200 {
		t.Fatalf("after re-sealing: %d %s", status, body)
	}
}

// TestEnvironmentSecretsListed: secrets from PLAUD_WEBHOOK_SECRET are listed read-only, "from
// environment", with their match counts; one no longer configured disappears on restart.
func TestEnvironmentSecretsListed(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "plaudhook.db")
	m := mustRunMain(t, time.Time{}, func(c *Config) { c.DB = dbPath; c.Secrets = []string{caseSecret, caseOldSecret} })
	if status, _ := signedPost(t, m.URL()+"/webhook", caseOldSecret, caseB1); status != 200 {
		t.Fatal("env secret #2 does not verify")
	}
	type apiSecret struct {
		Label       string `json:"label"`
		Fingerprint string `json:"fingerprint"`
		Source      string `json:"source"`
		MatchCount  int    `json:"match_count"`
	}
	secrets := func(m *Main) []apiSecret {
		c := browserClient()
		if st := httpSignIn(t, c, m.URL(), "admin", adminPassword); st != http.StatusSeeOther {
			t.Fatalf("sign in: %d", st)
		}
		resp, err := c.Get(m.URL() + "/api/v1/endpoints")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got struct {
			Endpoints []struct {
				Secrets []apiSecret `json:"secrets"`
			} `json:"endpoints"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		return got.Endpoints[0].Secrets
	}
	got := secrets(m)
	want := []apiSecret{
		{"PLAUD_WEBHOOK_SECRET #1", db.Fingerprint([]byte(caseSecret)), "environment", 0},
		{"PLAUD_WEBHOOK_SECRET #2", db.Fingerprint([]byte(caseOldSecret)), "environment", 1},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("secrets = %+v\nwant %+v", got, want)
	}
	m.Close()

	m = mustRunMain(t, time.Time{}, func(c *Config) { c.DB = dbPath; c.Secrets = []string{caseOldSecret} })
	got = secrets(m)
	if len(got) != 1 || got[0].Fingerprint != want[1].Fingerprint || got[0].MatchCount != 1 || got[0].Label != "PLAUD_WEBHOOK_SECRET" {
		t.Fatalf("after restart = %+v, want only the old one, its count kept", got)
	}
	// Read-only: there is no revoke button for it, and revoking it is refused.
	rows, _ := m.DB.FindSecrets(context.Background(), 1)
	var ve *db.ValidationError
	if _, err := m.DB.RevokeSecret(context.Background(), rows[0].ID); !errors.As(err, &ve) {
		t.Errorf("revoke env secret: %v", err)
	}
}

// TestSecretFileTrimmedC17: a PLAUD_WEBHOOK_SECRET_FILE whose value ends in a newline (as editors
// write files) yields the trimmed secret, which verifies B1; a delivery signed with the value
// including the newline is refused, since the verifier does not guess variants.
func TestSecretFileTrimmedC17(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plaud-secret")
	if err := os.WriteFile(file, []byte(caseSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PLAUD_WEBHOOK_SECRET_FILE": file}
	c, err := parseServeFlags(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Secrets) != 1 || c.Secrets[0] != caseSecret {
		t.Fatalf("secrets from the file = %q, want the trimmed value", c.Secrets)
	}
	m := mustRunMain(t, time.Time{}, func(mc *Config) { mc.Secrets = c.Secrets })
	if status, body := postSigned(t, m.URL()+"/webhook", map[string]string{
		"Plaud-Signature": "f7b769ef5f5cd3dc7d658aea9e2a211e7798d637e0ca4379150c8448335305b1"}, caseB1); status != 200 {
		t.Fatalf("B1 with f7b769ef…: %d %s", status, body)
	}
	if status, _ := signedPost(t, m.URL()+"/webhook", caseSecret+"\n", caseB1); status != 400 {
		t.Fatalf("signed with the untrimmed value: %d, want 400", status)
	}
}
