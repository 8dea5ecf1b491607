package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
	"github.com/plaudhook/plaudhook/web/signature"
)

// reverifiable lists the rejection reasons a re-check can overturn: the signature ones. A body
// that was too large, badly encoded or unreadable stays rejected whatever the secrets are, and
// so does a request that carried no Plaud-Signature at all.
var reverifiable = map[string]bool{
	string(signature.ReasonMalformed):     true,
	string(signature.ReasonMismatch):      true,
	string(signature.ReasonBadTimestamp):  true,
	string(signature.ReasonMissingTime):   true,
	string(signature.ReasonTimestampSkew): true,
	string(signature.ReasonNoSecret):      true,
}

// deliveryDebugger runs the signature debugger on a rejected delivery: every secret of its
// endpoint, in every state, is re-computed against the stored headers and body. It returns nil
// for a verified delivery.
func (s *Server) deliveryDebugger(ctx context.Context, d db.Delivery) (*views.Debugger, error) {
	if d.Verdict != db.Rejected {
		return nil, nil
	}
	keys, err := s.endpointKeys(ctx, d.EndpointID)
	if err != nil {
		return nil, err
	}

	// Probes: each secret, whether the endpoint accepted it for this delivery, and if not why.
	var probes []signature.Probe
	now := s.now()
	for _, k := range keys {
		probes = append(probes, signature.Probe{Label: k.Label, Fingerprint: k.Fingerprint,
			Key: k.Value, Accepted: acceptedAt(k.Secret, d.ReceivedAt), Note: secretNote(k.Secret, d.ReceivedAt)})
	}
	dg := signature.Diagnose(signature.Evidence{Header: d.Header, Body: d.Body,
		Encoding: d.ContentEncoding, Truncated: d.BodyTruncated, ReceivedAt: d.ReceivedAt,
		Tolerance: s.cfg.Tolerance}, probes)

	out := &views.Debugger{Scheme: string(dg.Scheme), SchemeWhy: dg.SchemeWhy,
		Received: dg.Received, Timestamp: dg.Timestamp, HasSkew: dg.HasSkew,
		SkewSeconds: int64(dg.Skew / time.Second)}
	for i, t := range dg.Tries {
		out.Tries = append(out.Tries, views.DebuggerTry{Label: t.Label, Fingerprint: t.Fingerprint,
			Status: keys[i].Status(now), Accepted: t.Accepted, Computed: t.Computed, Match: t.Match})
	}
	for _, h := range dg.Hints {
		out.Hints = append(out.Hints, views.DebuggerHint{Kind: string(h.Kind), Text: h.Text})
	}
	out.CanReverify, out.ReverifyWhyNot = canReverify(d)
	return out, nil
}

// acceptedAt reports whether the endpoint accepted secret k for a delivery received at t: it
// existed then and was usable.
func acceptedAt(k db.Secret, t time.Time) bool {
	if !k.CreatedAt.IsZero() && k.CreatedAt.After(t) {
		return false
	}
	if k.State == db.SecretRevoked {
		return t.Before(k.RevokedAt)
	}
	return k.Usable(t)
}

// secretNote completes "the signature matches the secret X, which ..." for a secret the endpoint
// did not accept, saying what to do.
func secretNote(k db.Secret, t time.Time) string {
	switch {
	case !k.CreatedAt.IsZero() && k.CreatedAt.After(t):
		return "was added after this delivery arrived (" + views.FormatTime(k.CreatedAt) +
			"): re-verify it now to turn it into an event"
	case k.State == db.SecretRevoked:
		return "was revoked at " + views.FormatTime(k.RevokedAt) +
			": the sender still signs with it; update the secret in Plaud's portal"
	case k.State == db.SecretRetiring && !t.Before(k.RetireAt):
		return "stopped verifying at " + views.FormatTime(k.RetireAt) +
			", the end of its retiring period: the sender still signs with it; update the " +
			"secret in Plaud's portal"
	}
	return "was not accepted for this delivery"
}

