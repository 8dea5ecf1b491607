package web

import (
	"io/fs"
	"net/http"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/static"
)

// routes registers every URL plaudhook serves. Anything not named here is a 404.
//
// Open to anyone: the webhook endpoints (authenticated by their signature), health checks,
// static files and the sign-in form. Everything else requires a signed-in user; state-changing
// requests also pass cross-origin protection.
func (s *Server) routes() http.Handler {
	mux := s.newMux() // an http.ServeMux that also lists its routes for tests (Routes)

	// Webhooks: Plaud posts here.
	mux.HandleFunc("POST /webhook", s.handleIngest)
	mux.HandleFunc("POST /webhook/{slug}", s.handleIngest)

	// Health, for scripts and proxies; metrics for Prometheus (token or loopback only).
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.HandleFunc("GET /metrics", s.handleMetrics)

	// Static files, versioned so they can be cached for a year.
	sub, _ := fs.Sub(static.FS, ".")
	mux.Handle("GET /static/"+static.Version+"/",
		http.StripPrefix("/static/"+static.Version+"/", cacheForever(http.FileServerFS(sub))))

	// Sign in and out.
	mux.HandleFunc("GET /login", s.handleLoginForm)
	mux.HandleFunc("POST /login", s.handleLogin)
	mux.Handle("POST /logout", s.requireUser(db.RoleViewer, s.handleLogout))

	// Pages. The dashboard, the filtered lists, their exports, compare and the fields per
	// event type are the explorer (explorer.go, explorer_export.go).
	mux.Handle("GET /{$}", s.requireUser(db.RoleViewer, s.handleDashboard))
	mux.Handle("GET /events", s.requireUser(db.RoleViewer, s.handleEventIndex))
	mux.Handle("GET /events/export", s.requireUser(db.RoleViewer, s.handleEventExport))
	mux.Handle("GET /events/{id}", s.requireUser(db.RoleViewer, s.handleEventView))
	mux.Handle("GET /events/{id}/body", s.requireUser(db.RoleViewer, s.handleEventBody))
	mux.Handle("GET /deliveries", s.requireUser(db.RoleViewer, s.handleDeliveryIndex))
	mux.Handle("GET /deliveries/export", s.requireUser(db.RoleViewer, s.handleDeliveryExport))
	mux.Handle("GET /deliveries/{id}", s.requireUser(db.RoleViewer, s.handleDeliveryView))
	mux.Handle("GET /compare", s.requireUser(db.RoleViewer, s.handleCompare))
	mux.Handle("GET /schema", s.requireUser(db.RoleViewer, s.handleSchemaIndex))

	// Live updates.
	mux.Handle("GET /events/stream", s.requireUser(db.RoleViewer, s.limitStreams(s.handleEventStream)))

	// Your account: password and API tokens (a signed-in person, never an API token).
	mux.Handle("GET /account", s.requireSession(db.RoleViewer, s.handleAccountView))
	mux.Handle("POST /account/password", s.requireSession(db.RoleViewer, s.handlePasswordUpdate))
	mux.Handle("POST /account/tokens", s.requireSession(db.RoleViewer, s.handleTokenCreate))
	mux.Handle("POST /account/tokens/{id}/revoke",
		s.requireSession(db.RoleViewer, s.handleTokenRevoke))

	// Admin: users and the audit log.
	mux.Handle("GET /users", s.requireSession(db.RoleAdmin, s.handleUserIndex))
	mux.Handle("POST /users", s.requireSession(db.RoleAdmin, s.handleUserCreate))
	mux.Handle("POST /users/{id}/role", s.requireSession(db.RoleAdmin, s.handleUserRole))
	mux.Handle("POST /users/{id}/disable", s.requireSession(db.RoleAdmin, s.handleUserDisable))
	mux.Handle("POST /users/{id}/enable", s.requireSession(db.RoleAdmin, s.handleUserEnable))
	mux.Handle("POST /users/{id}/password", s.requireSession(db.RoleAdmin, s.handleUserPassword))
	mux.Handle("GET /audit", s.requireUser(db.RoleAdmin, s.handleAuditIndex))

	// Admin: endpoints and their signing secrets; re-verifying a rejected delivery
	// (endpoint.go, secret.go, debugger.go). POST /secrets/rotate names the endpoint in a field.
	mux.Handle("GET /endpoints", s.requireUser(db.RoleAdmin, s.handleEndpointIndex))
	mux.Handle("GET /endpoints/new", s.requireUser(db.RoleAdmin, s.handleEndpointNew))
	mux.Handle("POST /endpoints", s.requireSession(db.RoleAdmin, s.handleEndpointCreate))
	mux.Handle("GET /endpoints/{slug}", s.requireUser(db.RoleAdmin, s.handleEndpointView))
	mux.Handle("POST /endpoints/{slug}", s.requireSession(db.RoleAdmin, s.handleEndpointUpdate))
	mux.Handle("POST /endpoints/{slug}/delete",
		s.requireSession(db.RoleAdmin, s.handleEndpointDelete))
	mux.Handle("POST /endpoints/{slug}/test", s.requireSession(db.RoleAdmin, s.handleEndpointTest))
	mux.Handle("POST /endpoints/{slug}/secrets",
		s.requireSession(db.RoleAdmin, s.handleSecretCreate))
	mux.Handle("POST /endpoints/{slug}/secrets/rotate",
		s.requireSession(db.RoleAdmin, s.handleSecretRotate))
	mux.Handle("POST /endpoints/{slug}/secrets/{id}/revoke",
		s.requireSession(db.RoleAdmin, s.handleSecretRevoke))
	mux.Handle("POST /secrets/rotate", s.requireSession(db.RoleAdmin, s.handleSecretRotate))
	mux.Handle("POST /deliveries/{id}/reverify",
		s.requireSession(db.RoleAdmin, s.handleDeliveryReverify))

	// Transcripts and recordings (transcript.go, export.go).
	mux.Handle("GET /transcripts", s.requireUser(db.RoleViewer, s.handleTranscriptIndex))
	mux.Handle("POST /transcripts/privacy", s.requireUser(db.RoleViewer, s.handleTranscriptPrivacy))
	mux.Handle("GET /transcripts/{id}", s.requireUser(db.RoleViewer, s.handleTranscriptView))
	mux.Handle("GET /transcripts/{id}/export", s.requireUser(db.RoleViewer, s.handleTranscriptExport))
	mux.Handle("POST /transcripts/{id}/speakers",
		s.requireUser(db.RoleOperator, s.handleSpeakerRename))
	mux.Handle("GET /recordings", s.requireUser(db.RoleViewer, s.handleRecordingIndex))
	mux.Handle("GET /recordings/{id}", s.requireUser(db.RoleViewer, s.handleRecordingView))

	// Replay and forwarding (replay_handlers.go, target.go, forward.go, bulk.go): operators
	// replay, admins manage targets, the address policy and forwarding rules.
	mux.Handle("POST /events/{id}/replay", s.requireUser(db.RoleOperator, s.handleEventReplay))
	mux.Handle("GET /events/{id}/attempts/stream",
		s.requireUser(db.RoleViewer, s.limitStreams(s.handleAttemptStream)))
	mux.Handle("GET /attempts/{id}", s.requireUser(db.RoleViewer, s.handleAttemptView))
	mux.Handle("GET /targets", s.requireUser(db.RoleAdmin, s.handleTargetIndex))
	mux.Handle("POST /targets", s.requireSession(db.RoleAdmin, s.handleTargetCreate))
	mux.Handle("POST /targets/policy", s.requireSession(db.RoleAdmin, s.handlePolicyUpdate))
	mux.Handle("GET /targets/{id}", s.requireUser(db.RoleAdmin, s.handleTargetView))
	mux.Handle("POST /targets/{id}", s.requireSession(db.RoleAdmin, s.handleTargetUpdate))
	mux.Handle("POST /targets/{id}/delete", s.requireSession(db.RoleAdmin, s.handleTargetDelete))
	mux.Handle("GET /forwarding", s.requireUser(db.RoleOperator, s.handleForwardingIndex))
	mux.Handle("POST /forwarding/rules",
		s.requireSession(db.RoleAdmin, s.handleForwardingRuleCreate))
	mux.Handle("POST /forwarding/rules/{id}/enabled",
		s.requireSession(db.RoleAdmin, s.handleForwardingRuleEnabled))
	mux.Handle("POST /forwarding/rules/{id}/delete",
		s.requireSession(db.RoleAdmin, s.handleForwardingRuleDelete))
	mux.Handle("POST /forwarding/queue/{id}/retry",
		s.requireUser(db.RoleOperator, s.handleForwardRetry))
	mux.Handle("GET /bulk", s.requireUser(db.RoleOperator, s.handleBulkIndex))
	mux.Handle("GET /bulk/new", s.requireUser(db.RoleOperator, s.handleBulkNew))
	mux.Handle("POST /bulk", s.requireUser(db.RoleOperator, s.handleBulkCreate))
	mux.Handle("GET /bulk/{id}", s.requireUser(db.RoleOperator, s.handleBulkView))
	mux.Handle("GET /bulk/{id}/stream", s.requireUser(db.RoleOperator, s.limitStreams(s.handleBulkStream)))
	mux.Handle("POST /bulk/{id}/cancel", s.requireUser(db.RoleOperator, s.handleBulkCancel))
	mux.Handle("POST /api/v1/events/{id}/replay",
		s.requireUser(db.RoleOperator, s.handleAPIEventReplay))
	mux.Handle("GET /api/v1/events/{id}/attempts",
		s.requireUser(db.RoleViewer, s.handleAPIEventAttempts))

	// Read API (JSON; a session or "Authorization: Bearer <API token>"). Documented in README.
	mux.Handle("GET /api/v1/events", s.requireUser(db.RoleViewer, s.handleAPIEventIndex))
	mux.Handle("GET /api/v1/events/{id}", s.requireUser(db.RoleViewer, s.handleAPIEventView))
	mux.Handle("GET /api/v1/events/{id}/body", s.requireUser(db.RoleViewer, s.handleAPIEventBody))
	mux.Handle("GET /api/v1/deliveries", s.requireUser(db.RoleViewer, s.handleAPIDeliveryIndex))
	mux.Handle("GET /api/v1/endpoints", s.requireUser(db.RoleViewer, s.handleAPIEndpointIndex))
	mux.Handle("GET /api/v1/transcripts", s.requireUser(db.RoleViewer, s.handleAPITranscriptIndex))
	mux.Handle("GET /api/v1/transcripts/{id}", s.requireUser(db.RoleViewer, s.handleAPITranscriptView))
	mux.Handle("GET /api/v1/transcripts/{id}/export",
		s.requireUser(db.RoleViewer, s.handleTranscriptExport))
	mux.Handle("/api/", s.requireUser(db.RoleViewer, s.handleAPINotFound))

	return s.recoverer(s.clientAddr(s.securityHeaders(s.crossOrigin(s.originScheme(mux)))))
}

// WebhookHandler serves only the webhook endpoints and the health checks: what a second
// listener (--webhook-addr) exposes to Plaud while the dashboard stays on the office network.
func (s *Server) WebhookHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhook", s.handleIngest)
	mux.HandleFunc("POST /webhook/{slug}", s.handleIngest)
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /readyz", s.handleReady)
	return s.recoverer(s.clientAddr(s.securityHeaders(mux)))
}

// cacheForever marks responses as immutable; the URL changes whenever a file does.
func cacheForever(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		h.ServeHTTP(w, r)
	})
}
