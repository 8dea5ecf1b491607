package signature_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/web/signature"
)

// Signatures from ../shared/cases/CASES.md, all over B1 unless said otherwise.
const (
	sigS        = "f7b769ef5f5cd3dc7d658aea9e2a211e7798d637e0ca4379150c8448335305b1"        // devguide, S
	sigOld      = "94d878937624341f045d2469972f68b3ce4de5965d320858361a095084f84b19"        // devguide, old (C16)
	sigPadded   = "daeaab8e25d62af38d6442db12709e2558cd1168902ff0fe344e239afd23177f"        // devguide, "  S\n" (C17)
	sigEmbT     = "sha256=8ac13db87fdf5842d1ba6ae8629981ef7bf41aff9f0f364624a98917b2757f3d" // embedded, ts T (C2)
	sigEmbMilli = "sha256=d4c00503647d6b2d4fc3c29dafc569383539c81c7ebb060d9775062f1a1e8136" // embedded, ts T in ms (C14)
	sigEmbOld   = "sha256=675feb52978513591705bf5bbdedcdcd1f7a6701faf0b9326ac2d8abeb6d9108" // embedded, ts T-301 (C14)
	sigEmbAhead = "sha256=6132b4afa75f5da31d579578596142c04703ad26a677687a99923b511a4d947b" // embedded, ts T+301 (C14)
	c8Gzip      = "H4sIAAAAAAACA6tWSi1LzStRslIqKUrMK04uyiwoyczP00vOzy3ISS1JTVHSUUpJLElUsqpWSsvMSY3PTAGqTYs3MDAwBEqhaPJMARsDkautBQCzkATTWwAAAA=="
	tsT         = "1796299200"
	tsTMillis   = "1796299200000"
	oldSecret   = "plaud_old_secret_do_not_use"
	revokedNote = "was revoked at 2026-12-03 11:00:00 UTC"
)

func probeS() signature.Probe {
	return signature.Probe{Label: "S", Fingerprint: "fp-s", Key: caseSecret, Accepted: true}
}

func probeOld() signature.Probe {
	return signature.Probe{Label: "old", Fingerprint: "fp-old", Key: []byte(oldSecret), Note: revokedNote}
}

func hdr(kv ...string) http.Header {
	h := header(kv...)
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	return h
}

func devguideOver(key []byte, body []byte) string {
	return signature.Sign(signature.SchemeDevguide, key, time.Time{}, body).Get(signature.HeaderSignature)
}

