package replay

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// PolicyMode names how a Policy treats loopback and private addresses.
type PolicyMode string

const (
	// PolicyDefault allows loopback, private (RFC 1918, ULA) and CGNAT
	// addresses, because office apps live there. The empty mode means the same.
	PolicyDefault PolicyMode = "default"

	// PolicyPublicOnly refuses loopback, private, CGNAT and reserved
	// addresses unless they are in Policy.Allow.
	PolicyPublicOnly PolicyMode = "public_only"
)

// Reasons a RefusedError can carry. They are short, user-facing phrases.
const (
	reasonMetadata   = "cloud metadata address"
	reasonLinkLocal  = "link-local address"
	reasonUnspec     = "unspecified address"
	reasonMulticast  = "multicast address"
	reasonBroadcast  = "broadcast address"
	reasonInvalid    = "invalid address"
	reasonDenied     = "denied by policy"
	reasonLoopback   = "loopback address"
	reasonPrivate    = "private address"
	reasonCGNAT      = "carrier-grade NAT address"
	reasonReserved   = "reserved address"
	reasonScheme     = "scheme not allowed"
	reasonHostNeeded = "host required"
)

// Policy decides which resolved addresses an outbound request may reach.
// The zero Policy is PolicyDefault with no extra prefixes.
type Policy struct {
	// Mode is PolicyDefault or PolicyPublicOnly. An unknown mode is treated
	// as PolicyPublicOnly, so a typo fails closed.
	Mode PolicyMode

	// Allow lists extra allowed prefixes. It is checked after the
	// always-refused set and after Deny, so it can open loopback or private
	// ranges in PolicyPublicOnly but never metadata or link-local addresses.
	Allow []netip.Prefix

	// Deny lists extra refused prefixes. Deny wins over Allow.
	Deny []netip.Prefix
}

// RefusedError reports a target that the policy or the URL check refused.
type RefusedError struct {
	// Addr is the refused address; it is the zero Addr when the refusal is
	// about the URL itself (its scheme or a missing host).
	Addr netip.Addr

	// Reason is a short user-facing phrase such as "link-local address".
	Reason string
}

// Error returns "target not allowed: " followed by the reason, the text the
// UI shows. The address is left out so the message reads the same for a
// literal IP and for a hostname; Addr carries it for logs and audit rows.
func (e *RefusedError) Error() string {
	return "target not allowed: " + e.Reason
}

// Fixed addresses and ranges used by Check. IPv4-mapped IPv6 addresses are
// unmapped before any of these is consulted.
var (
	metadataAddrs = []netip.Addr{
		netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OCI, DigitalOcean...
		netip.MustParseAddr("fd00:ec2::254"),   // AWS IPv6 instance metadata
		netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	}
	unspecifiedV4 = netip.MustParsePrefix("0.0.0.0/8")
	broadcastV4   = netip.MustParseAddr("255.255.255.255")
	cgnat         = netip.MustParsePrefix("100.64.0.0/10")

	// nat64 is the well-known NAT64 prefix (RFC 6052). On a NAT64 network
	// 64:ff9b::a9fe:a9fe reaches 169.254.169.254, so the embedded IPv4
	// address is checked as well.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")

	// reserved ranges are not globally reachable; PolicyPublicOnly refuses
	// them like private ranges.
	reserved = []netip.Prefix{
		netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
		netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
		netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
		netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
		netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
		netip.MustParsePrefix("240.0.0.0/4"),     // reserved (class E)
		netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated)
		netip.MustParsePrefix("100::/64"),        // discard-only
		netip.MustParsePrefix("2001:db8::/32"),   // documentation
		netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
	}
)

// ParsePolicy builds a Policy from configuration strings. mode is "default"
// (or empty) or "public_only". Each allow and deny entry is a CIDR prefix
// ("10.0.0.0/24") or a single address ("10.0.0.5"); IPv4-mapped IPv6 entries
// are converted to plain IPv4.
func ParsePolicy(mode string, allow, deny []string) (Policy, error) {
	var p Policy

	// Validate the mode so a typo in the config is an error at start-up.
	switch PolicyMode(strings.TrimSpace(mode)) {
	case "", PolicyDefault:
		p.Mode = PolicyDefault
	case PolicyPublicOnly:
		p.Mode = PolicyPublicOnly
	default:
		return Policy{}, fmt.Errorf("parse policy mode %q: want %q or %q",
			mode, PolicyDefault, PolicyPublicOnly)
	}

	// Parse both prefix lists the same way.
	var err error
	if p.Allow, err = parsePrefixes(allow); err != nil {
		return Policy{}, fmt.Errorf("parse policy allow list: %w", err)
	}
	if p.Deny, err = parsePrefixes(deny); err != nil {
		return Policy{}, fmt.Errorf("parse policy deny list: %w", err)
	}
	return p, nil
}

