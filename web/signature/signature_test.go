package signature_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/web/signature"
)

// Shared values of ../shared/cases/CASES.md.
var (
	caseSecret = []byte("plaud_test_secret_do_not_use")
	caseNow    = time.Unix(1796299200, 0) // T = 2026-12-03T12:00:00Z
	b1         = []byte(`{"event":"transcription.completed","data":{"file_id":"f_0001","transcriptionId":"tr_0001"}}`)
)

func verifier(now time.Time) signature.Verifier {
	return signature.Verifier{Tolerance: 5 * time.Minute, Now: func() time.Time { return now }}
}

func secrets(keys ...string) []signature.Secret {
	var out []signature.Secret
	for _, k := range keys {
		out = append(out, signature.Secret{Label: k, Key: []byte(k)})
	}
	return out
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

type fixtureSigs struct {
	Secret    string `json:"secret"`
	Timestamp string `json:"timestamp"`
	Files     map[string]struct {
		Scheme   string            `json:"scheme"`
		Devguide map[string]string `json:"devguide"`
		Embedded map[string]string `json:"embedded"`
	} `json:"files"`
}

func loadFixtures(t *testing.T) fixtureSigs {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "signatures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f fixtureSigs
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Files) < 10 {
		t.Fatalf("signatures.json lists %d files, want every fixture", len(f.Files))
	}
	return f
}

// TestFixtureSignatures checks every fixture's published signature under both schemes, and that
// each one fails, with its reason, once the input is damaged.
func TestFixtureSignatures(t *testing.T) {
	f := loadFixtures(t)
	ts := f.Timestamp
	sent := mustUnix(t, ts)
	good := secrets(f.Secret)

	for name, sig := range f.Files {
		body, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		for _, scheme := range []signature.Scheme{signature.SchemeDevguide, signature.SchemeEmbedded} {
			hdrs := sig.Devguide
			if scheme == signature.SchemeEmbedded {
				hdrs = sig.Embedded
			}
			h := http.Header{}
			for k, v := range hdrs {
				h.Set(k, v)
			}
			t.Run(name+"/"+string(scheme), func(t *testing.T) {
				v := verifier(sent.Add(30 * time.Second))

				got := v.Verify(h, body, good)
				if !got.OK || got.Scheme != scheme || got.Secret.Label != f.Secret {
					t.Fatalf("Verify = %+v, want OK under %s", got, scheme)
				}

				// Sign reproduces the published header exactly.
				signed := signature.Sign(scheme, []byte(f.Secret), sent, body)
				if g, w := signed.Get("Plaud-Signature"), h.Get("Plaud-Signature"); g != w {
					t.Errorf("Sign = %s, want %s", g, w)
				}

				flipped := append([]byte(nil), body...)
				flipped[len(flipped)/2] ^= 0x01
				fails := []struct {
					name   string
					v      signature.Verifier
					h      http.Header
					body   []byte
					s      []signature.Secret
					reason signature.Reason
				}{
					{"flipped byte", v, h, flipped, good, signature.ReasonMismatch},
					{"trailing newline", v, h, append(append([]byte(nil), body...), '\n'), good, signature.ReasonMismatch},
					{"wrong secret", v, h, body, secrets("not_the_secret"), signature.ReasonMismatch},
					{"missing header", v, http.Header{}, body, good, signature.ReasonMissing},
					{"no secret configured", v, h, body, nil, signature.ReasonNoSecret},
				}
				if scheme == signature.SchemeEmbedded {
					fails = append(fails, struct {
						name   string
						v      signature.Verifier
						h      http.Header
						body   []byte
						s      []signature.Secret
						reason signature.Reason
					}{"stale timestamp", verifier(sent.Add(301 * time.Second)), h, body, good, signature.ReasonTimestampSkew})
				}
				for _, c := range fails {
					got := c.v.Verify(c.h, c.body, c.s)
					if got.OK || got.Reason != c.reason {
						t.Errorf("%s: Verify = ok %v reason %q, want reason %q", c.name, got.OK, got.Reason, c.reason)
					}
				}
			})
		}
	}
}

func mustUnix(t *testing.T, s string) time.Time {
	t.Helper()
	var n int64
	for _, c := range s {
		n = n*10 + int64(c-'0')
	}
	return time.Unix(n, 0)
}