// TestDiagnoseHints builds, for every hint the debugger gives, a delivery that triggers it, and
// checks that exactly the expected kinds of hint come out (no guesses on top).
func TestDiagnoseHints(t *testing.T) {
	c8, _ := base64.StdEncoding.DecodeString(c8Gzip)
	withLF := append(bytes.Clone(b1), '\n')
	crlfBody := []byte("{\"event\":\"x\",\r\n\"data\":{}}")
	lfBody := bytes.ReplaceAll(crlfBody, []byte("\r\n"), []byte("\n"))

	tests := []struct {
		name     string
		h        http.Header
		body     []byte
		encoding string
		received time.Time
		probes   []signature.Probe
		want     []signature.HintKind
		mention  string // a phrase the hint must contain
	}{
		{"wrong secret: nothing to say", hdr("Plaud-Signature", devguideOver([]byte("nope"), b1)), b1, "", caseNow,
			[]signature.Probe{probeS(), probeOld()}, nil, ""},
		{"C16 revoked secret", hdr("Plaud-Signature", sigOld), b1, "", caseNow,
			[]signature.Probe{probeS(), probeOld()}, []signature.HintKind{signature.HintInactiveSecret}, revokedNote},
		{"trailing LF added on the way", hdr("Plaud-Signature", sigS), withLF, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintLineEnding}, "without its final line feed"},
		{"trailing CR LF added on the way", hdr("Plaud-Signature", sigS), append(bytes.Clone(b1), '\r', '\n'), "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintLineEnding}, "without its final CR LF"},
		{"trailing CR LF lost on the way", hdr("Plaud-Signature", devguideOver(caseSecret, append(bytes.Clone(b1), '\r', '\n'))), b1, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintLineEnding}, "with a final CR LF"},
		{"CR LF converted to LF", hdr("Plaud-Signature", devguideOver(caseSecret, crlfBody)), lfBody, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintLineEnding}, "LF line endings turned into CR LF"},
		{"trailing LF lost on the way", hdr("Plaud-Signature", devguideOver(caseSecret, withLF)), b1, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintLineEnding}, "with a final line feed"},
		{"LF converted to CR LF", hdr("Plaud-Signature", devguideOver(caseSecret, lfBody)), crlfBody, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintLineEnding}, "CR LF line endings turned into LF"},
		{"devguide value with sha256= prefix", hdr("Plaud-Signature", "sha256="+sigS), b1, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintOtherScheme}, "the signature starts with sha256="},
		{"devguide value beside a Plaud-Timestamp", hdr("Plaud-Signature", sigS, "Plaud-Timestamp", tsT), b1, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintOtherScheme}, "a Plaud-Timestamp header is present"},
		{"embedded value without prefix, timestamp under another name", hdr("Plaud-Signature", strings.TrimPrefix(sigEmbT, "sha256="), "X-Plaud-Timestamp", tsT), b1, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintOtherScheme}, "timestamp from X-Plaud-Timestamp"},
		{"C14 millisecond timestamp, validly signed", hdr("Plaud-Signature", sigEmbMilli, "Plaud-Timestamp", tsTMillis), b1, "", caseNow.Add(7 * time.Second),
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintMillisecond}, "is 7 s from this server's clock"},
		{"signed in seconds, sent in milliseconds", hdr("Plaud-Signature", sigEmbT, "Plaud-Timestamp", tsTMillis), b1, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintMillisecond}, "signed the timestamp in seconds"},
		{"X-Plaud-Signature instead of Plaud-Signature", hdr("X-Plaud-Signature", sigS), b1, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintOtherHeader}, "arrived in X-Plaud-Signature"},
		{"both headers renamed, embedded", hdr("X-Plaud-Signature", sigEmbT, "X-Plaud-Timestamp", tsT), b1, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintOtherHeader}, "timestamp in X-Plaud-Timestamp"},
		{"C17 sender's secret has whitespace", hdr("Plaud-Signature", sigPadded), b1, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintSecretWhitespace}, "2 spaces before it and a line feed after it"},
		{"C8 gzip body without Content-Encoding, signed decoded", hdr("Plaud-Signature", sigS), c8, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintGzip}, "decompressed bytes"},
		{"Content-Encoding gzip over plain bytes, signed as received", hdr("Plaud-Signature", sigS, "Content-Encoding", "gzip"), b1, "gzip", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintGzip}, "the body is not gzip"},
		{"C14 stale timestamp: clock skew", hdr("Plaud-Signature", sigEmbOld, "Plaud-Timestamp", "1796298899"), b1, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintClockSkew}, "301 s behind"},
		{"C14 timestamp in the future: clock skew ahead", hdr("Plaud-Signature", sigEmbAhead, "Plaud-Timestamp", "1796299501"), b1, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintClockSkew}, "301 s ahead of this server's clock"},
		{"no secret", hdr("Plaud-Signature", sigS), b1, "", caseNow,
			nil, []signature.HintKind{signature.HintNoSecret}, ""},
		{"not signed at all", hdr(), b1, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintUnsigned}, "carries no signature at all"},
		{"not signed, and no secret either", hdr(), b1, "", caseNow,
			nil, []signature.HintKind{signature.HintUnsigned}, "No secret is at fault"},
		{"an unrelated X-Signature header", hdr("X-Signature", devguideOver([]byte("nope"), b1)), b1, "", caseNow,
			[]signature.Probe{probeS()}, []signature.HintKind{signature.HintUnsigned}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dg := signature.Diagnose(signature.Evidence{Header: tt.h, Body: tt.body, Encoding: tt.encoding,
				ReceivedAt: tt.received, Tolerance: 5 * time.Minute}, tt.probes)
			var got []signature.HintKind
			for _, h := range dg.Hints {
				got = append(got, h.Kind)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("hints = %v, want %v\n%+v", got, tt.want, dg.Hints)
			}
			if tt.mention != "" && !strings.Contains(dg.Hints[0].Text, tt.mention) {
				t.Errorf("hint %q lacks %q", dg.Hints[0].Text, tt.mention)
			}
			for _, h := range dg.Hints {
				if strings.Contains(h.Text, string(caseSecret)) || strings.Contains(h.Text, oldSecret) {
					t.Errorf("hint reveals a secret: %q", h.Text)
				}
			}
		})
	}
}

