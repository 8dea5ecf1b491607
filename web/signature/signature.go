// Package signature verifies and produces the HMAC-SHA256 signatures that Plaud puts on its
// webhook deliveries. Plaud documents two schemes that do not match (see README, "Signing"):
//
//   - devguide: Plaud-Signature is the lowercase hex HMAC-SHA256 of the raw body;
//   - embedded: Plaud-Timestamp carries Unix seconds and Plaud-Signature is
//     "sha256=" + hex HMAC-SHA256 of "<timestamp>.<raw body>".
//
// The package works on the exact bytes received and never parses the body. It imports nothing
// else from plaudhook, so the ingest path, the replay client and the send tool share it.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Scheme names one of Plaud's two documented signing schemes.
type Scheme string

// The schemes, named as plaudhook's UI and API show them.
const (
	SchemeDevguide Scheme = "devguide"
	SchemeEmbedded Scheme = "embedded"
)

// Header names as Plaud documents them. Lookups are case-insensitive (net/http canonicalises).
const (
	HeaderSignature = "Plaud-Signature"
	HeaderTimestamp = "Plaud-Timestamp"
)

// Reason is the machine-readable cause of a rejected signature, answered to the sender and stored
// with the delivery.
type Reason string

// The reasons Verify can return.
const (
	ReasonNone           Reason = ""
	ReasonMissing        Reason = "missing_signature"
	ReasonMalformed      Reason = "malformed_signature"
	ReasonMismatch       Reason = "signature_mismatch"
	ReasonBadTimestamp   Reason = "bad_timestamp"
	ReasonMissingTime    Reason = "missing_timestamp"
	ReasonTimestampSkew  Reason = "timestamp_out_of_tolerance"
	ReasonNoSecret       Reason = "no_secret_configured"
	ReasonTooManyEntries Reason = "too_many_signatures"
	// ReasonDowngrade: a devguide signature that matches a body shaped like the embedded
	// scheme's signed text ("<timestamp>.<body>"). Both schemes share the secret, so an expired
	// embedded delivery could otherwise be sent again as a devguide one with the timestamp moved
	// into the body, and get past the timestamp tolerance.
	ReasonDowngrade Reason = "scheme_downgrade"
)

// MaxCandidates is how many signature values of one delivery are tried at most. A header listing
// more is checked only for its first MaxCandidates entries, so a crafted header cannot make one
// request cost thousands of HMACs.
const MaxCandidates = 10

// Secret is one signing key an endpoint accepts.
type Secret struct {
	ID    int64  // storage id, 0 for secrets from the environment
	Label string // shown in the UI as "verified by"
	Key   []byte // HMAC key, used exactly as given
}

// Result is the outcome of checking one delivery.
type Result struct {
	OK     bool
	Reason Reason
	Scheme Scheme // detected scheme, "" when no signature header was found
	// Secret is the secret that matched; nil unless OK.
	Secret *Secret
	// Timestamp is the raw Plaud-Timestamp value (embedded scheme), as received.
	Timestamp string
	// Skew is receive time minus the sender's timestamp; valid when HasSkew.
	Skew    time.Duration
	HasSkew bool
}

// Verifier checks deliveries against a set of secrets. The zero value is not usable: set
// Tolerance and Now.
type Verifier struct {
	Tolerance time.Duration    // accepted |now - timestamp| for the embedded scheme
	Now       func() time.Time // the clock, injected for tests
}

// Verify checks body and header against secrets. It detects the scheme from the headers, tries
// every secret on every signature value (at most MaxCandidates values), compares in constant
// time, and enforces the timestamp tolerance of the embedded scheme. It never reads anything but
// the exact bytes given.
func (v Verifier) Verify(h http.Header, body []byte, secrets []Secret) Result {
	values := Candidates(h)
	ts := strings.TrimSpace(h.Get(HeaderTimestamp))

	// Nothing to check against: the operator has not configured a secret.
	if len(secrets) == 0 {
		return Result{Reason: ReasonNoSecret, Scheme: Detect(h), Timestamp: ts}
	}
	if len(values) == 0 {
		return Result{Reason: ReasonMissing, Timestamp: ts}
	}

	scheme := Detect(h)
	res := Result{Scheme: scheme, Timestamp: ts}
	digests := decodeAll(values, scheme)
	if len(digests) == 0 {
		res.Reason = ReasonMalformed
		return res
	}

	if scheme == SchemeEmbedded {
		if ts == "" {
			res.Reason = ReasonMissingTime
			return res
		}
		sent, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			res.Reason = ReasonBadTimestamp
			return res
		}
		// The timestamp is inside the signed text, so check the signature first: an unsigned
		// timestamp must not tell the sender anything about our clock.
		for i := range secrets {
			if matchAny(digests, Compute(SchemeEmbedded, secrets[i].Key, ts, body)) {
				// Compare in whole seconds: a millisecond timestamp read as seconds is far
				// enough in the future to overflow a time.Duration.
				diff := v.Now().Unix() - sent
				res.Skew = clampSeconds(diff)
				res.HasSkew = true
				tol := int64(v.Tolerance / time.Second)
				if diff > tol || diff < -tol {
					res.Reason = ReasonTimestampSkew
					return res
				}
				res.OK = true
				res.Secret = &secrets[i]
				return res
			}
		}
		res.Reason = ReasonMismatch
		return res
	}

	for i := range secrets {
		if matchAny(digests, Compute(SchemeDevguide, secrets[i].Key, "", body)) {
			if embeddedShape(body) {
				res.Reason = ReasonDowngrade
				return res
			}
			res.OK = true
			res.Secret = &secrets[i]
			return res
		}
	}
	res.Reason = ReasonMismatch
	return res
}

