package replay

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

// mustParsePolicy is ParsePolicy for tests.
func mustParsePolicy(tb testing.TB, mode string, allow, deny []string) Policy {
	tb.Helper()
	p, err := ParsePolicy(mode, allow, deny)
	if err != nil {
		tb.Fatalf("ParsePolicy(%q, %q, %q): %v", mode, allow, deny, err)
	}
	return p
}

func TestPolicyCheck(t *testing.T) {
	def := Policy{}
	pub := mustParsePolicy(t, "public_only", nil, nil)
	allowEverything := mustParsePolicy(t, "public_only", []string{"0.0.0.0/0", "::/0"}, nil)
	denyWins := mustParsePolicy(t, "default", []string{"10.0.0.0/8"}, []string{"10.0.0.5"})

	tests := []struct {
		name   string
		policy Policy
		addr   string
		want   string // reason, "" when allowed
	}{
		// Always refused, in every mode.
		{"metadata v4 default", def, "169.254.169.254", reasonMetadata},
		{"metadata v4 public", pub, "169.254.169.254", reasonMetadata},
		{"metadata v4 mapped", def, "::ffff:169.254.169.254", reasonMetadata},
		{"metadata aws v6", def, "fd00:ec2::254", reasonMetadata},
		{"metadata alibaba", def, "100.100.100.200", reasonMetadata},
		{"link-local v4", def, "169.254.1.1", reasonLinkLocal},
		{"link-local v6", def, "fe80::1", reasonLinkLocal},
		{"link-local v6 zone", def, "fe80::1%eth0", reasonLinkLocal},
		{"unspecified v4", def, "0.0.0.0", reasonUnspec},
		{"this network v4", def, "0.1.2.3", reasonUnspec},
		{"unspecified v6", def, "::", reasonUnspec},
		{"unspecified mapped", def, "::ffff:0.0.0.0", reasonUnspec},
		{"multicast v4", def, "224.0.0.1", reasonMulticast},
		{"multicast v6", def, "ff02::1", reasonMulticast},
		{"broadcast", def, "255.255.255.255", reasonBroadcast},
		{"invalid", def, "", reasonInvalid},
		{"nat64 metadata", def, "64:ff9b::a9fe:a9fe", reasonMetadata},

		// Allow never reopens the always-refused set.
		{"allow all metadata", allowEverything, "169.254.169.254", reasonMetadata},
		{"allow all link-local", allowEverything, "fe80::1", reasonLinkLocal},
		{"allow all multicast", allowEverything, "224.0.0.251", reasonMulticast},
		{"allow all unspecified", allowEverything, "0.0.0.0", reasonUnspec},
		{"allow all loopback", allowEverything, "127.0.0.1", ""},

		// Default mode: office ranges allowed.
		{"default loopback", def, "127.0.0.1", ""},
		{"default loopback 127/8", def, "127.9.9.9", ""},
		{"default loopback v6", def, "::1", ""},
		{"default rfc1918 10", def, "10.0.0.5", ""},
		{"default rfc1918 172", def, "172.16.0.1", ""},
		{"default rfc1918 192", def, "192.168.1.10", ""},
		{"default ula", def, "fd12:3456::1", ""},
		{"default cgnat", def, "100.64.0.1", ""},
		{"default public", def, "93.184.215.14", ""},
		{"default nat64 loopback", def, "64:ff9b::7f00:1", ""},
		{"explicit default mode", Policy{Mode: PolicyDefault}, "10.1.2.3", ""},

		// Public only.
		{"public loopback", pub, "127.0.0.1", reasonLoopback},
		{"public loopback mapped", pub, "::ffff:127.0.0.1", reasonLoopback},
		{"public loopback v6", pub, "::1", reasonLoopback},
		{"public rfc1918", pub, "10.0.0.5", reasonPrivate},
		{"public rfc1918 172", pub, "172.31.255.255", reasonPrivate},
		{"public rfc1918 192", pub, "192.168.0.1", reasonPrivate},
		{"public ula", pub, "fc00::1", reasonPrivate},
		{"public cgnat", pub, "100.127.255.254", reasonCGNAT},
		{"public test-net", pub, "192.0.2.1", reasonReserved},
		{"public class e", pub, "240.0.0.1", reasonReserved},
		{"public documentation v6", pub, "2001:db8::1", reasonReserved},
		{"public nat64 loopback", pub, "64:ff9b::7f00:1", reasonLoopback},
		{"public v4", pub, "93.184.215.14", ""},
		{"public v6", pub, "2606:4700::1111", ""},
		{"unknown mode fails closed", Policy{Mode: "typo"}, "10.0.0.5", reasonPrivate},

		// Deny wins over Allow.
		{"deny wins", denyWins, "10.0.0.5", reasonDenied},
		{"allow neighbour", denyWins, "10.0.0.6", ""},
		{"deny mapped", denyWins, "::ffff:10.0.0.5", reasonDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addr netip.Addr
			if tt.addr != "" {
				addr = netip.MustParseAddr(tt.addr)
			}
			err := tt.policy.Check(addr)
			if got := reasonOf(err); got != tt.want {
				t.Fatalf("Check(%s) reason = %q, want %q", tt.addr, got, tt.want)
			}

			// A refusal names the address as given.
			var re *RefusedError
			if errors.As(err, &re) && re.Addr != addr {
				t.Errorf("RefusedError.Addr = %v, want %v", re.Addr, addr)
			}
		})
	}
}