// TestDiagnoseGzipBounded: gzip without Content-Encoding is inflated at most 1 MiB (16× the
// 64 KiB rejected-body cap) per page view. A body that decodes to exactly the cap still gets its
// hint; one byte more, or a gzip bomb, gets none, and the bomb costs no more than the cap.
func TestDiagnoseGzipBounded(t *testing.T) {
	const maxInflate = 1 << 20
	probe := func(decoded []byte) (signature.Evidence, []signature.Probe) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(decoded)
		zw.Close()
		return signature.Evidence{Header: hdr("Plaud-Signature", devguideOver(caseSecret, decoded)),
			Body: buf.Bytes(), ReceivedAt: caseNow, Tolerance: 5 * time.Minute}, []signature.Probe{probeS()}
	}
	kinds := func(dg signature.Diagnosis) []signature.HintKind {
		var out []signature.HintKind
		for _, h := range dg.Hints {
			out = append(out, h.Kind)
		}
		return out
	}

	if got := kinds(signature.Diagnose(probe(bytes.Repeat([]byte("a"), maxInflate)))); !slices.Equal(got, []signature.HintKind{signature.HintGzip}) {
		t.Errorf("decoded to exactly the cap: hints %v, want [gzip]", got)
	}
	if got := kinds(signature.Diagnose(probe(bytes.Repeat([]byte("a"), maxInflate+1)))); len(got) != 0 {
		t.Errorf("decoded one byte past the cap: hints %v, want none", got)
	}

	// A bomb: 10 MiB of zeros, about 10 KB stored. Inflating it whole would allocate over
	// 10 MiB; bounded, the call allocates a small multiple of the cap at most.
	ev, probes := probe(make([]byte, 10<<20))
	if len(ev.Body) > 64<<10 {
		t.Fatalf("bomb is %d bytes stored, want under the 64 KiB cap", len(ev.Body))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	dg := signature.Diagnose(ev, probes)
	runtime.ReadMemStats(&after)
	if got := kinds(dg); len(got) != 0 {
		t.Errorf("gzip bomb: hints %v, want none", got)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 6*maxInflate {
		t.Errorf("gzip bomb: %d bytes allocated, want at most %d (inflation is not bounded)", alloc, 6*maxInflate)
	}
}

// TestDiagnoseTries: each secret is listed with its outcome; digests appear cut to 8 hex
// digits, never whole.
func TestDiagnoseTries(t *testing.T) {
	h := hdr("Plaud-Signature", sigOld)
	dg := signature.Diagnose(signature.Evidence{Header: h, Body: b1, ReceivedAt: caseNow, Tolerance: 5 * time.Minute},
		[]signature.Probe{probeS(), probeOld()})
	if dg.Scheme != signature.SchemeDevguide || !strings.Contains(dg.SchemeWhy, "bare value") {
		t.Errorf("scheme = %s (%s), want devguide because of a bare value", dg.Scheme, dg.SchemeWhy)
	}
	if len(dg.Received) != 1 || dg.Received[0] != "94d87893…" {
		t.Errorf("received = %v, want [94d87893…]", dg.Received)
	}
	want := []signature.Try{
		{Label: "S", Fingerprint: "fp-s", Accepted: true, Computed: sigS[:8], Match: false},
		{Label: "old", Fingerprint: "fp-old", Accepted: false, Note: revokedNote, Computed: sigOld[:8], Match: true},
	}
	if !slices.Equal(dg.Tries, want) {
		t.Errorf("tries = %+v\nwant   %+v", dg.Tries, want)
	}

	// The embedded scheme: skew in seconds, and the prefix kept on the received value.
	h = hdr("Plaud-Signature", sigEmbOld, "Plaud-Timestamp", "1796298899")
	dg = signature.Diagnose(signature.Evidence{Header: h, Body: b1, ReceivedAt: caseNow, Tolerance: 5 * time.Minute},
		[]signature.Probe{probeS()})
	if !dg.HasSkew || dg.Skew != 301*time.Second || dg.Received[0] != "sha256=675feb52…" {
		t.Errorf("skew %v (%v), received %v", dg.Skew, dg.HasSkew, dg.Received)
	}
	if dg.Scheme != signature.SchemeEmbedded || !dg.Tries[0].Match {
		t.Errorf("scheme %s, tries %+v; want embedded, matching", dg.Scheme, dg.Tries)
	}
}

// TestDiagnoseTruncated: a body kept only in part is not re-computed, and the page says why.
func TestDiagnoseTruncated(t *testing.T) {
	dg := signature.Diagnose(signature.Evidence{Header: hdr("X-Plaud-Signature", sigS), Body: b1[:20],
		Truncated: true, ReceivedAt: caseNow}, []signature.Probe{probeS()})
	if len(dg.Hints) != 1 || dg.Hints[0].Kind != signature.HintTruncated {
		t.Fatalf("hints = %+v, want only %s", dg.Hints, signature.HintTruncated)
	}
}

// BenchmarkDiagnose measures the debugger on a rejected body at the 64 KiB cap with four secrets
// and a wrong signature: the worst case, since no variant matches and every one is computed.
func BenchmarkDiagnose(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 64<<10)
	h := hdr("Plaud-Signature", devguideOver([]byte("nope"), body))
	probes := []signature.Probe{probeS(), probeOld(),
		{Label: "c", Key: []byte("third_secret")}, {Label: "d", Key: []byte("fourth_secret")}}
	ev := signature.Evidence{Header: h, Body: body, ReceivedAt: caseNow, Tolerance: 5 * time.Minute}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if dg := signature.Diagnose(ev, probes); len(dg.Hints) != 0 {
			b.Fatal("unexpected hint")
		}
	}
}
