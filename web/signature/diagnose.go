package signature

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Probe is a secret the debugger re-computes a rejected delivery's signature with: every secret
// of the endpoint, including retired and revoked ones, since the sender may still use one.
type Probe struct {
	Label       string
	Fingerprint string
	Key         []byte
	// Accepted says the endpoint accepted this secret for the delivery (so a match is not news).
	Accepted bool
	// Note completes "which ..." in a hint about a secret that was not accepted, with what to
	// do, e.g. "was revoked at 2026-12-03 12:00:00 UTC: the sender still signs with it".
	Note string
}

// Evidence is a stored delivery as the debugger sees it.
type Evidence struct {
	Header     http.Header // as received
	Body       []byte      // as stored (after gzip decoding, when that succeeded)
	Encoding   string      // Content-Encoding as received, lower case
	Truncated  bool        // only a prefix of the body was kept: nothing can be re-computed
	ReceivedAt time.Time
	Tolerance  time.Duration
}

// HintKind names a kind of finding, for tests and data-testid attributes.
type HintKind string

// The kinds of hints Diagnose gives. Each one is found by re-computing the HMAC.
const (
	HintInactiveSecret   HintKind = "inactive_secret"   // matches a retired or revoked secret
	HintLineEnding       HintKind = "line_ending"       // matches once line endings are changed
	HintOtherScheme      HintKind = "other_scheme"      // matches the other Plaud scheme
	HintMillisecond      HintKind = "millisecond"       // the timestamp is (or was signed in) ms
	HintOtherHeader      HintKind = "other_header"      // signature under another header name
	HintSecretWhitespace HintKind = "secret_whitespace" // matches a secret with whitespace around
	HintGzip             HintKind = "gzip"              // decoded versus wire bytes
	HintClockSkew        HintKind = "clock_skew"        // valid, but outside the tolerance
	HintTruncated        HintKind = "truncated"         // only part of the body was kept
	HintNoSecret         HintKind = "no_secret"         // nothing to re-compute with
	HintUnsigned         HintKind = "unsigned"          // no signature anywhere in the request
)

// Hint is one concrete finding, in words for the delivery page.
type Hint struct {
	Kind HintKind
	Text string
}

// Try is the outcome of one secret on the delivery as received.
type Try struct {
	Label       string
	Fingerprint string
	Accepted    bool
	Note        string
	Computed    string // first 8 hex digits of the digest this secret gives, "" when none
	Match       bool
}

// Diagnosis explains why a delivery's signature did not verify.
type Diagnosis struct {
	Scheme    Scheme
	SchemeWhy string   // why that scheme was detected
	Received  []string // signature values as received, the digest cut to its first 8 hex digits
	Timestamp string   // Plaud-Timestamp as received
	Skew      time.Duration
	HasSkew   bool // Skew is receive time minus a timestamp read as Unix seconds
	Tries     []Try
	Hints     []Hint
}

