package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/db/sealed"
	"github.com/plaudhook/plaudhook/web/signature"
)

// masterKeyFile is the name of the master key generated beside the database on first run.
const masterKeyFile = "master-key"

// masterKeysFromEnv reads PLAUDHOOK_MASTER_KEY (or the file PLAUDHOOK_MASTER_KEY_FILE names):
// one key, or a comma- or newline-separated list whose first key is current and whose others
// are previous keys still needed to open secrets sealed before a rotation. Each key is 64 hex
// digits or base64 of 32 bytes. It returns the problems to report with the rest of the config.
func masterKeysFromEnv(getenv func(string) string) ([][]byte, []string) {
	raw, file := getenv("PLAUDHOOK_MASTER_KEY"), getenv("PLAUDHOOK_MASTER_KEY_FILE")
	name := "PLAUDHOOK_MASTER_KEY"
	switch {
	case raw != "" && file != "":
		return nil, []string{"PLAUDHOOK_MASTER_KEY and PLAUDHOOK_MASTER_KEY_FILE are both set: use one"}
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, []string{fmt.Sprintf("PLAUDHOOK_MASTER_KEY_FILE: %v", err)}
		}
		raw, name = string(b), "PLAUDHOOK_MASTER_KEY_FILE"
	case raw == "":
		return nil, nil
	}
	var keys [][]byte
	var problems []string
	for i, s := range splitSecrets(raw) {
		k, err := sealed.ParseKey(s)
		if err != nil {
			// Never echo the value: it is a secret even when malformed.
			problems = append(problems, fmt.Sprintf("%s key #%d: %v", name, i+1, err))
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 && len(problems) == 0 {
		problems = append(problems, name+" holds no key")
	}
	return keys, problems
}

// loadKeyring builds the keyring that seals stored secrets: the configured keys, or else the key
// file beside the database, generated with mode 0600 on first use. The generated key protects a
// copy of the database alone; keep it (or set PLAUDHOOK_MASTER_KEY) wherever the database goes.
//
// No key is generated for a database that already holds sealed values (one copied or restored
// without its key file): a new key could open none of them, and left beside the database it
// would be mistaken for the right one. No key file is ever removed.
func loadKeyring(ctx context.Context, keys [][]byte, dbPath string, log *slog.Logger) (*sealed.Keyring, error) {
	if len(keys) > 0 {
		return sealed.New(keys[0], keys[1:]...)
	}

	path := filepath.Join(filepath.Dir(dbPath), masterKeyFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if ids := sealedKeyIDs(ctx, dbPath); len(ids) > 0 {
			return nil, fmt.Errorf("%s holds values sealed with master key %s, and no master key "+
				"is configured: if it was copied or restored from elsewhere, put the master-key file "+
				"that was beside it at %s, or set PLAUDHOOK_MASTER_KEY (or _FILE) to that key",
				dbPath, strings.Join(ids, ", "), path)
		}
		if err := generateKeyFile(path); err != nil {
			return nil, err
		}
		log.Warn("generated a master key for stored signing secrets; back it up with the "+
			"database, or set PLAUDHOOK_MASTER_KEY_FILE to keep it elsewhere", "file", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read master key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the master key file can be read by other users; chmod 600 it", "file", path,
			"mode", fi.Mode().Perm().String())
	}
	key, err := sealed.ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return sealed.New(key)
}

// sealedKeyIDs returns the master keys that values already stored in the database at dbPath
// (signing secrets, replay targets' secrets and headers) were sealed with: none for a new
// database, or for one that cannot be read here (opening it for real then says why).
func sealedKeyIDs(ctx context.Context, dbPath string) []string {
	if _, err := os.Stat(dbPath); err != nil {
		return nil
	}
	d, err := db.OpenReadOnly(ctx, dbPath)
	if err != nil {
		return nil
	}
	defer d.Close()
	secrets, _ := d.FindSecretKeyIDs(ctx)
	targets, _ := d.FindTargetKeyIDs(ctx)
	ids := append(secrets, targets...)
	slices.Sort(ids)
	return slices.Compact(ids)
}

// generateKeyFile writes a new random master key to path with mode 0600. O_EXCL: two processes
// starting at once never overwrite each other's key (the loser reads the winner's).
func generateKeyFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("master key folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write master key %s: %w", path, err)
	}
	_, err = f.WriteString(sealed.EncodeKey(sealed.GenerateKey()) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write master key %s: %w", path, err)
	}
	return nil
}

