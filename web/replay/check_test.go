package replay

import "testing"

// TestClientCheck refuses, without any DNS or connection, what Send would refuse before
// dialling: bad schemes, missing hosts and literal addresses (any spelling) the policy refuses.
func TestClientCheck(t *testing.T) {
	def := &Client{}
	pub := &Client{Policy: mustParsePolicy(t, "public_only", []string{"10.0.0.0/24"}, nil)}
	tests := []struct {
		name string
		c    *Client
		raw  string
		want string // refusal reason; "" when accepted
	}{
		{"hostname passes", pub, "http://localhost/", ""},
		{"loopback default", def, "http://127.0.0.1:8080/", ""},
		{"loopback public", pub, "http://127.0.0.1:8080/", reasonLoopback},
		{"decimal loopback public", pub, "http://2130706433/", reasonLoopback},
		{"short loopback public", pub, "http://127.1/", reasonLoopback},
		{"mapped loopback public", pub, "http://[::ffff:127.0.0.1]/", reasonLoopback},
		{"allow-listed private", pub, "http://10.0.0.5/", ""},
		{"metadata default", def, "http://169.254.169.254/latest/meta-data/", reasonMetadata},
		{"unspecified default", def, "http://0.0.0.0/", reasonUnspec},
		{"file", def, "file:///etc/passwd", reasonScheme},
		{"gopher", def, "gopher://x/", reasonScheme},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reasonOf(tt.c.Check(tt.raw)); got != tt.want {
				t.Errorf("Check(%q) reason = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}
