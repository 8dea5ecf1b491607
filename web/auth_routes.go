package web

import (
	"net/http"
	"slices"

	"github.com/plaudhook/plaudhook/db"
)

// teamState is the server's in-memory part of team access. Its zero value is ready to use.
type teamState struct {
	mux     *routeMux     // set by routes: what was registered, for Routes
	logins  loginThrottle // failed sign-ins per address and username
	reveals tokenReveals  // new API tokens waiting to be shown once
}

// Route is one registered URL pattern and who may use it.
type Route struct {
	// Pattern is the ServeMux pattern as registered, e.g. "GET /events/{id}".
	Pattern string
	// Role is the least role the route needs; "" for the routes open to anyone.
	Role db.Role
	// SessionOnly routes refuse API tokens: they need a person signed in with a password.
	SessionOnly bool
}

// Routes lists every registered route in registration order, with the role its guard needs. It
// lets tests walk the whole URL surface, including routes added later, and prove that each one
// is guarded as intended.
func (s *Server) Routes() []Route {
	if s.team.mux == nil {
		return nil
	}
	return slices.Clone(s.team.mux.routes)
}

// routeMux is an http.ServeMux that remembers what was registered on it.
type routeMux struct {
	*http.ServeMux
	routes []Route
}

// newMux returns the mux routes registers on, and keeps it for Routes.
func (s *Server) newMux() *routeMux {
	m := &routeMux{ServeMux: http.NewServeMux()}
	s.team.mux = m
	return m
}

// Handle registers h for pattern, noting the role its guard needs (none when h is unguarded).
func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.ServeMux.Handle(pattern, h)
	r := Route{Pattern: pattern}
	if g, ok := h.(*guard); ok {
		r.Role, r.SessionOnly = g.need, g.sessionOnly
	}
	m.routes = append(m.routes, r)
}

// HandleFunc registers an unguarded handler function for pattern.
func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}