// Diagnose re-computes a rejected delivery's signature under every probe and every plausible
// mistake, and says what it finds. It is a pure function of its input: it reads no clock, no
// storage and no network. Digests are only ever shown cut to 8 hex digits.
func Diagnose(ev Evidence, probes []Probe) Diagnosis {
	dg := Diagnosis{Scheme: Detect(ev.Header), Timestamp: strings.TrimSpace(ev.Header.Get(HeaderTimestamp))}
	dg.SchemeWhy = schemeWhy(ev.Header, dg.Scheme)
	values := Candidates(ev.Header)
	for _, v := range values {
		dg.Received = append(dg.Received, shortValue(v))
	}
	if sent, err := strconv.ParseInt(dg.Timestamp, 10, 64); err == nil {
		dg.Skew, dg.HasSkew = clampSeconds(ev.ReceivedAt.Unix()-sent), true
	}
	digests := looseDigests(values)
	d := diagnoser{ev: ev, probes: probes, digests: digests, ts: dg.Timestamp, scheme: dg.Scheme}

	// Each secret on the delivery exactly as received.
	for _, p := range probes {
		t := Try{Label: p.Label, Fingerprint: p.Fingerprint, Accepted: p.Accepted, Note: p.Note}
		if sum := d.compute(dg.Scheme, p.Key, d.ts, ev.Body); sum != nil {
			t.Computed = hex.EncodeToString(sum)[:8]
			t.Match = d.matches(sum)
		}
		dg.Tries = append(dg.Tries, t)
	}
	switch {
	case ev.Truncated:
		dg.Hints = append(dg.Hints, Hint{HintTruncated, "Only the beginning of this body was " +
			"kept, so its signature cannot be re-computed."})
		return dg
	case len(values) == 0:
		// Nothing under Plaud-Signature: either a renamed header, or not signed at all (a
		// hand-made test, a health check, a proxy that strips headers). No secret is at fault.
		if hs := d.otherHeader(); len(hs) > 0 {
			dg.Hints = append(dg.Hints, hs...)
			return dg
		}
		dg.Hints = append(dg.Hints, Hint{HintUnsigned, "This request carries no signature at " +
			"all: no Plaud-Signature header, and no other header whose value matches a secret. " +
			"Plaud signs every delivery, so it came from something else (a test with curl, a " +
			"health check, or a proxy that drops headers). No secret is at fault."})
		return dg
	case len(probes) == 0:
		dg.Hints = append(dg.Hints, Hint{HintNoSecret, "This endpoint has no signing secret, so " +
			"nothing can be re-computed. Add the secret from Plaud's portal, then re-verify."})
		return dg
	}

	dg.Hints = append(dg.Hints, d.inactiveSecret(dg.Tries)...)
	dg.Hints = append(dg.Hints, d.clockSkew(dg)...)
	dg.Hints = append(dg.Hints, d.lineEndings()...)
	dg.Hints = append(dg.Hints, d.otherScheme()...)
	dg.Hints = append(dg.Hints, d.millisecond()...)
	dg.Hints = append(dg.Hints, d.otherHeader()...)
	dg.Hints = append(dg.Hints, d.secretWhitespace()...)
	dg.Hints = append(dg.Hints, d.gzip()...)
	return dg
}

// diagnoser carries what every check needs.
type diagnoser struct {
	ev      Evidence
	probes  []Probe
	digests [][]byte // Plaud-Signature values decoded, with or without "sha256="
	ts      string
	scheme  Scheme
}

// compute returns the digest of body under scheme, or nil when the scheme needs a timestamp
// that is missing. With no scheme detected (no signature header) it computes devguide's.
func (d diagnoser) compute(scheme Scheme, key []byte, ts string, body []byte) []byte {
	if scheme == SchemeEmbedded {
		if ts == "" {
			return nil
		}
		return Compute(SchemeEmbedded, key, ts, body)
	}
	return Compute(SchemeDevguide, key, "", body)
}

func (d diagnoser) matches(sum []byte) bool { return matchAny(d.digests, sum) }

// inactiveSecret: the signature matches a secret the endpoint no longer (or not yet) accepted.
func (d diagnoser) inactiveSecret(tries []Try) []Hint {
	var out []Hint
	for _, t := range tries {
		if t.Match && !t.Accepted {
			out = append(out, Hint{HintInactiveSecret, fmt.Sprintf("The signature matches the "+
				"secret %q (fingerprint %s), which %s.", t.Label, t.Fingerprint, t.Note)})
		}
	}
	return out
}

// clockSkew: the signature is valid under an accepted secret, so only the time was wrong.
func (d diagnoser) clockSkew(dg Diagnosis) []Hint {
	if dg.Scheme != SchemeEmbedded || !dg.HasSkew || len(d.ts) >= 13 {
		return nil
	}
	for _, t := range dg.Tries {
		if !t.Match || !t.Accepted {
			continue
		}
		s := int64(dg.Skew / time.Second)
		tol := int64(d.ev.Tolerance / time.Second)
		if s <= tol && s >= -tol {
			return nil
		}
		dir := "behind"
		if s < 0 {
			dir, s = "ahead of", -s
		}
		return []Hint{{HintClockSkew, fmt.Sprintf("The signature is valid, but Plaud-Timestamp "+
			"is %d s %s this server's clock (tolerance ±%d s): a delayed retry, or a clock that "+
			"is off on one side. Check NTP on this server.", s, dir, tol)}}
	}
	return nil
}