// checkSecretKeys refuses to start when stored secrets were sealed under a master key that is not
// configured (deliveries would all be rejected), and re-seals under the current key the secrets
// a rotation left under a previous one.
func checkSecretKeys(ctx context.Context, d *db.DB, ring *sealed.Keyring, log *slog.Logger) error {
	ids, err := d.FindSecretKeyIDs(ctx)
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
		return fmt.Errorf("stored signing secrets are sealed with master key %s, which is not "+
			"configured: set PLAUDHOOK_MASTER_KEY (or _FILE) to that key; after a rotation list "+
			"the new key first, then the old one", strings.Join(missing, ", "))
	}
	if !stale {
		return nil
	}
	n, err := d.ResealSecrets(ctx)
	if err != nil {
		return err
	}
	log.Info("re-sealed stored secrets under the current master key", "secrets", n,
		"key_id", ring.KeyID())
	return nil
}

// syncEnvSecrets records the environment's secrets of the default endpoint (label and
// fingerprint, never the value), so the UI lists them read-only with their match counts, and
// returns them carrying their row ids.
func syncEnvSecrets(ctx context.Context, d *db.DB, secrets []signature.Secret) ([]signature.Secret, error) {
	env := make([]db.EnvSecret, len(secrets))
	for i, s := range secrets {
		env[i] = db.EnvSecret{Label: s.Label, Fingerprint: db.Fingerprint(s.Key)}
	}
	rows, err := d.SyncEnvironmentSecrets(ctx, db.DefaultEndpointID, env)
	if err != nil {
		return nil, err
	}
	ids := map[string]int64{}
	for _, r := range rows {
		ids[r.Fingerprint] = r.ID
	}
	out := make([]signature.Secret, 0, len(secrets))
	seen := map[int64]bool{}
	for _, s := range secrets {
		id := ids[db.Fingerprint(s.Key)]
		if seen[id] { // the same value listed twice
			continue
		}
		seen[id] = true
		s.ID = id
		out = append(out, s)
	}
	return out, nil
}

