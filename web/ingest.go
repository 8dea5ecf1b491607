package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
	"github.com/plaudhook/plaudhook/web/plaud"
	"github.com/plaudhook/plaudhook/web/signature"
)

// ingestStore is what the webhook path needs from storage.
type ingestStore interface {
	CreateDelivery(ctx context.Context, in *db.Ingest) (db.IngestResult, error)
	EndpointIDBySlug(ctx context.Context, slug string) (int64, error)
}

// ingestReply is the JSON body answered to a webhook sender.
type ingestReply struct {
	Status    string `json:"status"`
	Reason    string `json:"reason,omitempty"`
	Message   string `json:"message,omitempty"`
	EventID   int64  `json:"event_id,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// handleIngest receives one webhook delivery: read the raw bytes, verify the signature over
// them, commit the delivery (and its event) to SQLite, and only then answer. Rejected
// deliveries are stored too, bounded, so a team can see why a subscription fails.
func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request) {
	received := s.now()
	start := time.Now() // monotonic, for the ack latency metric
	ctx := r.Context()

	// Find the endpoint: /webhook is the default one.
	slug := r.PathValue("slug")
	if slug == "" {
		slug = "default"
	}
	endpointID, err := s.endpointID(ctx, slug)
	if errors.Is(err, db.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, ingestReply{Status: "error", Reason: "unknown_endpoint",
			Message: "no endpoint with this URL; create it in plaudhook first"})
		return
	}
	if err != nil {
		s.respondError(w, r, err)
		return
	}

	d := db.Delivery{
		EndpointID:      endpointID,
		ReceivedAt:      received,
		RemoteAddr:      remoteHost(r),
		Method:          r.Method,
		Path:            r.URL.Path,
		Header:          receivedHeaders(r),
		ContentType:     r.Header.Get("Content-Type"),
		ContentEncoding: strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))),
	}

	// Read the raw body, decoding gzip, never more than the limit plus one byte, and within
	// the memory all requests may hold at once (budget.go). Nothing reads the form or parses
	// JSON before the signature is checked.
	charge := &bodyCharge{b: &s.bodies, addr: d.RemoteAddr}
	defer charge.release()
	wire, body, status, reason := s.readBody(w, r, d.ContentEncoding, charge)
	if reason == reasonBusy {
		s.log.Warn("webhook refused: bodies in memory at their budget", "endpoint", slug,
			"in_use_bytes", s.bodies.inUse(), slogRequest(r))
		s.metrics.delivered(slug, "unstored", db.IngestResult{}, 0)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, ingestReply{Status: "error", Reason: reasonBusy,
			Message: "too many large deliveries at once; retry in a few seconds"})
		return
	}
	d.Body = body
	d.Size = int64(len(body))
	if reason == "payload_too_large" {
		s.reject(w, r, &d, status, reason, tooLargeMessage(r, &d, s.cfg.BodyLimit))
		return
	}
	if reason != "" {
		s.reject(w, r, &d, status, reason, "")
		return
	}

	// The endpoint's active and retiring secrets, from a cache (secret.go). Not knowing them is
	// a storage failure, answered 503 so the sender retries, never a rejection.
	secrets, keys, err := s.verifySecrets(ctx, endpointID, received)
	if err != nil {
		s.ingestFailed(w, r, err)
		return
	}

	// Verify over the decoded bytes; a gzip body signed over its wire bytes is accepted too,
	// and recorded as such.
	res := s.verifier.Verify(r.Header, body, secrets)
	if !res.OK && wire != nil && res.Reason == signature.ReasonMismatch {
		if alt := s.verifier.Verify(r.Header, wire, secrets); alt.OK {
			res = alt
			res.Scheme += "+wire"
		}
	}
	d.Scheme = string(res.Scheme)
	d.SenderTimestamp = res.Timestamp
	if res.HasSkew {
		ms := res.Skew.Milliseconds()
		d.SkewMS = &ms
	}
	if !res.OK {
		s.reject(w, r, &d, http.StatusBadRequest, string(res.Reason), skewMessage(res, s.cfg.Tolerance))
		return
	}
	d.Verdict = db.Verified
	d.SecretLabel = res.Secret.Label
	d.SecretID = res.Secret.ID // its match count is kept in the same commit (db/secret.go)
	d.SecretOld = secretIsOld(keys, res.Secret, received)
	d.BodySHA256 = sha256Hex(body)

	// Commit. Only a returned commit earns the 2xx.
	doc := plaud.Decode(d.Body) // once, for the event's facts and for normalising it
	ev := eventFactsOf(&d, doc)
	s.applyStoreAsNew(r.Header, d.Body, ev) // a replay of plaudhook's own, to be kept apart
	out, err := s.store.CreateDelivery(ctx, &db.Ingest{Delivery: d, Event: ev})
	if err != nil {
		s.ingestFailed(w, r, err)
		return
	}
	s.log.Info("webhook received", "delivery_id", out.DeliveryID, "event_id", out.EventID,
		"endpoint", slug, "duplicate", out.Duplicate, "size", d.Size)
	verdict := "verified"
	if out.Duplicate {
		verdict = "duplicate"
	}
	s.metrics.delivered(slug, verdict, out, time.Since(start))
	d.ID, d.EventID, d.Duplicate = out.DeliveryID, out.EventID, out.Duplicate
	d.Endpoint = slug

	// The quick follow-ups are started before the answer leaves, so that whoever got the 2xx
	// (a test, or a script waiting on Server.Wait) finds them under way; none of them blocks.
	// A new event may have been queued for forwarding in the same commit (forward.go): wake
	// the worker, unless no rule was enabled. Transcripts are read from the stored body in the
	// background (normalise.go): a failure there is logged and `plaudhook reindex` redoes it.
	if out.Forwarding {
		s.wakeForwarder()
	}
	s.normaliseAfterCommit(ctx, d, doc)

	// Send the whole answer now, with its length so the sender need not wait for the end of
	// the response: telling the open pages (which reads and renders the event) is the
	// server's own business and must neither add to the sender's wait nor fail it.
	reply, _ := json.Marshal(ingestReply{Status: "success", EventID: out.EventID,
		Duplicate: out.Duplicate})
	reply = append(reply, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(reply)))
	w.WriteHeader(http.StatusOK)
	w.Write(reply)
	if err := http.NewResponseController(w).Flush(); err != nil {
		s.log.Debug("flush webhook answer", "error", err)
	}
	s.publishDelivery(context.WithoutCancel(ctx), d, out)
}

// readBody returns the decoded body (and the wire bytes when they differ), or a status and
// reason to reject with. Over the limit, the body returned is what was read so far.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, encoding string, charge *bodyCharge) (wire, body []byte, status int, reason string) {
	limit := s.cfg.BodyLimit
	in := charge.wrap(r.Body)

	switch encoding {
	case "", "identity":
		body, err := io.ReadAll(io.LimitReader(in, limit+1))
		if errors.Is(err, errBodyBudget) {
			return nil, nil, http.StatusServiceUnavailable, reasonBusy
		}
		if err != nil {
			return nil, body, http.StatusBadRequest, "unreadable_body"
		}
		if int64(len(body)) > limit {
			return nil, body, http.StatusRequestEntityTooLarge, "payload_too_large"
		}
		return nil, body, 0, ""
	case "gzip", "x-gzip":
		wire, err := io.ReadAll(io.LimitReader(in, limit+1))
		if errors.Is(err, errBodyBudget) {
			return nil, nil, http.StatusServiceUnavailable, reasonBusy
		}
		if err != nil {
			return nil, wire, http.StatusBadRequest, "unreadable_body"
		}
		if int64(len(wire)) > limit {
			return nil, wire, http.StatusRequestEntityTooLarge, "payload_too_large"
		}
		zr, err := gzip.NewReader(bytes.NewReader(wire))
		if err != nil {
			return nil, wire, http.StatusBadRequest, "bad_encoding"
		}
		// Inflate at most limit+1 bytes: a gzip bomb stops there, or at the budget.
		body, err := io.ReadAll(io.LimitReader(charge.wrap(zr), limit+1))
		if errors.Is(err, errBodyBudget) {
			return nil, nil, http.StatusServiceUnavailable, reasonBusy
		}
		if int64(len(body)) > limit {
			return wire, body, http.StatusRequestEntityTooLarge, "payload_too_large"
		}
		if err != nil {
			return nil, wire, http.StatusBadRequest, "bad_encoding"
		}
		return wire, body, 0, ""
	default:
		body, _ := io.ReadAll(io.LimitReader(r.Body, int64(s.cfg.RejectedBodyCap)))
		return nil, body, http.StatusUnsupportedMediaType, "unsupported_encoding"
	}
}

// reasonBusy answers a delivery refused because the bodies of all requests in flight reached
// their memory budget (budget.go): not stored, 503, retried by the sender.
const reasonBusy = "server_busy"

// reject stores a rejected delivery (body capped) and answers the sender with the reason.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, d *db.Delivery, status int, reason, msg string) {
	d.Verdict = db.Rejected
	d.Reason = reason
	d.BodySHA256 = sha256Hex(d.Body)
	if len(d.Body) > s.cfg.RejectedBodyCap {
		d.Body = d.Body[:s.cfg.RejectedBodyCap]
		d.BodyTruncated = true
	}
	if status == 0 {
		status = http.StatusBadRequest
	}
	s.log.Warn("webhook rejected", "reason", reason, "status_code", status, "size", d.Size,
		slogRequest(r))

	out, err := s.store.CreateDelivery(r.Context(), &db.Ingest{Delivery: *d})
	if err != nil {
		// The rejection stands even if it could not be logged; say so in our log only.
		s.log.Error("store rejected delivery", "error", err)
	} else {
		d.ID = out.DeliveryID
		s.publishDelivery(context.WithoutCancel(r.Context()), *d, out)
	}
	s.metrics.delivered(endpointLabel(r), "rejected", out, 0)
	if msg == "" {
		msg = rejectMessage(reason, s.cfg.BodyLimit)
	}
	writeJSON(w, status, ingestReply{Status: "error", Reason: reason, Message: msg})
}

// ingestFailed answers a delivery whose commit failed: 503 with Retry-After, so Plaud retries.
func (s *Server) ingestFailed(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("webhook not stored", "error", err, slogRequest(r))
	s.metrics.delivered(endpointLabel(r), "unstored", db.IngestResult{}, 0)
	w.Header().Set("Retry-After", "30")
	writeJSON(w, http.StatusServiceUnavailable, ingestReply{Status: "error",
		Reason: "storage_unavailable", Message: "the delivery could not be stored; retry later"})
}

// tooLargeMessage says how large a body over the limit was, and fixes d.Size to the whole
// body's length when the request declared it: reading stopped one byte past the limit. A body of
// unknown length (chunked, or gzip decoding) is only known to be larger.
func tooLargeMessage(r *http.Request, d *db.Delivery, limit int64) string {
	plain := d.ContentEncoding == "" || d.ContentEncoding == "identity"
	if plain && r.ContentLength > limit {
		d.Size = r.ContentLength
		return views.TooLargeText(d.Size, limit)
	}
	return views.TooLargeText(0, limit)
}

// skewMessage tells a timestamp too old from one in the future; "" for any other outcome, which
// rejectMessage then words. The reason stays timestamp_out_of_tolerance either way.
func skewMessage(res signature.Result, tolerance time.Duration) string {
	if res.Reason != signature.ReasonTimestampSkew || !res.HasSkew {
		return ""
	}
	tol := int64(tolerance / time.Second)
	skew := int64(res.Skew / time.Second) // this server's clock minus the sender's
	if skew > 0 {
		return fmt.Sprintf("timestamp too old: Plaud-Timestamp is %d s behind this server's "+
			"clock (tolerance %d s)", skew, tol)
	}
	// Read as seconds, a millisecond timestamp lies thousands of years ahead (the skew is
	// clamped, so no count of seconds is worth showing).
	if len(res.Timestamp) >= 13 {
		return "timestamp in the future: Plaud-Timestamp looks like milliseconds; it must be " +
			"Unix seconds"
	}
	return fmt.Sprintf("timestamp in the future: Plaud-Timestamp is %d s ahead of this "+
		"server's clock (tolerance %d s)", -skew, tol)
}

func rejectMessage(reason string, limit int64) string {
	switch reason {
	case "payload_too_large":
		return views.TooLargeText(0, limit)
	case "unsupported_encoding":
		return "Content-Encoding not supported; send identity or gzip"
	case "bad_encoding":
		return "body is not valid gzip"
	case string(signature.ReasonMissing):
		return "no Plaud-Signature header"
	case string(signature.ReasonMalformed):
		return "Plaud-Signature is not a hex HMAC-SHA256 digest"
	case string(signature.ReasonMismatch):
		return "signature does not match the body under any configured secret"
	case string(signature.ReasonTimestampSkew):
		return "Plaud-Timestamp is outside the accepted tolerance"
	case string(signature.ReasonBadTimestamp):
		return "Plaud-Timestamp is not Unix seconds"
	case string(signature.ReasonMissingTime):
		return "sha256= signature without Plaud-Timestamp"
	case string(signature.ReasonNoSecret):
		return "no signing secret is configured for this endpoint"
	case string(signature.ReasonDowngrade):
		return "the signature is valid only as the embedded scheme's signed text " +
			"(timestamp.body) sent without its Plaud-Timestamp: refused as a replay"
	}
	return reason
}

// slugCache keeps the endpoint id of each slug webhooks were sent to, so a delivery costs no
// query to find its endpoint. Like the key cache (secret.go) it is dropped when this process
// changes an endpoint and trusted for keyCacheTTL, so a rename or delete by the CLI in another
// process is seen within that time. Only slugs found are kept: a new endpoint is found at once,
// and unknown slugs cannot grow it. mu guards ids.
type slugCache struct {
	mu     sync.Mutex
	gen    int64
	loaded time.Time // monotonic: when ids was last emptied
	ids    map[string]int64
}

// endpointID returns the id of the endpoint with slug, or an error wrapping db.ErrNotFound.
func (s *Server) endpointID(ctx context.Context, slug string) (int64, error) {
	gen := s.store.SecretsGeneration()
	c := &s.slugs
	c.mu.Lock()
	if c.ids == nil || c.gen != gen || time.Since(c.loaded) >= keyCacheTTL {
		c.ids, c.gen, c.loaded = map[string]int64{}, gen, time.Now()
	}
	id, ok := c.ids[slug]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	id, err := s.store.EndpointIDBySlug(ctx, slug)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if c.gen == gen {
		c.ids[slug] = id
	}
	c.mu.Unlock()
	return id, nil
}

// eventFacts reads what lists and dedupe need from a verified body.
func eventFacts(d *db.Delivery) *db.Event { return eventFactsOf(d, plaud.Decode(d.Body)) }

// eventFactsOf is eventFacts with the body already decoded.
func eventFactsOf(d *db.Delivery, doc plaud.Doc) *db.Event {
	env := doc.Envelope()
	key := "sha256:" + d.BodySHA256
	if env.EnvelopeID != "" {
		key = "id:" + env.EnvelopeID
	}
	return &db.Event{
		DedupeKey:       key,
		EventType:       env.EventType,
		EnvelopeID:      env.EnvelopeID,
		FileID:          env.FileID,
		TranscriptionID: env.TranscriptionID,
		DeviceID:        env.DeviceID,
		JSON:            env.JSON,
		Size:            d.Size,
		Summary:         doc.Summary(d.Body, 200),
	}
}

// receivedHeaders copies the request headers as received, with the Host line that net/http
// keeps apart.
func receivedHeaders(r *http.Request) http.Header {
	h := r.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h["Host"] = []string{r.Host}
	return h
}

// remoteHost is the client's IP address: the connection's peer, or the client named by trusted
// proxies (clientAddr in proxy.go).
func remoteHost(r *http.Request) string {
	if c, ok := r.Context().Value(clientKey{}).(string); ok {
		return c
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// endpointLabel is the endpoint slug of a webhook request, for metrics.
func endpointLabel(r *http.Request) string {
	if slug := r.PathValue("slug"); slug != "" {
		return slug
	}
	return "default"
}