// lineEndings: the signature matches the body with a trailing newline removed or added, or with
// its line endings converted: something altered the body after it was signed.
func (d diagnoser) lineEndings() []Hint {
	body := d.ev.Body
	variants := []struct {
		body []byte
		what string
	}{
		{bytes.TrimSuffix(body, []byte("\r\n")), "without its final CR LF: a CR LF was added " +
			"after signing"},
		{bytes.TrimSuffix(body, []byte("\n")), "without its final line feed: a newline was " +
			"added after signing"},
		{append(bytes.Clone(body), '\n'), "with a final line feed: the sender signed a body " +
			"ending in a newline, and the newline was lost on the way"},
		{append(bytes.Clone(body), '\r', '\n'), "with a final CR LF: the sender signed a body " +
			"ending in CR LF, and it was lost on the way"},
		{bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n")), "with its CR LF line endings " +
			"turned into LF: line endings were converted on the way"},
		{bytes.ReplaceAll(bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n")), []byte("\n"),
			[]byte("\r\n")), "with its LF line endings turned into CR LF: line endings were " +
			"converted on the way"},
	}
	var out []Hint
	for _, v := range variants {
		if bytes.Equal(v.body, body) {
			continue
		}
		if p, ok := d.firstMatch(d.scheme, d.ts, v.body); ok {
			out = append(out, Hint{HintLineEnding, fmt.Sprintf("The signature matches the body "+
				"%s. The body was altered between the sender and plaudhook (a proxy, or the "+
				"sender's HTTP library); plaudhook verifies the exact bytes (secret %q).", v.what, p.Label)})
		}
	}
	return out
}

// otherScheme: the value is the other Plaud scheme's signature.
func (d diagnoser) otherScheme() []Hint {
	switch d.scheme {
	case SchemeEmbedded:
		if p, ok := d.firstMatch(SchemeDevguide, "", d.ev.Body); ok {
			return []Hint{{HintOtherScheme, fmt.Sprintf("The signature is a devguide one (the "+
				"HMAC of the raw body, secret %q), but %s, so plaudhook read it as the embedded "+
				"scheme. Send a bare hex Plaud-Signature without Plaud-Timestamp, or sign "+
				"\"<timestamp>.<body>\" with a sha256= prefix.", p.Label, schemeWhy(d.ev.Header, d.scheme))}}
		}
	case SchemeDevguide:
		// An embedded signature needs a timestamp; one may have arrived under another name.
		for _, name := range timestampHeaders(d.ev.Header) {
			ts := strings.TrimSpace(d.ev.Header.Get(name))
			if p, ok := d.firstMatch(SchemeEmbedded, ts, d.ev.Body); ok {
				return []Hint{{HintOtherScheme, fmt.Sprintf("The signature is an embedded one "+
					"(the HMAC of \"<timestamp>.<body>\", secret %q, timestamp from %s), but it "+
					"arrived without the sha256= prefix and Plaud-Timestamp, so plaudhook read "+
					"it as the devguide scheme.", p.Label, name)}}
			}
		}
	}
	return nil
}

// millisecond: the embedded timestamp is in milliseconds, or the sender signed another unit than
// the one it sent.
func (d diagnoser) millisecond() []Hint {
	if d.scheme != SchemeEmbedded || d.ts == "" {
		return nil
	}
	n, err := strconv.ParseInt(d.ts, 10, 64)
	if err != nil || len(d.ts) < 13 {
		return nil
	}
	var out []Hint
	off := d.ev.ReceivedAt.Unix() - n/1000
	if p, ok := d.firstMatch(SchemeEmbedded, d.ts, d.ev.Body); ok {
		out = append(out, Hint{HintMillisecond, fmt.Sprintf("The signature is valid (secret %q), "+
			"but Plaud-Timestamp %s is in milliseconds, not Unix seconds: read as seconds it is "+
			"far in the future. Read as milliseconds it is %d s from this server's clock.",
			p.Label, d.ts, off)})
	}
	secs := strconv.FormatInt(n/1000, 10)
	if p, ok := d.firstMatch(SchemeEmbedded, secs, d.ev.Body); ok {
		out = append(out, Hint{HintMillisecond, fmt.Sprintf("The signature matches \"%s.<body>\" "+
			"(secret %q): the sender signed the timestamp in seconds but sent it in "+
			"milliseconds (%s) in Plaud-Timestamp.", secs, p.Label, d.ts)})
	}
	return out
}