func TestRefusedErrorMessage(t *testing.T) {
	err := Policy{}.Check(netip.MustParseAddr("169.254.10.10"))
	got := err.Error()
	want := "target not allowed: link-local address"
	if got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name      string
		mode      string
		allow     []string
		deny      []string
		wantErr   bool
		wantMode  PolicyMode
		wantAllow []string
		wantDeny  []string
	}{
		{name: "empty mode is default", mode: "", wantMode: PolicyDefault},
		{name: "default", mode: "default", wantMode: PolicyDefault},
		{name: "public only", mode: "public_only", wantMode: PolicyPublicOnly},
		{
			name: "prefixes and addresses", mode: "public_only",
			allow:     []string{"10.0.0.0/24", " 192.168.1.7 ", "fd00::/8"},
			deny:      []string{"10.0.0.9", "2001:db8::1"},
			wantMode:  PolicyPublicOnly,
			wantAllow: []string{"10.0.0.0/24", "192.168.1.7/32", "fd00::/8"},
			wantDeny:  []string{"10.0.0.9/32", "2001:db8::1/128"},
		},
		{
			name: "unmasked prefix is masked", mode: "default",
			allow: []string{"10.0.0.77/24"}, wantMode: PolicyDefault,
			wantAllow: []string{"10.0.0.0/24"},
		},
		{
			name: "mapped entries become v4", mode: "default",
			allow:    []string{"::ffff:10.0.0.0/120", "::ffff:10.1.1.1"},
			wantMode: PolicyDefault, wantAllow: []string{"10.0.0.0/24", "10.1.1.1/32"},
		},
		{name: "unknown mode", mode: "strict", wantErr: true},
		{name: "bad prefix", mode: "default", allow: []string{"10.0.0.0/33"}, wantErr: true},
		{name: "bad address", mode: "default", deny: []string{"localhost"}, wantErr: true},
		{name: "empty entry", mode: "default", deny: []string{""}, wantErr: true},
		{name: "short mapped prefix", mode: "default", allow: []string{"::ffff:0:0/90"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePolicy(tt.mode, tt.allow, tt.deny)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParsePolicy err = nil, want an error (policy %+v)", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePolicy: %v", err)
			}
			if got.Mode != tt.wantMode {
				t.Errorf("Mode = %q, want %q", got.Mode, tt.wantMode)
			}
			if g := prefixStrings(got.Allow); !slices.Equal(g, tt.wantAllow) {
				t.Errorf("Allow = %q, want %q", g, tt.wantAllow)
			}
			if g := prefixStrings(got.Deny); !slices.Equal(g, tt.wantDeny) {
				t.Errorf("Deny = %q, want %q", g, tt.wantDeny)
			}
		})
	}
}

// prefixStrings formats prefixes for comparison.
func prefixStrings(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		name       string
		raw        string
		wantReason string // RefusedError reason; "" when accepted
		wantErr    bool   // a non-refusal error (unparsable URL)
	}{
		{name: "http", raw: "http://example.com/hook"},
		{name: "https", raw: "https://example.com:8443/hook?x=1"},
		{name: "upper-case scheme", raw: "HTTP://example.com/"},
		{name: "ip literal passes here", raw: "http://169.254.169.254/"},
		{name: "file", raw: "file:///etc/passwd", wantReason: reasonScheme},
		{name: "gopher", raw: "gopher://x/", wantReason: reasonScheme},
		{name: "ftp", raw: "ftp://example.com/", wantReason: reasonScheme},
		{name: "no scheme", raw: "example.com/hook", wantReason: reasonScheme},
		{name: "javascript", raw: "javascript:alert(1)", wantReason: reasonScheme},
		{name: "no host", raw: "http:///path", wantReason: reasonHostNeeded},
		{name: "opaque", raw: "http:example.com", wantReason: reasonHostNeeded},
		{name: "port only", raw: "http://:8080/", wantReason: reasonHostNeeded},
		{name: "unparsable", raw: "http://exa mple.com/%zz", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := CheckURL(tt.raw)
			if tt.wantErr {
				var re *RefusedError
				if err == nil || errors.As(err, &re) {
					t.Fatalf("CheckURL(%q) err = %v, want a parse error", tt.raw, err)
				}
				return
			}
			if got := reasonOf(err); got != tt.wantReason {
				t.Fatalf("CheckURL(%q) reason = %q, want %q", tt.raw, got, tt.wantReason)
			}
			if err == nil && u == nil {
				t.Fatalf("CheckURL(%q) URL = nil, want a URL", tt.raw)
			}
		})
	}
}

func TestParseLegacyIPv4(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" when not an address
	}{
		{"2130706433", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0X7F000001", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"0x7f.0.0.1", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"10.0.5", "10.0.0.5"},
		{"0", "0.0.0.0"},
		{"4294967295", "255.255.255.255"},
		{"1.2.3.4", "1.2.3.4"},
		{"4294967296", ""},
		{"256.1", ""},
		{"1.2.3.256", ""},
		{"1.2.65536", ""},
		{"1.2.3.4.5", ""},
		{"08", ""},
		{"0x", ""},
		{"1..2", ""},
		{"example.com", ""},
		{"localhost", ""},
		{"-1", ""},
		{"+1", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a, ok := parseLegacyIPv4(tt.in)
			got := ""
			if ok {
				got = a.String()
			}
			if got != tt.want {
				t.Errorf("parseLegacyIPv4(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
