package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web"
	"github.com/plaudhook/plaudhook/web/signature"
)

// Main is a running plaudhook server: its database, HTTP server and listener. Tests build one
// from a Config, Run it on 127.0.0.1:0 and Close it.
type Main struct {
	Config Config
	Logger *slog.Logger
	// Args0 is how the binary was invoked, for the send command printed at start-up.
	Args0 string

	DB     *db.DB
	Server *web.Server
	HTTP   *http.Server
	ln     net.Listener
	done   chan error
	ops    ops // webhook listener and retention (operations.go)
}

// runServe is `plaudhook serve`: parse, run until a signal, shut down gracefully.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseServeFlags(args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	m := &Main{Config: c, Logger: newLogger(c, stderr), Args0: os.Args[0]}

	// Webhook bodies are charged to a budget as they are read (web/budget.go), but the buffers
	// they outgrow while being read are left to the garbage collector: a soft memory limit
	// makes it collect them before they pile up far past the budget. GOMEMLIMIT, when set, wins.
	if os.Getenv("GOMEMLIMIT") == "" {
		bodies := c.BodyMemory
		if bodies == 0 {
			bodies = max(web.DefaultBodyMemory, 4*c.BodyLimit)
		}
		debug.SetMemoryLimit(2*bodies + 256<<20)
	}
	// Webhooks make short-lived garbage at a high rate: collecting at twice the live heap
	// instead of at once more (Go's default) costs a few MB and gives ingest back the time of
	// half the collections. The memory limit above still bounds the heap. GOGC, when set, wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if err := m.Run(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-m.done:
		m.Close()
		return err
	}
	m.Logger.Info("shutting down")
	return m.Close()
}