// otherHeader: the signature arrived under another header name, like X-Plaud-Signature.
func (d diagnoser) otherHeader() []Hint {
	var out []Hint
	for _, name := range sortedNames(d.ev.Header) {
		if !strings.Contains(strings.ToLower(name), "signature") || name == HeaderSignature {
			continue
		}
		var values []string
		for _, line := range d.ev.Header.Values(name) {
			values = appendFields(values, line, MaxCandidates)
		}
		digests := looseDigests(values)
		if len(digests) == 0 {
			continue
		}
		other := diagnoser{ev: d.ev, probes: d.probes, digests: digests}
		if p, ok := other.firstMatch(SchemeDevguide, "", d.ev.Body); ok {
			out = append(out, Hint{HintOtherHeader, fmt.Sprintf("The signature arrived in %s "+
				"and matches the body (devguide scheme, secret %q), but plaudhook reads "+
				"Plaud-Signature, as Plaud documents it: fix the sender, or the proxy that "+
				"renames the header.", name, p.Label)})
			continue
		}
		for _, tsName := range timestampHeaders(d.ev.Header) {
			ts := strings.TrimSpace(d.ev.Header.Get(tsName))
			if p, ok := other.firstMatch(SchemeEmbedded, ts, d.ev.Body); ok {
				out = append(out, Hint{HintOtherHeader, fmt.Sprintf("The signature arrived in "+
					"%s (timestamp in %s) and matches the embedded scheme (secret %q), but "+
					"plaudhook reads Plaud-Signature and Plaud-Timestamp, as Plaud documents "+
					"them: fix the sender, or the proxy that renames the headers.", name, tsName,
					p.Label)})
				break
			}
		}
	}
	return out
}

// secretWhitespace: the signature matches a secret with whitespace around it, as when a secret
// is pasted with a newline into the sender's configuration.
func (d diagnoser) secretWhitespace() []Hint {
	prefixes := []string{"", " ", "  ", "\t"}
	suffixes := []string{"", "\n", "\r\n", " ", "  ", "\t", " \n"}
	for _, p := range d.probes {
		for _, pre := range prefixes {
			for _, suf := range suffixes {
				if pre == "" && suf == "" {
					continue
				}
				key := append(append([]byte(pre), p.Key...), suf...)
				sum := d.compute(d.scheme, key, d.ts, d.ev.Body)
				if sum == nil || !d.matches(sum) {
					continue
				}
				return []Hint{{HintSecretWhitespace, fmt.Sprintf("The signature matches the "+
					"secret %q with %s. The sender's copy of the secret carries whitespace that "+
					"plaudhook trims: remove it from the sender's configuration.", p.Label,
					describeWhitespace(pre, suf))}}
			}
		}
	}
	return nil
}

