package replay

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// guard is the dial-time half of the SSRF check. It holds a snapshot of the
// Client's policy so that a later change to Client.Policy cannot race with
// dials in flight.
type guard struct {
	policy Policy

	// hook, when set, sees every address with the policy's verdict and
	// returns the final one. NOTE: test seam only; tests use it to record
	// dials and to make sure no traffic ever leaves loopback.
	hook func(address string, verdict error) error
}

// control is the net.Dialer ControlContext hook. It runs after the socket
// is created and before connect(2), for every address the dialer tries, so
// it sees the IP that would really be dialled whatever DNS answered.
func (g *guard) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	// Fail closed on anything that is not a plain ip:port.
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{Reason: reasonInvalid}
	}

	verdict := g.policy.Check(ap.Addr())
	if g.hook != nil {
		return g.hook(address, verdict)
	}
	return verdict
}

// dialContext normalises odd numeric IPv4 spellings and then dials through
// d, whose ControlContext is g.control.
func dialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("split dial address: %w", err)
		}

		// "2130706433", "0x7f000001" and "127.1" mean 127.0.0.1 to glibc,
		// curl and browsers but are "no such host" to Go's own resolver.
		// Dial the address they denote so the outcome does not depend on
		// which resolver the build uses; the control hook checks it anyway.
		if _, err := netip.ParseAddr(host); err != nil {
			if a, ok := parseLegacyIPv4(host); ok {
				addr = net.JoinHostPort(a.String(), port)
			}
		}
		return d.DialContext(ctx, network, addr)
	}
}

// literalAddr returns the address host denotes when it is an IP literal in
// any spelling inet_aton accepts, and false for a hostname.
func literalAddr(host string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, true
	}
	return parseLegacyIPv4(host)
}

// parseLegacyIPv4 parses the BSD inet_aton forms of an IPv4 address: one to
// four dot-separated parts, each decimal, octal (leading 0) or hex (0x), the
// last part filling the remaining bytes ("127.1", "2130706433",
// "0x7f.0.0.1", "0177.0.0.1").
func parseLegacyIPv4(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}

	// Parse each part; all but the last must fit in one byte.
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		base := 10
		switch {
		case len(p) > 2 && (p[:2] == "0x" || p[:2] == "0X"):
			base, p = 16, p[2:]
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		if p == "" || p[0] == '+' || p[0] == '-' {
			return netip.Addr{}, false
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 && v > 0xff {
			return netip.Addr{}, false
		}
		vals[i] = v
	}

	// The last part fills the bytes the others left over.
	var n uint64
	for _, v := range vals[:len(vals)-1] {
		n = n<<8 | v
	}
	lastBits := uint(8 * (5 - len(vals)))
	last := vals[len(vals)-1]
	if last >= 1<<lastBits {
		return netip.Addr{}, false
	}
	n = n<<lastBits | last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}
