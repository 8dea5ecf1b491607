package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// OpsConfig is the operations part of Config: TLS, a second listener for webhooks, trusted
// proxies, metrics access and retention.
type OpsConfig struct {
	TLSCert, TLSKey   string         // serve HTTPS with this certificate and key (both or none)
	WebhookAddr       string         // second listener with only the webhook endpoints and health
	TrustedProxies    []netip.Prefix // proxies whose X-Forwarded-For is believed
	MetricsToken      string         // bearer token for /metrics; empty: loopback only
	RetainDays        int            // delete events last delivered more than N days ago (0: keep)
	RetainPerEndpoint int            // keep at most M newest events per endpoint (0: no limit)
	RejectedMax       int            // rejected deliveries kept
	RejectedMaxBytes  int64          // bytes rejected deliveries keep
	DiskWarn          int64          // warn on pages below this much free disk (0: never)
	RetentionEvery    time.Duration  // interval of retention passes

	// Not flags: tests shorten them.
	WriteTimeout       time.Duration // http.Server.WriteTimeout (event streams clear it)
	StreamWriteTimeout time.Duration // one stream write may block this long before the drop
	StreamInterval     time.Duration // least time between two writes of rows to a stream (0: web's default)

	MaxStreams        int // live streams open at once, in all
	MaxStreamsPerUser int // ... and per user
}

// defaultOps are the documented defaults: keep every event, bound rejected deliveries.
func defaultOps() OpsConfig {
	return OpsConfig{
		RejectedMax:        10000,
		MaxStreams:         1000,
		MaxStreamsPerUser:  32,
		RejectedMaxBytes:   256 << 20,
		DiskWarn:           1 << 30,
		RetentionEvery:     5 * time.Minute,
		WriteTimeout:       60 * time.Second,
		StreamWriteTimeout: 10 * time.Second,
	}
}

// opsFlags registers the operations flags on fs (environment fallbacks through env) and returns a
// function that validates them after parsing, returning every problem found.
func (c *Config) opsFlags(fs *flag.FlagSet, env func(name, def string) string, getenv func(string) string) func() []string {
	o := &c.Ops
	fs.StringVar(&o.TLSCert, "tls-cert", env("PLAUDHOOK_TLS_CERT", ""),
		"serve HTTPS with this PEM certificate (chain) file; cookies become Secure (PLAUDHOOK_TLS_CERT)")
	fs.StringVar(&o.TLSKey, "tls-key", env("PLAUDHOOK_TLS_KEY", ""),
		"PEM private key of --tls-cert (PLAUDHOOK_TLS_KEY)")
	fs.StringVar(&o.WebhookAddr, "webhook-addr", env("PLAUDHOOK_WEBHOOK_ADDR", ""),
		"second listen address serving only the webhook endpoints and health checks (PLAUDHOOK_WEBHOOK_ADDR)")
	proxies := fs.String("trusted-proxies", env("PLAUDHOOK_TRUSTED_PROXIES", ""),
		"comma-separated proxy addresses or CIDRs whose X-Forwarded-For is believed (PLAUDHOOK_TRUSTED_PROXIES)")
	days := fs.String("retain-days", env("PLAUDHOOK_RETAIN_DAYS", "0"),
		"delete events whose last delivery is older than this many days; 0 keeps them (PLAUDHOOK_RETAIN_DAYS)")
	perEndpoint := fs.String("retain-per-endpoint", env("PLAUDHOOK_RETAIN_PER_ENDPOINT", "0"),
		"keep at most this many newest events per endpoint; 0 means no limit (PLAUDHOOK_RETAIN_PER_ENDPOINT)")
	rejMax := fs.String("rejected-max", env("PLAUDHOOK_REJECTED_MAX", strconv.Itoa(o.RejectedMax)),
		"rejected deliveries kept (PLAUDHOOK_REJECTED_MAX)")
	rejBytes := fs.String("rejected-max-bytes", env("PLAUDHOOK_REJECTED_MAX_BYTES", "256MiB"),
		"bytes rejected deliveries may keep, bodies and headers (PLAUDHOOK_REJECTED_MAX_BYTES)")
	maxStreams := fs.String("max-streams", env("PLAUDHOOK_MAX_STREAMS", strconv.Itoa(o.MaxStreams)),
		"live event streams (open pages) the server holds at once; more are refused with 429 (PLAUDHOOK_MAX_STREAMS)")
	maxUserStreams := fs.String("max-streams-per-user", env("PLAUDHOOK_MAX_STREAMS_PER_USER", strconv.Itoa(o.MaxStreamsPerUser)),
		"live event streams one user may hold open (PLAUDHOOK_MAX_STREAMS_PER_USER)")
	diskWarn := fs.String("disk-warn", env("PLAUDHOOK_DISK_WARN", "1GiB"),
		"show a low-disk warning below this much free space; 0 turns it off (PLAUDHOOK_DISK_WARN)")

	return func() []string {
		var problems []string

		// The metrics token is a secret: environment or file only, never a flag (ps shows flags).
		o.MetricsToken = strings.TrimSpace(getenv("PLAUDHOOK_METRICS_TOKEN"))
		if f := getenv("PLAUDHOOK_METRICS_TOKEN_FILE"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				problems = append(problems, fmt.Sprintf("PLAUDHOOK_METRICS_TOKEN_FILE: %v", err))
			}
			o.MetricsToken = strings.TrimSpace(string(b))
		}
		if (o.TLSCert == "") != (o.TLSKey == "") {
			problems = append(problems, "--tls-cert and --tls-key: give both or neither")
		}
		if o.WebhookAddr != "" {
			if _, _, err := net.SplitHostPort(o.WebhookAddr); err != nil {
				problems = append(problems, fmt.Sprintf("--webhook-addr %q: want host:port, like 0.0.0.0:8443", o.WebhookAddr))
			}
		}
		var err error
		if o.TrustedProxies, err = parsePrefixes(*proxies); err != nil {
			problems = append(problems, fmt.Sprintf("--trusted-proxies: %v", err))
		}
		count := func(name, v string, dst *int) {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 {
				problems = append(problems, fmt.Sprintf("%s %q: want a whole number, 0 or more", name, v))
			}
			*dst = n
		}
		count("--retain-days", *days, &o.RetainDays)
		count("--retain-per-endpoint", *perEndpoint, &o.RetainPerEndpoint)
		count("--rejected-max", *rejMax, &o.RejectedMax)
		if o.RejectedMax < 1 {
			problems = append(problems, "--rejected-max: keep at least 1")
		}
		for _, f := range []struct {
			name, v string
			dst     *int
		}{{"--max-streams", *maxStreams, &o.MaxStreams}, {"--max-streams-per-user", *maxUserStreams, &o.MaxStreamsPerUser}} {
			if n, err := strconv.Atoi(strings.TrimSpace(f.v)); err != nil || n < 1 {
				problems = append(problems, fmt.Sprintf("%s %q: want a whole number, at least 1", f.name, f.v))
			} else {
				*f.dst = n
			}
		}
		if o.RejectedMaxBytes, err = parseSize(*rejBytes); err != nil || o.RejectedMaxBytes < 1<<20 {
			problems = append(problems, fmt.Sprintf("--rejected-max-bytes %q: want a size of at least 1MiB", *rejBytes))
		}
		if o.DiskWarn, err = parseSize(*diskWarn); err != nil {
			problems = append(problems, fmt.Sprintf("--disk-warn %q: want a size like 1GiB, or 0", *diskWarn))
		}
		return problems
	}
}

