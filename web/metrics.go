package web

import (
	"context"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
)

// opsStore is what health, readiness and metrics need from storage.
type opsStore interface {
	Ping(ctx context.Context) error
	DiskStatus() (db.DiskStatus, error)
}

// metrics are the Prometheus series plaudhook exports on /metrics. Each Server has its own
// registry, so several servers (tests) never share counters.
type metrics struct {
	reg        *prometheus.Registry
	deliveries *prometheus.CounterVec
	ack        prometheus.Histogram
	batch      prometheus.Histogram
	replays    *prometheus.CounterVec
	handler    http.Handler
}

// newMetrics registers every series. Gauges that mirror state (open streams, database size) are
// read when scraped, so the hot path only increments counters.
func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plaudhook_deliveries_total",
		Help: "Webhook deliveries answered, by endpoint slug and verdict (verified, duplicate, rejected, unstored).",
	}, []string{"endpoint", "verdict"})
	m.ack = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "plaudhook_ack_seconds",
		Help: "Time from receiving a verified delivery to acknowledging it after its commit.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5,
			5},
	})
	m.batch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "plaudhook_commit_batch_size",
		Help:    "Deliveries that shared one group commit.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
	m.replays = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plaudhook_replay_attempts_total",
		Help: "Outbound replay attempts, by outcome (e.g. ok, failed, refused).",
	}, []string{"outcome"})
	m.reg.MustRegister(m.deliveries, m.ack, m.batch, m.replays,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "plaudhook_open_streams",
			Help: "Event streams (browser tabs) open now.",
		}, func() float64 { return float64(s.hub.Len()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "plaudhook_streams_dropped_total",
			Help: "Event streams closed because their client stopped reading.",
		}, func() float64 { return float64(s.hub.DroppedCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "plaudhook_database_bytes",
			Help: "Size of the SQLite database with its write-ahead log.",
		}, func() float64 {
			st, err := s.store.DiskStatus()
			if err != nil {
				return 0
			}
			return float64(st.DatabaseBytes)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "plaudhook_disk_free_bytes",
			Help: "Free space on the file system holding the database.",
		}, func() float64 {
			st, err := s.store.DiskStatus()
			if err != nil {
				return 0
			}
			return float64(st.FreeBytes)
		}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Export the usual outcomes from the start, at zero, so dashboards and alerts see them.
	for _, o := range []string{"ok", "failed", "refused"} {
		m.replays.WithLabelValues(o)
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

// delivered counts one answered delivery and, for a committed one, its batch and latency.
func (m *metrics) delivered(endpoint, verdict string, out db.IngestResult, took time.Duration) {
	m.deliveries.WithLabelValues(endpoint, verdict).Inc()
	if out.BatchFirst {
		m.batch.Observe(float64(out.BatchSize))
	}
	if verdict == "verified" || verdict == "duplicate" {
		m.ack.Observe(took.Seconds())
	}
}

// countReplayAttempt counts one outbound replay attempt; outcome is a short fixed word such as
// "ok", "failed" or "refused" (never a URL or status text: labels must stay few).
func (s *Server) countReplayAttempt(outcome string) {
	s.metrics.replays.WithLabelValues(outcome).Inc()
}

// handleMetrics serves GET /metrics in Prometheus' text format. With a metrics token configured
// it requires "Authorization: Bearer <token>"; without one it answers only direct connections
// from this machine (no proxy in between, so a reverse proxy on the same host cannot expose it).
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if !s.metricsAllowed(r) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte("metrics need the metrics token, or a direct connection from this machine\n"))
		return
	}
	s.metrics.handler.ServeHTTP(w, r)
}

// metricsAllowed applies the /metrics access rule.
func (s *Server) metricsAllowed(r *http.Request) bool {
	if s.cfg.MetricsToken != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.MetricsToken)) == 1
	}
	if r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "" ||
		r.Header.Get("X-Real-Ip") != "" {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback() && localHost(r.Host)
}

// localHost reports whether a request's Host names this machine: an address, localhost, or the
// machine's own name. A loopback connection whose Host is some other name came from a browser
// whose page rebound that name to 127.0.0.1 (DNS rebinding); it could otherwise read the metrics
// with the page's own origin, as far as the browser can tell.
func localHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	name, err := os.Hostname()
	return err == nil && name != "" && strings.EqualFold(host, name)
}

// handleReady serves GET /readyz: 200 when the database takes a write lock, 503 otherwise, so
// a load balancer or orchestrator stops sending deliveries to a server that cannot store them.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.store.Ping(ctx); err != nil {
		s.log.Error("not ready: database not writable", "error", err)
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("not ready: database not writable\n"))
		return
	}
	w.Write([]byte("ready\n"))
}

// diskWarning is the low-disk notice for pages, or "" while there is room (or the check is off).
func (s *Server) diskWarning() string {
	if s.cfg.DiskWarnBytes < 0 {
		return ""
	}
	st, err := s.store.DiskStatus()
	if err != nil || st.FreeBytes >= uint64(s.cfg.DiskWarnBytes) {
		return ""
	}
	return "Low disk space: " + views.HumanSize(int64(st.FreeBytes)) + " free beside the database (" +
		views.HumanSize(st.DatabaseBytes) + " used by it). When the disk is full, deliveries are " +
		"refused with 503 and Plaud retries them; free space, or shorten retention."
}