// selfURL is where "send a test event" reaches this server's webhooks: the webhook-only listener
// when there is one, else the dashboard's, on loopback when it listens on every address.
func (m *Main) selfURL() string {
	base := m.WebhookURL()
	if base == "" {
		base = m.URL()
	}
	scheme, hostport, _ := strings.Cut(base, "://")
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return base
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// openWithKeys opens the database for a CLI command, with the master keyring, so stored secrets
// can be written and read.
func openWithKeys(ctx context.Context, dbPath string, stderr io.Writer) (*db.DB, error) {
	keys, problems := masterKeysFromEnv(os.Getenv)
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ring, err := loadKeyring(ctx, keys, dbPath, log)
	if err != nil {
		return nil, err
	}
	d, err := db.Open(ctx, dbPath, db.Options{Sealer: ring})
	if err != nil {
		return nil, err
	}
	if err := checkSecretKeys(ctx, d, ring, log); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

var secretCommands = commandGroup{name: "secret", subs: []subcommand{
	{"add", "add a signing secret to an endpoint (the value is read from standard input)", []string{"endpoint", "label"}},
	{"rotate", "add a new secret and retire the others after a while (value from standard input)", []string{"endpoint", "label", "retire-after"}},
	{"revoke", "stop a secret verifying at once, by --label or --id", []string{"endpoint", "label", "id"}},
	{"list", "list an endpoint's secrets: labels, fingerprints, states (never values)", []string{"endpoint"}},
}}

// runSecret is `plaudhook secret add|rotate|revoke|list`. The value of a new secret is read from
// standard input, so it never shows in the process list or the shell history. Changes are
// audited with the actor "cli"; a running server picks them up within seconds.
func runSecret(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	sc, args, err := secretCommands.pick(args, stderr)
	if err != nil {
		return err
	}
	sub := sc.name
	fs := flag.NewFlagSet("secret "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", envOr("PLAUDHOOK_DB", defaultConfig().DB), "SQLite database file (PLAUDHOOK_DB)")
	slug := fs.String("endpoint", "default", "endpoint slug")
	label := fs.String("label", "", "the secret's label (add: required; revoke: which one)")
	id := fs.Int64("id", 0, "revoke: the secret's id (see secret list), instead of --label")
	retire := fs.Duration("retire-after", db.DefaultRetireAfter, "rotate: how long the old secrets keep verifying")
	if err := secretCommands.parse(fs, sc, args, stderr); err != nil {
		return err
	}
	d, err := openWithKeys(ctx, *dbPath, stderr)
	if err != nil {
		return err
	}
	defer d.Close()
	e, err := d.FindEndpointBySlug(ctx, *slug)
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("no endpoint %q (plaudhook endpoint list shows them)", *slug)
	}
	if err != nil {
		return fmt.Errorf("endpoint %q: %w", *slug, err)
	}
	target := "endpoint " + e.Slug

	switch sub {
	case "list":
		return secretList(ctx, d, e, stdout)
	case "add", "rotate":
		if sub == "add" && *label == "" {
			return fmt.Errorf("--label is required")
		}
		if *label == "" {
			*label = "rotated " + time.Now().UTC().Format("2006-01-02 15:04")
		}
		value, err := readSecret(stdin, stderr)
		if err != nil {
			return err
		}
		in := db.NewSecret{EndpointID: e.ID, Label: *label, Value: value, CreatedBy: "cli"}
		if sub == "add" {
			s, err := d.CreateSecret(ctx, in)
			if err != nil {
				return err
			}
			cliAudit(ctx, d, stderr, "secret.create", target,
				fmt.Sprintf("added %q (fingerprint %s)", s.Label, s.Fingerprint))
			fmt.Fprintf(stdout, "added secret %q (fingerprint %s) to %s\n", s.Label, s.Fingerprint, e.Slug)
			return nil
		}
		s, retired, err := d.RotateSecret(ctx, in, *retire)
		if err != nil {
			return err
		}
		detail := fmt.Sprintf("new %q (fingerprint %s)", s.Label, s.Fingerprint)
		for _, o := range retired {
			detail += fmt.Sprintf("; retiring %q (%s) until %s", o.Label, o.Fingerprint, o.RetireAt.Format(time.RFC3339))
		}
		cliAudit(ctx, d, stderr, "secret.rotate", target, detail)
		fmt.Fprintf(stdout, "rotated %s: %q (fingerprint %s) is active", e.Slug, s.Label, s.Fingerprint)
		if len(retired) > 0 {
			fmt.Fprintf(stdout, "; %d previous secret(s) verify until %s", len(retired),
				retired[0].RetireAt.Format(time.RFC3339))
		}
		fmt.Fprintln(stdout)
		return nil
	case "revoke":
		sid := *id
		if sid == 0 {
			if sid, err = secretIDByLabel(ctx, d, e.ID, *label); err != nil {
				return err
			}
		}
		s, err := d.FindSecretByID(ctx, sid)
		if err == nil && s.EndpointID != e.ID {
			err = fmt.Errorf("secret %d is not on endpoint %s: %w", sid, e.Slug, db.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if s, err = d.RevokeSecret(ctx, sid); err != nil {
			return err
		}
		cliAudit(ctx, d, stderr, "secret.revoke", target,
			fmt.Sprintf("revoked %q (fingerprint %s)", s.Label, s.Fingerprint))
		fmt.Fprintf(stdout, "revoked secret %q (fingerprint %s) of %s\n", s.Label, s.Fingerprint, e.Slug)
		return nil
	}
	return fmt.Errorf("unknown secret command %q", sub)
}

// secretIDByLabel finds the secret still in use on an endpoint with label.
func secretIDByLabel(ctx context.Context, d *db.DB, endpointID int64, label string) (int64, error) {
	if label == "" {
		return 0, fmt.Errorf("--label or --id is required")
	}
	secrets, err := d.FindSecrets(ctx, endpointID)
	if err != nil {
		return 0, err
	}
	for _, s := range secrets {
		if s.Label == label && s.State != db.SecretRevoked {
			return s.ID, nil
		}
	}
	return 0, fmt.Errorf("no secret %q in use on this endpoint (see plaudhook secret list)", label)
}

// secretList prints an endpoint's secrets: label, fingerprint and state, never a value.
func secretList(ctx context.Context, d *db.DB, e db.Endpoint, stdout io.Writer) error {
	secrets, err := d.FindSecrets(ctx, e.ID)
	if err != nil {
		return err
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLABEL\tFINGERPRINT\tSOURCE\tSTATE\tMATCHES\tLAST MATCHED")
	for _, s := range secrets {
		state := s.Status(now)
		switch state {
		case "retiring":
			state += " until " + s.RetireAt.Format(time.RFC3339)
		case "revoked":
			state += " " + s.RevokedAt.Format(time.RFC3339)
		}
		last := "-"
		if !s.LastMatchedAt.IsZero() {
			last = s.LastMatchedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", s.ID, s.Label, s.Fingerprint, s.Source,
			state, s.MatchCount, last)
	}
	return tw.Flush()
}

// readSecret reads a secret's value, one line, from standard input (a pipe or a terminal). It is
// cleaned like a pasted one: surrounding whitespace is removed, with a notice.
func readSecret(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(stderr, "Secret (input is shown): ")
		}
	}
	if stdin == nil {
		return "", fmt.Errorf("read the secret from standard input: nothing to read")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read the secret from standard input: %w", err)
	}
	value, trimmed, err := db.CleanSecretValue(line)
	if err != nil {
		return "", err
	}
	if trimmed && strings.TrimRight(line, "\r\n") != value {
		fmt.Fprintln(stderr, "note: leading/trailing whitespace removed from the secret")
	}
	return value, nil
}
