package web

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientKey is the context key of the client address found by clientAddr.
type clientKey struct{}

// clientAddr finds the address of the client behind trusted reverse proxies. X-Forwarded-For is
// believed only when the connection comes from a configured trusted proxy, and then only as far
// as the chain of trusted hops goes: walking the list from the right, the first address that is
// not a trusted proxy is the client. Anyone else's X-Forwarded-For is ignored, so a client cannot
// pick the address that login throttling and the audit log see.
func (s *Server) clientAddr(next http.Handler) http.Handler {
	if len(s.cfg.TrustedProxies) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := s.forwardedClient(r); ok {
			r = r.WithContext(context.WithValue(r.Context(), clientKey{}, c))
		}
		next.ServeHTTP(w, r)
	})
}

// forwardedClient returns the client address named by trusted proxies, if any.
func (s *Server) forwardedClient(r *http.Request) (string, bool) {
	peer, ok := parseHost(r.RemoteAddr)
	if !ok || !s.trusted(peer) {
		return "", false
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	if len(hops) == 0 {
		return "", false
	}

	// From the nearest hop outwards: skip trusted proxies, stop at the first other address.
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage: believe nothing further out than the hop that added it
		}
		client = ip.Unmap()
		if !s.trusted(client) {
			break
		}
	}
	return client.String(), true
}

// trusted reports whether ip is one of the configured proxies.
func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// parseHost reads the IP of a "host:port" remote address.
func parseHost(remote string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}