// embeddedShape reports whether body begins like the embedded scheme's signed text: a
// timestamp as Verify accepts one (an optional sign, then digits), then a dot. No Plaud payload
// does; an embedded signature moved onto a devguide delivery does.
func embeddedShape(body []byte) bool {
	i := 0
	if i < len(body) && (body[i] == '+' || body[i] == '-') {
		i++
	}
	digits := i
	for i < len(body) && body[i] >= '0' && body[i] <= '9' {
		i++
	}
	return i > digits && i < len(body) && body[i] == '.'
}

// Detect names the scheme a delivery's headers claim: a Plaud-Timestamp header or a "sha256="
// value means embedded, any other signature value means devguide, no signature means "".
func Detect(h http.Header) Scheme {
	values := Candidates(h)
	if h.Get(HeaderTimestamp) != "" {
		return SchemeEmbedded
	}
	for _, v := range values {
		if hasPrefixFold(v, "sha256=") {
			return SchemeEmbedded
		}
	}
	if len(values) > 0 {
		return SchemeDevguide
	}
	return ""
}

// Candidates lists the signature values a delivery carries: every Plaud-Signature header line,
// each split on commas and spaces (senders rotating a secret send several), empty entries
// dropped, at most MaxCandidates.
func Candidates(h http.Header) []string {
	var out []string
	for _, line := range h.Values(HeaderSignature) {
		out = appendFields(out, line, MaxCandidates)
		if len(out) == MaxCandidates {
			break
		}
	}
	return out
}

// appendFields appends the non-empty entries of a comma-, space- or tab-separated line to out,
// stopping once out holds limit entries: the rest of a long line is never scanned.
func appendFields(out []string, line string, limit int) []string {
	for line != "" && len(out) < limit {
		i := strings.IndexAny(line, ", \t")
		if i < 0 {
			return append(out, line)
		}
		if i > 0 {
			out = append(out, line[:i])
		}
		line = line[i+1:]
	}
	return out
}

// Compute returns the digest bytes for scheme: HMAC-SHA256 over body (devguide) or over
// "<ts>.<body>" (embedded).
func Compute(scheme Scheme, key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	if scheme == SchemeEmbedded {
		m.Write([]byte(ts))
		m.Write([]byte{'.'})
	}
	m.Write(body)
	return m.Sum(nil)
}

// Sign returns the headers that sign body under scheme with key; ts is used by the embedded
// scheme only. The send tool, replays and tests all sign through it.
func Sign(scheme Scheme, key []byte, ts time.Time, body []byte) http.Header {
	h := http.Header{}
	if scheme == SchemeEmbedded {
		t := strconv.FormatInt(ts.Unix(), 10)
		h.Set(HeaderTimestamp, t)
		h.Set(HeaderSignature, "sha256="+hex.EncodeToString(Compute(scheme, key, t, body)))
		return h
	}
	h.Set(HeaderSignature, hex.EncodeToString(Compute(SchemeDevguide, key, "", body)))
	return h
}

// decodeAll turns signature values into digests, skipping values that are not 32 bytes of hex.
// The embedded scheme's values carry a "sha256=" prefix, which is removed (case-insensitively);
// a bare hex value is still tried, since senders differ in how strictly they follow the docs.
func decodeAll(values []string, scheme Scheme) [][]byte {
	var out [][]byte
	for _, v := range values {
		if hasPrefixFold(v, "sha256=") {
			v = v[len("sha256="):]
		} else if scheme == SchemeDevguide && strings.Contains(v, "=") {
			continue
		}
		d, err := hex.DecodeString(v) // accepts upper and lower case
		if err != nil || len(d) != sha256.Size {
			continue
		}
		out = append(out, d)
	}
	return out
}

// matchAny compares want with every candidate in constant time.
func matchAny(candidates [][]byte, want []byte) bool {
	ok := false
	for _, c := range candidates {
		if hmac.Equal(c, want) {
			ok = true
		}
	}
	return ok
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// clampSeconds converts seconds to a Duration, saturating instead of overflowing.
func clampSeconds(s int64) time.Duration {
	const limit = int64(math.MaxInt64 / int64(time.Second))
	switch {
	case s > limit:
		return time.Duration(math.MaxInt64)
	case s < -limit:
		return time.Duration(math.MinInt64)
	}
	return time.Duration(s) * time.Second
}