// gzip: decoded versus wire bytes. Either gzip data arrived without Content-Encoding and the
// signature covers the decompressed bytes, or Content-Encoding: gzip arrived over bytes that are
// not gzip and the signature covers them as received.
//
// The debugger runs on every view of a rejected delivery's page, so inflation stops at
// maxInflate: sixteen times the 64 KiB a rejected body is cut to, far above any real
// compression ratio of a JSON payload, while a gzip bomb costs at most 1 MiB per view. A body
// that inflates past it gets no hint.
func (d diagnoser) gzip() []Hint {
	const maxInflate = 1 << 20
	body := d.ev.Body
	isGzip := len(body) >= 2 && body[0] == 0x1f && body[1] == 0x8b
	switch {
	case isGzip && d.ev.Encoding == "":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil
		}
		decoded, err := io.ReadAll(io.LimitReader(zr, maxInflate+1))
		if err != nil || len(decoded) > maxInflate {
			return nil
		}
		if p, ok := d.firstMatch(d.scheme, d.ts, decoded); ok {
			return []Hint{{HintGzip, fmt.Sprintf("The body is gzip data that arrived without "+
				"Content-Encoding: gzip, and the signature matches the decompressed bytes "+
				"(secret %q). The sender, or a proxy, dropped the Content-Encoding header.", p.Label)}}
		}
	case !isGzip && (d.ev.Encoding == "gzip" || d.ev.Encoding == "x-gzip"):
		if p, ok := d.firstMatch(d.scheme, d.ts, body); ok {
			return []Hint{{HintGzip, fmt.Sprintf("The request says Content-Encoding: gzip but "+
				"the body is not gzip, and the signature matches the bytes as they arrived "+
				"(secret %q): a proxy probably decompressed the body and kept the header.", p.Label)}}
		}
	}
	return nil
}

// firstMatch returns the first probe whose digest of body under scheme is among the candidates.
func (d diagnoser) firstMatch(scheme Scheme, ts string, body []byte) (Probe, bool) {
	for _, p := range d.probes {
		if sum := d.compute(scheme, p.Key, ts, body); sum != nil && d.matches(sum) {
			return p, true
		}
	}
	return Probe{}, false
}

// schemeWhy explains what in the headers made Detect choose scheme.
func schemeWhy(h http.Header, scheme Scheme) string {
	switch scheme {
	case SchemeEmbedded:
		if h.Get(HeaderTimestamp) != "" {
			return "a Plaud-Timestamp header is present"
		}
		return "the signature starts with sha256="
	case SchemeDevguide:
		return "Plaud-Signature is a bare value and there is no Plaud-Timestamp header"
	}
	return "there is no Plaud-Signature header"
}

// looseDigests decodes signature values, with or without a "sha256=" prefix, skipping anything
// that is not 32 bytes of hex.
func looseDigests(values []string) [][]byte {
	var out [][]byte
	for _, v := range values {
		if hasPrefixFold(v, "sha256=") {
			v = v[len("sha256="):]
		}
		if b, err := hex.DecodeString(v); err == nil && len(b) == 32 {
			out = append(out, b)
		}
	}
	return out
}

// shortValue cuts a signature value's digest to its first 8 hex digits, keeping a "sha256="
// prefix.
func shortValue(v string) string {
	prefix := ""
	if i := strings.IndexByte(v, '='); i >= 0 {
		prefix, v = v[:i+1], v[i+1:]
	}
	if len(v) > 8 {
		v = v[:8] + "…"
	}
	return prefix + v
}

// timestampHeaders lists headers that may carry the embedded scheme's timestamp: Plaud-Timestamp
// first, then any other header whose name contains "timestamp".
func timestampHeaders(h http.Header) []string {
	var out []string
	if h.Get(HeaderTimestamp) != "" {
		out = append(out, HeaderTimestamp)
	}
	for _, name := range sortedNames(h) {
		if name != HeaderTimestamp && strings.Contains(strings.ToLower(name), "timestamp") {
			out = append(out, name)
		}
	}
	return out
}

func sortedNames(h http.Header) []string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// describeWhitespace says in words what surrounds a secret, e.g. "2 leading spaces and a
// trailing line feed".
func describeWhitespace(pre, suf string) string {
	name := func(s string) string {
		switch s {
		case " ":
			return "a space"
		case "  ":
			return "2 spaces"
		case "\t":
			return "a tab"
		case "\n":
			return "a line feed"
		case "\r\n":
			return "a CR LF"
		case " \n":
			return "a space and a line feed"
		}
		return strconv.Quote(s)
	}
	var parts []string
	if pre != "" {
		parts = append(parts, name(pre)+" before it")
	}
	if suf != "" {
		parts = append(parts, name(suf)+" after it")
	}
	return strings.Join(parts, " and ")
}