// TestCases covers the signature cases of CASES.md: C1, C2, C3, C5, C14, C16 and C17.
func TestCases(t *testing.T) {
	b3 := []byte("{ \"event\": \"transcription.completed\",\n  \"data\": { \"transcriptionId\": \"tr_0003\", \"file_id\": \"f_0003\", \"title\": \"R\\u00e9union\" } }")
	b5, _ := hex.DecodeString("7b226576656e74223a227472616e736372697074696f6e2e636f6d706c65746564222c2264617461223a7b2266696c655f6964223a22665f30303035222c227469746c65223a22436166c3a920e282b920e4bc9ae8adb020f09f988a227d7d")
	good := "f7b769ef5f5cd3dc7d658aea9e2a211e7798d637e0ca4379150c8448335305b1"
	s := secrets(string(caseSecret))
	two := []signature.Secret{{Label: "old", Key: []byte("plaud_old_secret_do_not_use")}, {Label: "new", Key: caseSecret}}

	tests := []struct {
		name      string
		now       time.Time
		h         http.Header
		body      []byte
		secrets   []signature.Secret
		wantOK    bool
		reason    signature.Reason
		wantLabel string
	}{
		{"C1 raw baseline", caseNow, header("Plaud-Signature", good), b1, s, true, "", string(caseSecret)},
		// A map key net/http never produces: every server canonicalises header names, so a
		// lower-case plaud-signature line on the wire is accepted (TestIngestLowerCaseHeaderOnTheWire).
		{"non-canonical map key is not looked up", caseNow, http.Header{"plaud-signature": {good}}, b1, s, false, signature.ReasonMissing, ""},
		{"C1 upper-case hex", caseNow, header("Plaud-Signature", strings.ToUpper(good)), b1, s, true, "", string(caseSecret)},
		{"C1 tampered body", caseNow, header("Plaud-Signature", good), []byte(strings.Replace(string(b1), "tr_0001", "tr_0002", 1)), s, false, signature.ReasonMismatch, ""},
		{"C1 header absent", caseNow, http.Header{}, b1, s, false, signature.ReasonMissing, ""},
		{"C1 header empty", caseNow, header("Plaud-Signature", ""), b1, s, false, signature.ReasonMissing, ""},
		{"malformed value", caseNow, header("Plaud-Signature", "not-hex"), b1, s, false, signature.ReasonMalformed, ""},
		{"C2 timestamped", caseNow.Add(10 * time.Second), header("Plaud-Timestamp", "1796299200", "Plaud-Signature", "sha256=8ac13db87fdf5842d1ba6ae8629981ef7bf41aff9f0f364624a98917b2757f3d"), b1, s, true, "", string(caseSecret)},
		{"C2 timestamp altered", caseNow.Add(10 * time.Second), header("Plaud-Timestamp", "1796299201", "Plaud-Signature", "sha256=8ac13db87fdf5842d1ba6ae8629981ef7bf41aff9f0f364624a98917b2757f3d"), b1, s, false, signature.ReasonMismatch, ""},
		{"C2 sha256= without timestamp", caseNow, header("Plaud-Signature", "sha256=8ac13db87fdf5842d1ba6ae8629981ef7bf41aff9f0f364624a98917b2757f3d"), b1, s, false, signature.ReasonMissingTime, ""},
		{"C3 raw bytes", caseNow, header("Plaud-Signature", "e18d55e294c0dc401d6fc6a9edda7a650a3e1e2ce60ae6c68fcaadbf2ae2a19a"), b3, s, true, "", string(caseSecret)},
		{"C3 re-serialised signature", caseNow, header("Plaud-Signature", "95f03e089eb588059b7b85ea8429fdd2a2df42b01c25c8b2f3c95cc1d012f451"), b3, s, false, signature.ReasonMismatch, ""},
		{"C5 multibyte", caseNow, header("Plaud-Signature", "19b57294aa8d53c0d3cd5972cd8f5d5d58f8c2b3bbffc5d014b7c61454884371"), b5, s, true, "", string(caseSecret)},
		{"C5 ascii-mangled signature", caseNow, header("Plaud-Signature", "80c1fe5217757afd174df7edda551560a2f88d52c1dcb96476412ae5b03279a9"), b5, s, false, signature.ReasonMismatch, ""},
		{"C14 T-299", caseNow, header("Plaud-Timestamp", "1796298901", "Plaud-Signature", "sha256=200a57d20f3275402c54585f761b35f056808877484b51367fde34046ebdd0bc"), b1, s, true, "", string(caseSecret)},
		{"C14 T-301", caseNow, header("Plaud-Timestamp", "1796298899", "Plaud-Signature", "sha256=675feb52978513591705bf5bbdedcdcd1f7a6701faf0b9326ac2d8abeb6d9108"), b1, s, false, signature.ReasonTimestampSkew, ""},
		{"C14 T+299", caseNow, header("Plaud-Timestamp", "1796299499", "Plaud-Signature", "sha256=7ff1b8fce03668d1b7d084a7221b1d1430e1c5767696c65ee589ad75723519b9"), b1, s, true, "", string(caseSecret)},
		{"C14 T+301", caseNow, header("Plaud-Timestamp", "1796299501", "Plaud-Signature", "sha256=6132b4afa75f5da31d579578596142c04703ad26a677687a99923b511a4d947b"), b1, s, false, signature.ReasonTimestampSkew, ""},
		{"C14 abc", caseNow, header("Plaud-Timestamp", "abc", "Plaud-Signature", "sha256=6132b4afa75f5da31d579578596142c04703ad26a677687a99923b511a4d947b"), b1, s, false, signature.ReasonBadTimestamp, ""},
		{"C14 milliseconds", caseNow, header("Plaud-Timestamp", "1796299200000", "Plaud-Signature", "sha256=d4c00503647d6b2d4fc3c29dafc569383539c81c7ebb060d9775062f1a1e8136"), b1, s, false, signature.ReasonTimestampSkew, ""},
		{"C16 old secret", caseNow, header("Plaud-Signature", "94d878937624341f045d2469972f68b3ce4de5965d320858361a095084f84b19"), b1, two, true, "", "old"},
		{"C16 new secret", caseNow, header("Plaud-Signature", good), b1, two, true, "", "new"},
		{"C16 comma list, good last", caseNow, header("Plaud-Signature", strings.Repeat("0", 64)+","+good), b1, two, true, "", "new"},
		{"C16 space list, good last", caseNow, header("Plaud-Signature", strings.Repeat("0", 64)+" "+good), b1, two, true, "", "new"},
		{"C16 two header lines", caseNow, header("Plaud-Signature", strings.Repeat("0", 64), "Plaud-Signature", good), b1, two, true, "", "new"},
		{"C16 old revoked", caseNow, header("Plaud-Signature", "94d878937624341f045d2469972f68b3ce4de5965d320858361a095084f84b19"), b1, s, false, signature.ReasonMismatch, ""},
		{"C16 good one past the tenth entry", caseNow, header("Plaud-Signature", strings.Repeat(strings.Repeat("0", 64)+",", 10)+good), b1, s, false, signature.ReasonMismatch, ""},
		{"C17 untrimmed secret's signature", caseNow, header("Plaud-Signature", "daeaab8e25d62af38d6442db12709e2558cd1168902ff0fe344e239afd23177f"), b1, s, false, signature.ReasonMismatch, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := verifier(tt.now).Verify(tt.h, tt.body, tt.secrets)
			if got.OK != tt.wantOK || got.Reason != tt.reason {
				t.Fatalf("Verify = ok %v reason %q, want ok %v reason %q", got.OK, got.Reason, tt.wantOK, tt.reason)
			}
			if tt.wantOK && got.Secret.Label != tt.wantLabel {
				t.Errorf("secret = %q, want %q", got.Secret.Label, tt.wantLabel)
			}
		})
	}
}