// parsePrefixes parses CIDR prefixes or single addresses.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, errors.New("empty entry")
		}

		// A bare address becomes a single-address prefix.
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("entry %q: %w", s, err)
			}
			a = a.WithZone("").Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}

		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", s, err)
		}

		// Check compares unmapped addresses, so store ::ffff:a.b.c.d/n as IPv4.
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("entry %q: IPv4-mapped prefix shorter than /96", s)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Check says whether ip may be dialled. It returns nil or a *RefusedError
// whose Reason is one of "cloud metadata address", "link-local address",
// "unspecified address", "multicast address", "broadcast address",
// "invalid address", "denied by policy", "loopback address",
// "private address", "carrier-grade NAT address" or "reserved address".
//
// The order is: the always-refused set, then Deny, then Allow, then the mode.
// IPv4-mapped IPv6 addresses are unmapped and zones dropped first; a NAT64
// address (64:ff9b::/96) must pass for its embedded IPv4 address too.
func (p Policy) Check(ip netip.Addr) error {
	// Zoned addresses never match a prefix, so drop the zone; compare
	// ::ffff:127.0.0.1 as 127.0.0.1.
	orig := ip
	ip = ip.WithZone("").Unmap()
	refuse := func(reason string) error {
		return &RefusedError{Addr: orig, Reason: reason}
	}

	if reason := alwaysRefused(ip); reason != "" {
		return refuse(reason)
	}
	if containsAddr(p.Deny, ip) {
		return refuse(reasonDenied)
	}

	// The translator would connect to the embedded address, so it must
	// pass on its own; report it against the address actually dialled.
	if nat64.Contains(ip) {
		b := ip.As16()
		if err := p.Check(netip.AddrFrom4([4]byte(b[12:]))); err != nil {
			var re *RefusedError
			if errors.As(err, &re) {
				return refuse(re.Reason)
			}
			return err
		}
	}

	if containsAddr(p.Allow, ip) {
		return nil
	}
	if p.Mode == "" || p.Mode == PolicyDefault {
		return nil
	}

	// PolicyPublicOnly (or an unknown mode, failing closed).
	if reason := nonPublic(ip); reason != "" {
		return refuse(reason)
	}
	return nil
}

// alwaysRefused returns the reason ip is refused in every mode, or "".
// ip must already be unmapped and without a zone.
func alwaysRefused(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return reasonInvalid
	case containsExact(metadataAddrs, ip):
		return reasonMetadata
	case ip.IsLinkLocalUnicast():
		return reasonLinkLocal
	case ip.IsUnspecified(), ip.Is4() && unspecifiedV4.Contains(ip):
		return reasonUnspec
	case ip.IsMulticast():
		return reasonMulticast
	case ip == broadcastV4:
		return reasonBroadcast
	}
	return ""
}

// nonPublic returns the reason PolicyPublicOnly refuses ip, or "".
func nonPublic(ip netip.Addr) string {
	switch {
	case ip.IsLoopback():
		return reasonLoopback
	case ip.IsPrivate():
		return reasonPrivate
	case cgnat.Contains(ip):
		return reasonCGNAT
	case containsAddr(reserved, ip):
		return reasonReserved
	}
	return ""
}

// containsAddr reports whether any prefix in list contains ip.
func containsAddr(list []netip.Prefix, ip netip.Addr) bool {
	for _, p := range list {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// containsExact reports whether list holds ip.
func containsExact(list []netip.Addr, ip netip.Addr) bool {
	for _, a := range list {
		if a == ip {
			return true
		}
	}
	return false
}

// CheckURL parses raw and checks the parts that do not need DNS: the scheme
// must be http or https and a host is required. Refusals are *RefusedError
// with Reason "scheme not allowed" or "host required"; a URL that does not
// parse is returned as a wrapped parse error. Addresses are checked later,
// by the dialer, on the IP actually dialled.
func CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse target URL: %w", err)
	}

	// url.Parse lowercases the scheme, so "HTTP://" passes as well.
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, &RefusedError{Reason: reasonScheme}
	}
	if u.Hostname() == "" {
		return nil, &RefusedError{Reason: reasonHostNeeded}
	}
	return u, nil
}
