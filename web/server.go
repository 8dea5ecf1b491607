package web

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gorilla/sessions"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/static"
	"github.com/plaudhook/plaudhook/views"
	"github.com/plaudhook/plaudhook/web/live"
	"github.com/plaudhook/plaudhook/web/replay"
	"github.com/plaudhook/plaudhook/web/signature"
)

// Store is everything the server needs from storage.
type Store interface {
	ingestStore
	eventStore
	sessionStore
	auditStore
	opsStore
	tokenStore
	userStore
	auditPageStore
	replayStore  // replayer.go
	forwardStore // forward.go
	bulkStore    // bulk.go
	transcriptStore
	endpointStore // endpoint.go
	secretStore   // secret.go
	explorerStore // explorer.go
}

// Config is the web layer's part of plaudhook's configuration. cmd fills it.
type Config struct {
	// BodyLimit is the largest webhook body accepted, in bytes (after decoding gzip).
	BodyLimit int64
	// RejectedBodyCap is how much of a rejected body is kept for debugging.
	RejectedBodyCap int
	// BodyMemory bounds the bytes of webhook bodies (as received and decoded) that all
	// requests together hold in memory; past it a delivery is answered 503 and retried.
	// Default: DefaultBodyMemory, or four times BodyLimit when that is larger.
	BodyMemory int64
	// Tolerance is the accepted clock difference for the embedded scheme's timestamp.
	Tolerance time.Duration
	// Secrets returns the secrets an endpoint accepts.
	Secrets func(ctx context.Context, endpointID int64) []signature.Secret
	// SessionKeys are gorilla/sessions key pairs (hash key, block key, ...); the first pair
	// signs new cookies, all pairs are tried on read, so keys rotate by prepending a pair.
	SessionKeys [][]byte
	// SecureCookies marks the session cookie Secure (served over TLS or behind an https base URL).
	SecureCookies bool
	// SessionIdle ends a session after this long without a request; SessionMax after this long
	// in all.
	SessionIdle, SessionMax time.Duration
	// Heartbeat is the interval of keep-alive comments on event streams.
	Heartbeat time.Duration
	// SendCommand is the exact `plaudhook send` command shown on an empty event list.
	SendCommand string
	// Version is the build version, shown in the UI and sent as User-Agent by replays.
	Version string
	// SelfURL returns where this process reaches its own webhook endpoints (a listener, e.g.
	// "http://127.0.0.1:8080"), for "send a test event"; nil: the address a request came in on.
	SelfURL func() string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives request and lifecycle messages (default: discard).
	Logger *slog.Logger

	// MetricsToken, when set, is the bearer token /metrics requires; when empty, /metrics answers
	// only direct connections from this machine.
	MetricsToken string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names the client address
	// (audit log, sign-in throttling, stored deliveries). Empty: the connection's peer is the client.
	TrustedProxies []netip.Prefix
	// StreamWriteTimeout is how long one write to an event stream may block before the stream
	// is dropped as not reading (default 10 s).
	StreamWriteTimeout time.Duration
	// StreamInterval is the least time between two writes of new rows to one event stream
	// (default 250 ms, as often as the live lists redraw). A stream that has been quiet writes
	// the next row at once; under a burst it writes the newest rows on this beat.
	StreamInterval time.Duration
	// MaxStreams bounds the live streams open at once, MaxStreamsPerUser those of one user
	// (defaults 1000 and 32; stream_limit.go). Past them a new stream is answered 429.
	MaxStreams        int
	MaxStreamsPerUser int
	// DiskWarnBytes shows a low-disk warning on pages when less than this is free beside the
	// database (default 1 GiB; a negative value turns the warning off).
	DiskWarnBytes int64

	// ReplayTimeout bounds one outbound replay or forward: connect, send, answer (default 10 s).
	ReplayTimeout time.Duration
	// ReplayResolver resolves replay target host names (default: the system's); tests point it
	// at a local DNS server.
	ReplayResolver *net.Resolver
	// ForwardSchedule is the wait before each retry of a failed forward; after the last one the
	// forward is dead until someone retries it (default 30 s, 5 min, 30 min, 2 h, 24 h).
	ForwardSchedule []time.Duration
}