// TestCandidatesBounded checks that a header of 1,000 entries costs at most MaxCandidates HMACs.
func TestCandidatesBounded(t *testing.T) {
	h := header("Plaud-Signature", strings.Repeat(strings.Repeat("a", 64)+",", 1000))
	if got := len(signature.Candidates(h)); got != signature.MaxCandidates {
		t.Fatalf("candidates = %d, want %d", got, signature.MaxCandidates)
	}

	// Empty entries and runs of separators are dropped; every header line counts.
	h = http.Header{"Plaud-Signature": {" a,, b\t,c ", ",", "d e"}}
	if got := signature.Candidates(h); !slices.Equal(got, []string{"a", "b", "c", "d", "e"}) {
		t.Fatalf("candidates = %q, want [a b c d e]", got)
	}
}

// TestSkewReported checks the measured skew is kept for the UI even when the delivery fails.
func TestSkewReported(t *testing.T) {
	h := header("Plaud-Timestamp", "1796298899", "Plaud-Signature", "sha256=675feb52978513591705bf5bbdedcdcd1f7a6701faf0b9326ac2d8abeb6d9108")
	got := verifier(caseNow).Verify(h, b1, secrets(string(caseSecret)))
	if !got.HasSkew || got.Skew != 301*time.Second {
		t.Fatalf("skew = %v (has %v), want 301s", got.Skew, got.HasSkew)
	}
}

