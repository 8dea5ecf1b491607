package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is everything `plaudhook serve` can be told, filled from flags with environment
// fallbacks. Tests fill it directly.
type Config struct {
	Addr        string        // listen address
	DB          string        // SQLite file
	BaseURL     string        // public URL of the dashboard, if any; https makes cookies Secure
	Secrets     []string      // signing secrets of the default endpoint
	SecretFile  string        // file holding signing secrets, one per line or comma-separated
	BodyLimit   int64         // bytes
	BodyMemory  int64         // bytes of webhook bodies all requests may hold at once; 0: default
	Tolerance   time.Duration // embedded-scheme timestamp tolerance
	LogLevel    string
	LogFormat   string
	Synchronous string
	AdminPass   string // first-run admin password (random when empty)
	// MasterKeys seal stored signing secrets: the current key first, then previous ones while a
	// rotation re-seals. Empty: a key file beside the database (secret.go).
	MasterKeys  [][]byte
	Heartbeat   time.Duration
	SessionIdle time.Duration
	SessionMax  time.Duration
	Ops         OpsConfig // TLS, webhook listener, proxies, metrics, retention (operations.go)

	Now func() time.Time // the clock; tests inject one
}

// defaultConfig is the embedded default: loopback, a file under ./data, Plaud-sized limits.
func defaultConfig() Config {
	return Config{
		Addr:        "127.0.0.1:8080",
		DB:          "./data/plaudhook.db",
		BodyLimit:   25 << 20,
		Tolerance:   5 * time.Minute,
		LogLevel:    "info",
		LogFormat:   "text",
		Synchronous: "FULL",
		Heartbeat:   15 * time.Second,
		SessionIdle: 2 * time.Hour,
		SessionMax:  12 * time.Hour,
		Ops:         defaultOps(),
	}
}

// parseServeFlags fills a Config from args and the environment (flags win), then validates it.
func parseServeFlags(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	c := defaultConfig()
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", env("PLAUDHOOK_ADDR", c.Addr), "listen address (PLAUDHOOK_ADDR)")
	fs.StringVar(&c.DB, "db", env("PLAUDHOOK_DB", c.DB), "SQLite database file (PLAUDHOOK_DB)")
	fs.StringVar(&c.BaseURL, "base-url", env("PLAUDHOOK_BASE_URL", ""),
		"public URL of the dashboard; https:// marks cookies Secure (PLAUDHOOK_BASE_URL)")
	limit := fs.String("body-limit", env("PLAUDHOOK_BODY_LIMIT", "25MiB"),
		"largest webhook body accepted, e.g. 25MiB (PLAUDHOOK_BODY_LIMIT)")
	bodyMem := fs.String("body-memory", env("PLAUDHOOK_BODY_MEMORY", ""),
		"memory all webhook bodies in flight may use together; past it deliveries get 503 "+
			"(default 256MiB, or 4× --body-limit) (PLAUDHOOK_BODY_MEMORY)")
	tol := fs.String("tolerance", env("PLAUDHOOK_TOLERANCE", "5m"),
		"accepted clock difference of Plaud-Timestamp (PLAUDHOOK_TOLERANCE)")
	fs.StringVar(&c.LogLevel, "log-level", env("PLAUDHOOK_LOG_LEVEL", c.LogLevel),
		"debug, info, warn or error (PLAUDHOOK_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", env("PLAUDHOOK_LOG_FORMAT", c.LogFormat),
		"text or json (PLAUDHOOK_LOG_FORMAT)")
	fs.StringVar(&c.Synchronous, "synchronous", env("PLAUDHOOK_SYNCHRONOUS", c.Synchronous),
		"SQLite synchronous mode: FULL or EXTRA (durable), or NORMAL (PLAUDHOOK_SYNCHRONOUS)")
	opsCheck := c.opsFlags(fs, env, getenv)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: plaudhook serve [flags]\n\nRuns the server: the webhook endpoints, the dashboard and the API. Every flag can also\nbe set by the environment variable named beside it; more settings are environment-only\n(see the README's configuration table).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	var problems []string
	if v := getenv("PLAUD_WEBHOOK_SECRET"); v != "" {
		c.Secrets = splitSecrets(v)
	}
	c.SecretFile = getenv("PLAUD_WEBHOOK_SECRET_FILE")
	if c.SecretFile != "" {
		b, err := os.ReadFile(c.SecretFile)
		if err != nil {
			problems = append(problems, fmt.Sprintf("PLAUD_WEBHOOK_SECRET_FILE: %v", err))
		}
		c.Secrets = append(c.Secrets, splitSecrets(string(b))...)
	}
	c.AdminPass = getenv("PLAUDHOOK_ADMIN_PASSWORD")
	var keyProblems []string
	c.MasterKeys, keyProblems = masterKeysFromEnv(getenv) // secret.go
	problems = append(problems, keyProblems...)
	problems = append(problems, opsCheck()...)

	var err error
	if c.BodyLimit, err = parseSize(*limit); err != nil || c.BodyLimit < 1024 {
		problems = append(problems, fmt.Sprintf("--body-limit %q: want a size of at least 1KiB, like 25MiB", *limit))
	}
	if *bodyMem != "" {
		if c.BodyMemory, err = parseSize(*bodyMem); err != nil || c.BodyMemory < c.BodyLimit {
			problems = append(problems, fmt.Sprintf("--body-memory %q: want a size no smaller "+
				"than --body-limit, like 256MiB", *bodyMem))
		}
	}
	if c.Tolerance, err = time.ParseDuration(*tol); err != nil || c.Tolerance <= 0 {
		problems = append(problems, fmt.Sprintf("--tolerance %q: want a positive duration, like 5m", *tol))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		problems = append(problems, fmt.Sprintf("--addr %q: want host:port, like 127.0.0.1:8080", c.Addr))
	}
	if c.DB == "" {
		problems = append(problems, "--db: a database file is required")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		problems = append(problems, err.Error())
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		problems = append(problems, fmt.Sprintf("--log-format %q: want text or json", c.LogFormat))
	}
	c.Synchronous = strings.ToUpper(c.Synchronous)
	if c.Synchronous != "FULL" && c.Synchronous != "NORMAL" && c.Synchronous != "EXTRA" {
		problems = append(problems, fmt.Sprintf("--synchronous %q: want FULL, EXTRA or NORMAL", c.Synchronous))
	}
	if c.BaseURL != "" {
		if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, fmt.Sprintf("--base-url %q: want an http:// or https:// URL", c.BaseURL))
		}
	}
	for i, s := range c.Secrets {
		if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			problems = append(problems, fmt.Sprintf("PLAUD_WEBHOOK_SECRET #%d contains control characters", i+1))
		}
	}
	if len(problems) > 0 {
		return c, errors.New("invalid configuration:\n  - " + strings.Join(problems, "\n  - "))
	}
	return c, nil
}

// splitSecrets splits a comma- or newline-separated list of secrets, trimming the whitespace a
// paste or a file's final newline adds.
func splitSecrets(v string) []string {
	var out []string
	for _, s := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseSize reads a byte count like "1048576", "512KiB", "25MiB" or "1GiB".
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// newLogger builds the one logger the server uses.
func newLogger(c Config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