// Server handles every HTTP request plaudhook answers.
type Server struct {
	cfg      Config
	store    Store
	hub      *live.Hub
	verifier signature.Verifier
	cookies  *sessions.CookieStore
	log      *slog.Logger
	now      func() time.Time
	handler  http.Handler
	team     teamState // routes, sign-in throttle, tokens to show once (auth*.go, token.go)

	metrics *metrics // Prometheus series (metrics.go)
	// streams ends every open event stream when cancelled (CloseStreams, on shutdown).
	streams     context.Context
	stopStreams context.CancelFunc
	streamSlots streamSlots // open streams, in all and per user (stream_limit.go)

	rp replayState // outbound replays, forwarding and bulk replays (replayer.go)

	// after tracks work done after a delivery was answered: normalising transcripts
	// (normalise.go). Wait waits for it.
	after sync.WaitGroup

	bodies bodyBudget // webhook bodies in memory, over all requests (budget.go)

	keys  keyCache      // each endpoint's secrets, values opened (secret.go)
	slugs slugCache     // endpoint ids by slug, for webhooks (ingest.go)
	self  replay.Client // posts test events to this server's own webhooks (endpoint.go)
}

// DefaultBodyMemory is the default Config.BodyMemory: room for ten bodies at the default 25 MiB
// limit, read and decoded at once, and for thousands of Plaud's usual few-kilobyte ones.
const DefaultBodyMemory = 256 << 20

// NewServer builds the server and its routes.
func NewServer(cfg Config, store Store) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = 25 << 20
	}
	if cfg.BodyMemory <= 0 {
		cfg.BodyMemory = max(DefaultBodyMemory, 4*cfg.BodyLimit)
	}
	if cfg.RejectedBodyCap <= 0 {
		cfg.RejectedBodyCap = 64 << 10
	}
	if cfg.Tolerance <= 0 {
		cfg.Tolerance = 5 * time.Minute
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 2 * time.Hour
	}
	if cfg.SessionMax <= 0 {
		cfg.SessionMax = 12 * time.Hour
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.Secrets == nil {
		cfg.Secrets = func(context.Context, int64) []signature.Secret { return nil }
	}
	if cfg.StreamWriteTimeout <= 0 {
		cfg.StreamWriteTimeout = 10 * time.Second
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 1000
	}
	if cfg.MaxStreamsPerUser <= 0 {
		cfg.MaxStreamsPerUser = 32
	}
	if cfg.StreamInterval <= 0 {
		cfg.StreamInterval = 250 * time.Millisecond
	}
	if cfg.DiskWarnBytes == 0 {
		cfg.DiskWarnBytes = 1 << 30
	}
	// The live hub keeps this many messages (two per delivery) for all open streams together;
	// a stream that falls further behind is told how many it missed (stream.go).
	const streamRing = 4096
	s := &Server{
		cfg:      cfg,
		store:    store,
		hub:      live.NewHub(streamRing),
		verifier: signature.Verifier{Tolerance: cfg.Tolerance, Now: cfg.Now},
		log:      cfg.Logger.With("component", "web"),
		now:      cfg.Now,
	}
	s.bodies.setMax(cfg.BodyMemory)
	s.cookies = newCookieStore(cfg)
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	s.metrics = newMetrics(s)
	s.handler = s.routes()
	return s
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Hub returns the live hub, for metrics and tests.
func (s *Server) Hub() *live.Hub { return s.hub }

// page returns the Page struct for a full page.
func (s *Server) page(r *http.Request, title, nav string) views.Page {
	p := views.Page{Title: title, Nav: nav, Static: "/static/" + static.Version}
	if u, ok := userFrom(r.Context()); ok {
		p.User = &u
	}
	p.DiskWarning = s.diskWarning()
	if p.User != nil {
		p.ClockWarning = s.clockWarning(r) // endpoint.go
	}
	return p
}

// userFrom returns the signed-in user stored in ctx by requireUser.
func userFrom(ctx context.Context) (db.User, bool) {
	a, ok := ctx.Value(authKey{}).(*auth)
	if !ok {
		return db.User{}, false
	}
	return a.user, true
}

// auditStore is what recording audit entries needs.
type auditStore interface {
	CreateAuditEntry(ctx context.Context, e db.AuditEntry) error
}

// audit records an action of the signed-in user (or "anonymous"). A failure to record is logged,
// never shown to the user: the action itself already happened.
func (s *Server) audit(r *http.Request, action, target, detail string) {
	e := db.AuditEntry{Actor: "anonymous", Action: action, Target: target, Detail: detail,
		RemoteAddr: remoteHost(r)}
	if u, ok := userFrom(r.Context()); ok {
		e.Actor, e.ActorID = u.Username, u.ID
	}
	if err := s.store.CreateAuditEntry(context.WithoutCancel(r.Context()), e); err != nil {
		s.log.Error("record audit entry", "action", action, "error", err)
	}
}
