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
	mux := http.NewServeMux()

	// Webhooks: Plaud posts here.
	mux.HandleFunc("POST /webhook", s.handleIngest)
	mux.HandleFunc("POST /webhook/{slug}", s.handleIngest)

	// Health, for scripts and proxies.
	mux.HandleFunc("GET /healthz", s.handleHealth)

	// Static files, versioned so they can be cached for a year.
	sub, _ := fs.Sub(static.FS, ".")
	mux.Handle("GET /static/"+static.Version+"/",
		http.StripPrefix("/static/"+static.Version+"/", cacheForever(http.FileServerFS(sub))))

	// Sign in and out.
	mux.HandleFunc("GET /login", s.handleLoginForm)
	mux.HandleFunc("POST /login", s.handleLogin)
	mux.Handle("POST /logout", s.requireUser(db.RoleViewer, s.handleLogout))

	// Pages.
	mux.Handle("GET /{$}", s.requireUser(db.RoleViewer, s.handleEventIndex))
	mux.Handle("GET /events/{id}", s.requireUser(db.RoleViewer, s.handleEventView))
	mux.Handle("GET /events/{id}/body", s.requireUser(db.RoleViewer, s.handleEventBody))
	mux.Handle("GET /deliveries", s.requireUser(db.RoleViewer, s.handleDeliveryIndex))
	mux.Handle("GET /deliveries/{id}", s.requireUser(db.RoleViewer, s.handleDeliveryView))

	// Live updates.
	mux.Handle("GET /events/stream", s.requireUser(db.RoleViewer, s.handleEventStream))

	return s.recoverer(s.securityHeaders(s.crossOrigin(mux)))
}

// cacheForever marks responses as immutable; the URL changes whenever a file does.
func cacheForever(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		h.ServeHTTP(w, r)
	})
}