// canReverify says whether a rejected delivery can be re-checked, or why not.
func canReverify(d db.Delivery) (bool, string) {
	switch {
	case d.Verdict != db.Rejected:
		return false, ""
	case d.BodyTruncated:
		return false, "Only part of this body was kept, so it cannot be re-verified."
	case !reverifiable[d.Reason]:
		return false, "Rejected for " + d.Reason + ": re-verifying the signature cannot change that."
	}
	return true, ""
}

// handleDeliveryReverify re-checks a rejected delivery's signature with the endpoint's current
// secrets, using its receive time for the timestamp tolerance. If it verifies now, it is promoted
// through the ingest path (deduplicated like any delivery) and becomes an event; the audit log
// records who did it.
func (s *Server) handleDeliveryReverify(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	d, err := s.store.FindDeliveryByID(ctx, id)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	if ok, why := canReverify(d); !ok {
		if why == "" {
			why = "This delivery is already verified."
		}
		s.respondError(w, r, &db.ValidationError{Message: why})
		return
	}

	// Verify as ingest did, but with today's secrets and the delivery's own receive time.
	secrets, keys, err := s.verifySecrets(ctx, d.EndpointID, s.now())
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	v := signature.Verifier{Tolerance: s.cfg.Tolerance, Now: func() time.Time { return d.ReceivedAt }}
	res := v.Verify(d.Header, d.Body, secrets)
	target := "delivery " + strconv.FormatInt(d.ID, 10)
	if !res.OK {
		s.audit(r, "delivery.reverify", target, "still rejected: "+string(res.Reason))
		s.redirectNotice(w, r, views.DeliveryURL(d.ID), url.Values{"notice": {"reverify_failed"},
			"reason": {string(res.Reason)}})
		return
	}

	// Promote it: the same writer, event upsert and dedupe as a fresh delivery.
	u, _ := userFrom(ctx)
	p := d
	p.Verdict, p.Reason = db.Verified, ""
	p.Scheme, p.SecretLabel, p.SecretID = string(res.Scheme), res.Secret.Label, res.Secret.ID
	p.SecretOld = secretIsOld(keys, res.Secret, s.now())
	p.PromotedBy = u.Username
	if res.HasSkew {
		ms := res.Skew.Milliseconds()
		p.SkewMS = &ms
	}
	out, err := s.store.CreateDelivery(ctx, &db.Ingest{Delivery: p, Event: eventFacts(&p), Promote: d.ID})
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	s.log.Info("delivery promoted", "delivery_id", d.ID, "event_id", out.EventID,
		"duplicate", out.Duplicate)
	s.audit(r, "delivery.promote", target, fmt.Sprintf("re-verified with %q (was %s); event %d%s",
		res.Secret.Label, d.Reason, out.EventID, map[bool]string{true: ", a repeat", false: ""}[out.Duplicate]))

	if out.Forwarding {
		s.wakeForwarder()
	}
	// Tell open pages about the event (the delivery row is already on them, as rejected).
	p.EventID, p.Duplicate = out.EventID, out.Duplicate
	for _, m := range s.renderDelivery(context.WithoutCancel(ctx), p) {
		if strings.HasPrefix(m.Name, "event-") {
			s.hub.Publish(m)
		}
	}
	s.redirectNotice(w, r, views.DeliveryURL(d.ID), url.Values{"notice": {"promoted"},
		"event": {strconv.FormatInt(out.EventID, 10)}, "dup": {boolParam(out.Duplicate)}})
}

// deliveryNotice words the outcome of a re-verify from the query (fixed phrases, numbers and
// machine codes only).
func deliveryNotice(r *http.Request) string {
	q := r.URL.Query()
	switch q.Get("notice") {
	case "promoted":
		id, _ := strconv.ParseInt(q.Get("event"), 10, 64)
		msg := fmt.Sprintf("Re-verified: this delivery is now event #%d", id)
		if q.Get("dup") == "1" {
			msg += " (a repeat of an event already stored)"
		}
		return msg + "."
	case "reverify_failed":
		reason := q.Get("reason")
		if !codePattern.MatchString(reason) {
			reason = "signature_mismatch"
		}
		return "Still rejected with the current secrets (" + reason + "). The debugger below says why."
	}
	return ""
}