// Run opens the database, does first-run setup, and starts serving in the background.
func (m *Main) Run(ctx context.Context) error {
	c := m.Config
	if c.Now == nil {
		c.Now = time.Now
	}
	log := m.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
		m.Logger = log
	}
	log.Info("starting plaudhook", "version", version, "commit", commit)
	if c.Synchronous != "FULL" && c.Synchronous != "EXTRA" {
		log.Warn("DURABILITY REDUCED: synchronous is not FULL; acknowledged deliveries can be lost on power failure or OS crash",
			"synchronous", c.Synchronous)
	}

	// The master key that seals stored signing secrets (secret.go), then storage: migrations
	// run here.
	ring, err := loadKeyring(ctx, c.MasterKeys, c.DB, log)
	if err != nil {
		return err
	}
	m.DB, err = db.Open(ctx, c.DB, db.Options{Sealer: ring, Synchronous: c.Synchronous, Logger: log.With("component", "db"), Now: c.Now,
		MaxRejected: c.Ops.RejectedMax, MaxRejectedBytes: c.Ops.RejectedMaxBytes,
		RetainDays: c.Ops.RetainDays, RetainPerEndpoint: c.Ops.RetainPerEndpoint})
	if err != nil {
		return fmt.Errorf("open database %s: %w", c.DB, err)
	}
	if err := checkSecretKeys(ctx, m.DB, ring, log); err != nil {
		return err
	}
	if err := checkTargetKeys(ctx, m.DB, ring, log); err != nil { // replay.go
		return err
	}

	// First run: an admin to sign in with, cookie keys, and a signing secret to try things with.
	if err := m.ensureAdmin(ctx); err != nil {
		return err
	}
	keys, err := m.sessionKeys(ctx)
	if err != nil {
		return err
	}
	generated := "" // the file of a secret generated for trying plaudhook
	if len(c.Secrets) == 0 {
		// The trial secret is for trying plaudhook only: once the default endpoint has a secret
		// of its own (Plaud's, added in the dashboard or the CLI), it is no longer accepted, or
		// every copy of it could sign deliveries to a server in production.
		own, err := m.hasStoredSecret(ctx, db.DefaultEndpointID, c.Now())
		if err != nil {
			return err
		}
		if own {
			log.Info("the default endpoint has a secret of its own: the one generated for trying "+
				"plaudhook is no longer accepted", "file", filepath.Join(filepath.Dir(c.DB), "webhook-secret"))
		} else if generated, c.Secrets, err = m.generatedSecret(); err != nil {
			return err
		}
	}
	// The try-it command names the file the secret is in, when there is one.
	secretFile := generated
	if secretFile == "" {
		secretFile = c.SecretFile
	}
	secrets := make([]signature.Secret, len(c.Secrets))
	for i, s := range c.Secrets {
		secrets[i] = signature.Secret{Label: envSecretLabel(i, len(c.Secrets), generated), Key: []byte(s)}
	}
	// Shown read-only as "from environment" beside the stored ones, with match counts.
	if secrets, err = syncEnvSecrets(ctx, m.DB, secrets); err != nil {
		return fmt.Errorf("environment secrets: %w", err)
	}

	// Listen before building the send hint, so it names the real port.
	if m.ops.tls, err = c.tlsConfig(); err != nil {
		return err
	}
	m.ln, err = net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Addr, err)
	}
	sendCmd := m.sendCommand(secretFile)

	m.Server = web.NewServer(web.Config{
		BodyLimit:  c.BodyLimit,
		BodyMemory: c.BodyMemory,
		Tolerance:  c.Tolerance,
		Secrets: func(_ context.Context, endpointID int64) []signature.Secret {
			if endpointID == 1 { // the default endpoint, created by the first migration
				return secrets
			}
			return nil
		},
		SessionKeys:   keys,
		SecureCookies: strings.HasPrefix(c.BaseURL, "https://") || c.Ops.TLSCert != "",
		SessionIdle:   c.SessionIdle,
		SessionMax:    c.SessionMax,
		Heartbeat:     c.Heartbeat,
		SendCommand:   sendCmd,
		SelfURL:       m.selfURL, // "send a test event" (secret.go)
		Version:       version,
		Now:           c.Now,
		Logger:        log,

		MetricsToken:       c.Ops.MetricsToken,
		TrustedProxies:     c.Ops.TrustedProxies,
		StreamWriteTimeout: c.Ops.StreamWriteTimeout,
		StreamInterval:     c.Ops.StreamInterval,
		MaxStreams:         c.Ops.MaxStreams,
		MaxStreamsPerUser:  c.Ops.MaxStreamsPerUser,
		DiskWarnBytes:      diskWarnBytes(c.Ops.DiskWarn),
	}, m.DB)
	m.HTTP = m.newHTTPServer(m.Server) // the event stream clears the write timeout for itself

	// Forwarding and bulk replays run in the background; jobs a previous run left unfinished
	// resume here.
	m.Server.StartReplayWorkers()
	m.done = make(chan error, 1)
	m.ops.serve(m.HTTP, m.ln, m.done)
	if err := m.startOps(ctx); err != nil {
		return err
	}

	log.Info("listening", "addr", m.ln.Addr().String(), "dashboard", m.URL()+"/",
		"webhook", m.URL()+"/webhook")
	log.Info("try it: send a signed sample event", "command", sendCmd)
	return nil
}

// URL is the base URL the server listens on.
func (m *Main) URL() string { return m.scheme() + "://" + reachable(m.ln.Addr()) }

// reachable is a listener's address as this machine reaches it: a listener on every address
// (0.0.0.0 or [::], which Go reports as [::]) is reached at 127.0.0.1.
func reachable(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok && t.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(t.Port))
	}
	return a.String()
}