// TestComputeMatchesStandardLibrary recomputes a digest independently.
func TestComputeMatchesStandardLibrary(t *testing.T) {
	m := hmac.New(sha256.New, caseSecret)
	m.Write([]byte("1796299200." + string(b1)))
	want := m.Sum(nil)
	if got := signature.Compute(signature.SchemeEmbedded, caseSecret, "1796299200", b1); !hmac.Equal(got, want) {
		t.Fatalf("Compute = %x, want %x", got, want)
	}
}

func BenchmarkVerify(b *testing.B) {
	body := make([]byte, 2048)
	h := signature.Sign(signature.SchemeEmbedded, caseSecret, caseNow, body)
	v := verifier(caseNow)
	s := secrets("a", "b", string(caseSecret))
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if !v.Verify(h, body, s).OK {
			b.Fatal("not verified")
		}
	}
}

// BenchmarkVerifyThousandCandidates is C16's crafted header: 1,000 wrong values with the right
// one last. Only the first MaxCandidates are tried, so it is rejected and costs about as much as
// ten values (the case asks for well under 50 ms per request).
func BenchmarkVerifyThousandCandidates(b *testing.B) {
	h := header("Plaud-Signature", strings.Repeat(strings.Repeat("0", 64)+",", 1000)+
		"f7b769ef5f5cd3dc7d658aea9e2a211e7798d637e0ca4379150c8448335305b1")
	v := verifier(caseNow)
	s := secrets("plaud_old_secret_do_not_use", string(caseSecret))
	for b.Loop() {
		if v.Verify(h, b1, s).OK {
			b.Fatal("the 1,001st value was tried")
		}
	}
}

// TestDowngradeRefused: an embedded delivery long past its tolerance, sent again as a devguide
// one with "<timestamp>." moved into the body, carries a valid devguide signature; it is refused
// as a downgrade, whatever the sign or length of the timestamp. Bodies that merely start with
// digits, or with a dot, still verify.
func TestDowngradeRefused(t *testing.T) {
	v := signature.Verifier{Tolerance: 5 * time.Minute, Now: func() time.Time { return caseNow }}
	secrets := []signature.Secret{{Label: "S", Key: caseSecret}}
	old := caseNow.Add(-30 * 24 * time.Hour)
	embedded := signature.Sign(signature.SchemeEmbedded, caseSecret, old, b1)
	if r := v.Verify(embedded, b1, secrets); r.Reason != signature.ReasonTimestampSkew {
		t.Fatalf("the expired embedded delivery = %+v, want %s", r, signature.ReasonTimestampSkew)
	}
	for _, ts := range []string{strconv.FormatInt(old.Unix(), 10), "+" + strconv.FormatInt(old.Unix(), 10), "-5", "0"} {
		body := append([]byte(ts+"."), b1...)
		h := header("Plaud-Signature", devguideOver(caseSecret, body))
		if r := v.Verify(h, body, secrets); r.OK || r.Reason != signature.ReasonDowngrade {
			t.Errorf("%s.<body> as devguide = %+v, want %s", ts, r, signature.ReasonDowngrade)
		}
	}
	for _, body := range []string{"12345", "12 .x", ".5", "v1.2", `{"n":1.5}`} {
		h := header("Plaud-Signature", devguideOver(caseSecret, []byte(body)))
		if r := v.Verify(h, []byte(body), secrets); !r.OK {
			t.Errorf("%q as devguide = %+v, want verified", body, r)
		}
	}
}