// parsePrefixes reads a comma-separated list of IP addresses and CIDR prefixes.
func parsePrefixes(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", f)
		}
		ip = ip.Unmap()
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}

// tlsConfig loads the certificate once, at start-up, so a bad file stops the server with a clear
// message instead of failing every handshake.
func (c *Config) tlsConfig() (*tls.Config, error) {
	if c.Ops.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.Ops.TLSCert, c.Ops.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// ops is what Main runs beside the main listener: the webhook listener and retention.
type ops struct {
	tls     *tls.Config
	webhook *http.Server
	wln     net.Listener
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// serve starts srv on ln, over TLS when configured, reporting a failure on done.
func (o *ops) serve(srv *http.Server, ln net.Listener, done chan<- error) {
	if o.tls != nil {
		srv.TLSConfig = o.tls.Clone()
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		select {
		case done <- err:
		default:
		}
	}()
}

// startOps starts what runs beside the dashboard listener: the webhook-only listener (when
// configured) and the retention loop. Main.Close stops them.
func (m *Main) startOps(ctx context.Context) error {
	c := m.Config

	// The webhook-only listener.
	if c.Ops.WebhookAddr != "" {
		ln, err := net.Listen("tcp", c.Ops.WebhookAddr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", c.Ops.WebhookAddr, err)
		}
		m.ops.wln = ln
		m.ops.webhook = m.newHTTPServer(m.Server.WebhookHandler())
		m.ops.serve(m.ops.webhook, ln, m.done)
		m.Logger.Info("listening for webhooks only", "addr", ln.Addr().String(),
			"webhook", m.WebhookURL()+"/webhook")
	}

	// Retention runs until Close.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.ops.cancel = cancel
	m.ops.wg.Add(1)
	go func() {
		defer m.ops.wg.Done()
		m.DB.RunRetention(rctx, c.Ops.RetentionEvery)
	}()
	return nil
}

// newHTTPServer builds an http.Server with plaudhook's timeouts. Event streams clear the write
// timeout for themselves; shutting down ends them (CloseStreams).
func (m *Main) newHTTPServer(h http.Handler) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      m.Config.Ops.WriteTimeout,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          httpErrorLog(m.Logger),
		ConnContext:       m.Server.ConnContext, // streams cap their send buffer
	}
	srv.RegisterOnShutdown(m.Server.CloseStreams)
	return srv
}

// stopOps shuts the webhook listener down (in-flight deliveries finish) and stops retention.
func (m *Main) stopOps(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	if m.ops.webhook != nil {
		if err = m.ops.webhook.Shutdown(ctx); err != nil {
			m.ops.webhook.Close()
		}
	}
	if m.ops.cancel != nil {
		m.ops.cancel()
		m.ops.wg.Wait()
	}
	return err
}

// WebhookURL is the base URL of the webhook-only listener ("" without one).
func (m *Main) WebhookURL() string {
	if m.ops.wln == nil {
		return ""
	}
	return m.scheme() + "://" + reachable(m.ops.wln.Addr())
}

// scheme is https when serving TLS.
func (m *Main) scheme() string {
	if m.Config.Ops.TLSCert != "" {
		return "https"
	}
	return "http"
}

// httpErrorLog routes net/http's own messages (TLS handshake errors and the like) to the logger.
func httpErrorLog(log *slog.Logger) *stdlog.Logger {
	return slog.NewLogLogger(log.Handler(), slog.LevelWarn)
}

// diskWarnBytes maps --disk-warn to web.Config.DiskWarnBytes, where 0 means the default and a
// negative value turns the warning off.
func diskWarnBytes(v int64) int64 {
	if v == 0 {
		return -1
	}
	return v
}