// Close stops accepting requests, lets in-flight deliveries finish their commits, then closes the
// database.
func (m *Main) Close() error {
	var err error
	if m.HTTP != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err = m.HTTP.Shutdown(ctx); err != nil {
			m.HTTP.Close()
		}
	}
	if oerr := m.stopOps(context.Background()); err == nil {
		err = oerr
	}
	if m.Server != nil {
		// Attempts in flight are abandoned unrecorded and sent again after the next start.
		m.Server.StopReplayWorkers()
	}
	if m.DB != nil {
		if cerr := m.DB.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// ensureAdmin creates the first user, admin, when there is none, and prints its password once.
func (m *Main) ensureAdmin(ctx context.Context) error {
	n, err := m.DB.CountUsers(ctx)
	if err != nil || n > 0 {
		return err
	}
	pass := m.Config.AdminPass
	generated := pass == ""
	if generated {
		b := make([]byte, 15)
		rand.Read(b)
		pass = base64.RawURLEncoding.EncodeToString(b)
	}
	hash, err := web.HashPassword(pass)
	if err != nil {
		return fmt.Errorf("PLAUDHOOK_ADMIN_PASSWORD: %w", err)
	}
	if _, err := m.DB.CreateUser(ctx, "admin", hash, db.RoleAdmin); err != nil {
		return fmt.Errorf("create first admin: %w", err)
	}
	if generated {
		// Shown once, on the first start only; change it after signing in.
		m.Logger.Warn("first run: created user admin; sign in with this password (shown only now)",
			"username", "admin", "password", pass)
	} else {
		m.Logger.Info("first run: created user admin with PLAUDHOOK_ADMIN_PASSWORD")
	}
	return nil
}

// sessionKeys loads the cookie keys, generating and storing them on first run. There is no
// built-in default: every installation signs its cookies with its own random keys.
func (m *Main) sessionKeys(ctx context.Context) ([][]byte, error) {
	v, err := m.DB.FindSetting(ctx, "session_keys")
	if errors.Is(err, db.ErrNotFound) {
		v = make([]byte, 64+32)
		rand.Read(v)
		err = m.DB.UpdateSetting(ctx, "session_keys", v)
	}
	if err != nil {
		return nil, fmt.Errorf("session keys: %w", err)
	}
	// Pairs of (64-byte hash key, 32-byte block key); the first pair signs new cookies.
	var keys [][]byte
	for len(v) >= 96 {
		keys = append(keys, v[:64], v[64:96])
		v = v[96:]
	}
	return keys, nil
}

// hasStoredSecret reports whether an endpoint has a stored signing secret that verifies at now.
func (m *Main) hasStoredSecret(ctx context.Context, endpointID int64, now time.Time) (bool, error) {
	stored, err := m.DB.FindSecrets(ctx, endpointID)
	if err != nil {
		return false, fmt.Errorf("secrets of the default endpoint: %w", err)
	}
	return slices.ContainsFunc(stored, func(s db.Secret) bool {
		return s.Source == db.SourceStored && s.Usable(now)
	}), nil
}

// generatedSecret reads or creates the signing secret used when none is configured: a random
// value in a 0600 file beside the database, so that a fresh `make run` can verify a signed sample
// at once. Paste the real one from Plaud's portal into PLAUD_WEBHOOK_SECRET for production.
func (m *Main) generatedSecret() (string, []string, error) {
	path := filepath.Join(filepath.Dir(m.Config.DB), "webhook-secret")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, 24)
		rand.Read(raw)
		b = []byte("plaudhook_dev_" + hex.EncodeToString(raw) + "\n")
		if err = os.WriteFile(path, b, 0o600); err == nil {
			m.Logger.Warn("no PLAUD_WEBHOOK_SECRET set: generated a signing secret for trying plaudhook",
				"file", path)
		}
	}
	if err != nil {
		return "", nil, fmt.Errorf("signing secret file: %w", err)
	}
	s := splitSecrets(string(b))
	if len(s) == 0 {
		return "", nil, fmt.Errorf("signing secret file %s is empty", path)
	}
	return path, s, nil
}

// envSecretLabel names a configured secret in the UI without revealing it: where it came from
// and a short fingerprint.
func envSecretLabel(i, n int, file string) string {
	if file != "" {
		return "generated (" + filepath.Base(file) + ")"
	}
	if n == 1 {
		return "PLAUD_WEBHOOK_SECRET"
	}
	return fmt.Sprintf("PLAUD_WEBHOOK_SECRET #%d", i+1)
}

// sendCommand is the exact command that signs a sample and sends it to this server.
func (m *Main) sendCommand(secretFile string) string {
	bin := m.Args0
	if bin == "" {
		bin = "plaudhook"
	}
	secretArg := "--secret \"$PLAUD_WEBHOOK_SECRET\""
	if secretFile != "" {
		secretArg = "--secret-file " + secretFile
	}
	return fmt.Sprintf("%s send --url %s/webhook %s --sample transcription.completed", bin, m.URL(), secretArg)
}

// fingerprint is a short, non-reversible name for a secret value.
func fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:4])
}
