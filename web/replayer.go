package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web/live"
	"github.com/plaudhook/plaudhook/web/replay"
	"github.com/plaudhook/plaudhook/web/signature"
)

// The outbound side: replays of one event (event page, API, CLI), forwarding (forward.go) and
// bulk replays (bulk.go) all prepare their request here, send it through the SSRF-guarded
// web/replay client, and record the attempt.

// ReplayMarkerHeader names the replayed event on every outbound request, so the receiving app
// (and plaudhook itself, when it receives its own replay) can tell a replay from Plaud.
const ReplayMarkerHeader = "X-Plaudhook-Replay-Of"

// hiddenValue replaces the value of a target's extra header wherever an attempt is stored or
// shown: those headers are secrets (an Authorization header, say).
const hiddenValue = "(hidden)"

// policySetting is the settings row that holds the outbound address policy.
const policySetting = "replay_policy"

// replayStore is what replaying needs from storage.
type replayStore interface {
	FindTargetByID(ctx context.Context, id int64) (db.Target, error)
	FindTargetByName(ctx context.Context, name string) (db.Target, error)
	FindTargets(ctx context.Context) ([]db.Target, error)
	FindTargetKeys(ctx context.Context, id int64) (db.TargetKeys, error)
	CreateTarget(ctx context.Context, in db.TargetInput) (db.Target, error)
	UpdateTarget(ctx context.Context, id int64, in db.TargetInput) error
	DeleteTarget(ctx context.Context, id int64) error
	CreateAttempt(ctx context.Context, a *db.Attempt) error
	FindAttemptByID(ctx context.Context, id int64) (db.Attempt, error)
	FindAttempts(ctx context.Context, f db.AttemptFilter) ([]db.Attempt, error)
	FindSetting(ctx context.Context, name string) ([]byte, error)
	UpdateSetting(ctx context.Context, name string, value []byte) error
}

// replayState is the server's outbound machinery. Its zero value is ready to use.
type replayState struct {
	mu     sync.Mutex
	client *replay.Client // mu guards client; nil until first use, rebuilt when the policy changes

	topics topics     // live attempt and progress messages, per event page and bulk job
	fwd    forwarder  // the forwarding worker (forward.go)
	bulk   bulkRunner // running bulk replays (bulk.go)

	newKeyOnce sync.Once // makes newKey, the key of StoreAsNewHeader (storeasnew.go)
	newKey     []byte
}

// PolicyConfig is the outbound address policy as stored and edited: see replay.ParsePolicy.
type PolicyConfig struct {
	Mode  string   `json:"mode"` // "default" or "public_only"
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
}

// replayPolicy reads the stored policy; the default policy when none is stored.
func (s *Server) replayPolicy(ctx context.Context) (PolicyConfig, replay.Policy, error) {
	var pc PolicyConfig
	raw, err := s.store.FindSetting(ctx, policySetting)
	if errors.Is(err, db.ErrNotFound) {
		pc.Mode = string(replay.PolicyDefault)
		return pc, replay.Policy{Mode: replay.PolicyDefault}, nil
	}
	if err != nil {
		return pc, replay.Policy{}, err
	}
	if err := json.Unmarshal(raw, &pc); err != nil {
		return pc, replay.Policy{}, fmt.Errorf("decode replay policy: %w", err)
	}
	p, err := replay.ParsePolicy(pc.Mode, pc.Allow, pc.Deny)
	if err != nil {
		// A stored policy that no longer parses fails closed.
		s.log.Error("stored replay policy is invalid; refusing private addresses", "error", err)
		return pc, replay.Policy{Mode: replay.PolicyPublicOnly}, nil
	}
	return pc, p, nil
}

// replayClient returns the outbound client for the current policy, building it on first use.
func (s *Server) replayClient(ctx context.Context) (*replay.Client, error) {
	s.rp.mu.Lock()
	defer s.rp.mu.Unlock()
	if s.rp.client != nil {
		return s.rp.client, nil
	}
	_, p, err := s.replayPolicy(ctx)
	if err != nil {
		return nil, err
	}
	s.rp.client = s.newReplayClient(p)
	return s.rp.client, nil
}

// newReplayClient builds a client for policy p with the configured timeout and resolver.
func (s *Server) newReplayClient(p replay.Policy) *replay.Client {
	return &replay.Client{Policy: p, Timeout: s.cfg.ReplayTimeout, UserAgent: s.userAgent(),
		Resolver: s.cfg.ReplayResolver}
}

// UpdateReplayPolicy validates and stores the outbound address policy and switches to it at
// once. It returns a *db.ValidationError for a bad mode or address.
func (s *Server) UpdateReplayPolicy(ctx context.Context, pc PolicyConfig) error {
	p, err := replay.ParsePolicy(pc.Mode, pc.Allow, pc.Deny)
	if err != nil {
		return &db.ValidationError{Message: "Address policy: " + err.Error()}
	}
	pc.Mode = string(p.Mode)
	raw, err := json.Marshal(pc)
	if err != nil {
		return fmt.Errorf("encode replay policy: %w", err)
	}
	if err := s.store.UpdateSetting(ctx, policySetting, raw); err != nil {
		return err
	}

	// Swap the client; attempts in flight finish on the old one.
	s.rp.mu.Lock()
	old := s.rp.client
	s.rp.client = s.newReplayClient(p)
	s.rp.mu.Unlock()
	if old != nil {
		old.CloseIdleConnections()
	}
	return nil
}

func (s *Server) userAgent() string {
	v := s.cfg.Version
	if v == "" {
		v = "dev"
	}
	return "plaudhook/" + v
}

// Actor names who asks for an outbound request, for the attempt log and the audit log.
type Actor struct {
	Name       string // username, or "cli" / "system"
	ID         int64  // users.id, 0 when no user
	RemoteAddr string
}

// actorOf is the signed-in user of r as an Actor.
func actorOf(r *http.Request) Actor {
	a := Actor{Name: "anonymous", RemoteAddr: remoteHost(r)}
	if u, ok := userFrom(r.Context()); ok {
		a.Name, a.ID = u.Username, u.ID
	}
	return a
}

// ReplayRequest says which stored event to send where, and how. Target or URL is required.
type ReplayRequest struct {
	EventID int64
	Target  string        // a saved target's name or id
	URL     string        // a one-off URL, when Target is empty
	Mode    db.ReplayMode // "" means the target's default mode (original for a one-off URL)
	// Scheme signs resign and edited requests: "devguide" or "embedded"; "" means the target's
	// scheme, else the scheme the event arrived with.
	Scheme string
	// Secret signs resign and edited requests: "target" for the target's own secret, or the
	// label of one of the event's endpoint secrets; "" means the target's secret when it has
	// one, else the secret that verified the event.
	Secret string
	Body   []byte // edited mode: the body to send
	// StoreAsNew asks this plaudhook, when it is the receiver, to store the replay as a new
	// event rather than as a duplicate delivery (StoreAsNewHeader).
	StoreAsNew bool
	Source     string // "ui", "api" or "cli"
}

// errReplayCancelled means an attempt was cut short by shutdown: it is not recorded, and a
// forward or bulk replay sends it again after the restart.
var errReplayCancelled = errors.New("replay cancelled")

// Replay sends one stored event as rq asks, records the attempt, shows it live on the event's
// page and audits it. It returns the attempt (also when the target failed or the policy refused
// it), a *db.ValidationError for a request that cannot be sent (no such target, bad mode, body
// not JSON, no secret to sign with), or db.ErrNotFound for an unknown event.
func (s *Server) Replay(ctx context.Context, who Actor, rq ReplayRequest) (db.Attempt, error) {
	// Load the event and the delivery that carries its body and headers.
	ev, first, err := s.eventWithBody(ctx, rq.EventID)
	if err != nil {
		return db.Attempt{}, err
	}

	// Resolve the destination.
	spec := sendSpec{url: strings.TrimSpace(rq.URL), mode: rq.Mode, scheme: rq.Scheme,
		secret: rq.Secret, body: rq.Body, storeAsNew: rq.StoreAsNew}
	switch {
	case strings.TrimSpace(rq.Target) != "" && spec.url != "":
		return db.Attempt{}, &db.ValidationError{Message: "Choose a target or type a URL, not both."}
	case strings.TrimSpace(rq.Target) != "":
		t, err := s.findTarget(ctx, strings.TrimSpace(rq.Target))
		if err != nil {
			return db.Attempt{}, err
		}
		spec.target = &t
	case spec.url == "":
		return db.Attempt{}, &db.ValidationError{Message: "Choose a target or type a URL."}
	}

	// Prepare, send, record.
	out, err := s.prepareReplay(ctx, ev, first, spec)
	if err != nil {
		return db.Attempt{}, err
	}
	out.attempt.Source, out.attempt.Actor, out.attempt.ActorID = rq.Source, who.Name, who.ID
	a := s.sendReplay(ctx, out)
	if err := s.store.CreateAttempt(ctx, &a); err != nil {
		return a, err
	}
	s.attemptRecorded(ctx, a, who)

	// Every manual replay is audited with its result (a refusal was, as replay.refused).
	if a.ErrorKind != string(replay.KindRefusedByPolicy) {
		s.auditAs(ctx, who, "replay.send", fmt.Sprintf("event %d", a.EventID),
			fmt.Sprintf("to %s (%s): %s", attemptDest(a), a.Mode, attemptResult(a)))
	}
	return a, nil
}

// eventWithBody loads an event and the delivery whose body and headers it keeps.
func (s *Server) eventWithBody(ctx context.Context, id int64) (db.Event, db.Delivery, error) {
	ev, err := s.store.FindEventByID(ctx, id)
	if err != nil {
		return ev, db.Delivery{}, err
	}
	first, err := s.store.FindDeliveryByID(ctx, ev.BodyDeliveryID)
	return ev, first, err
}

// findTarget finds a target by id or by name; an unknown one is a validation error.
func (s *Server) findTarget(ctx context.Context, ref string) (db.Target, error) {
	var t db.Target
	var err error
	if id, perr := strconv.ParseInt(ref, 10, 64); perr == nil {
		t, err = s.store.FindTargetByID(ctx, id)
	} else {
		t, err = s.store.FindTargetByName(ctx, ref)
	}
	if errors.Is(err, db.ErrNotFound) {
		return t, &db.ValidationError{Message: fmt.Sprintf("There is no target %q.", ref)}
	}
	return t, err
}

// sendSpec is what to send an event with: a saved target or a URL, and the signing choices.
type sendSpec struct {
	target *db.Target // nil for a one-off URL
	url    string
	mode   db.ReplayMode
	scheme string
	secret string
	body   []byte
	// storeAsNew adds StoreAsNewHeader, for a replay into this plaudhook.
	storeAsNew bool
}

// outbound is a prepared request and the attempt record that describes it.
type outbound struct {
	req     replay.Request
	hidden  []string // names of the target's extra headers, whose values are never stored
	attempt db.Attempt
}

// prepareReplay builds the request for ev as spec says. Modes:
//   - original: the stored bytes and headers, signature headers included, unchanged;
//   - resign: the stored bytes, every inbound signature header removed, a fresh signature;
//   - edited: spec.body (JSON checked when the event is JSON), freshly signed.
//
// Every mode sets User-Agent to plaudhook's and adds ReplayMarkerHeader. Transport headers
// (Host, Content-Length, Connection...) are left to net/http, and Content-Encoding is dropped
// because the stored body is the decoded one.
func (s *Server) prepareReplay(ctx context.Context, ev db.Event, first db.Delivery,
	spec sendSpec) (outbound, error) {
	var o outbound
	a := &o.attempt
	a.EventID, a.StartedAt = ev.ID, s.now()

	// Destination and mode.
	url := spec.url
	if t := spec.target; t != nil {
		url, a.TargetID, a.TargetName = t.URL, t.ID, t.Name
		o.req.FollowRedirects = t.FollowRedirects
		if spec.mode == "" {
			spec.mode = t.DefaultMode
		}
	}
	if spec.mode == "" {
		spec.mode = db.ModeOriginal
	}
	if !spec.mode.Valid() {
		return o, &db.ValidationError{Message: "The mode must be original, resign or edited."}
	}
	if _, err := replay.CheckURL(url); err != nil {
		var re *replay.RefusedError
		if !errors.As(err, &re) {
			return o, &db.ValidationError{Message: "That is not a valid URL."}
		}
		// A refused scheme is refused by the client below, recorded and audited like any
		// other policy refusal.
	}
	a.URL, a.Mode = url, spec.mode

	// The target's own secret and extra headers, opened only now.
	var keys db.TargetKeys
	if spec.target != nil && (spec.target.HasSecret || len(spec.target.HeaderNames) > 0) {
		var err error
		if keys, err = s.store.FindTargetKeys(ctx, spec.target.ID); err != nil {
			return o, err
		}
	}

	// Body and headers by mode.
	body := first.Body
	h := outboundHeader(first.Header)
	if spec.mode == db.ModeEdited {
		var err error
		if body, err = s.checkEditedBody(ev, first, spec.body); err != nil {
			return o, err
		}
	}
	if spec.mode != db.ModeOriginal {
		stripSignatures(h)
		scheme, err := s.resignScheme(spec, first)
		if err != nil {
			return o, err
		}
		label, key, err := s.resignSecret(ctx, spec, ev, first, keys)
		if err != nil {
			return o, err
		}
		for k, v := range signature.Sign(scheme, key, s.now(), body) {
			h[k] = v
		}
		a.Scheme, a.SecretLabel = string(scheme), label
	}

	// The target's extra headers win over stored ones; then plaudhook's own.
	for k, v := range keys.Headers {
		h.Del(k)
		h[http.CanonicalHeaderKey(k)] = v
		o.hidden = append(o.hidden, k)
	}
	h.Set("User-Agent", s.userAgent())
	h.Set(ReplayMarkerHeader, strconv.FormatInt(ev.ID, 10))
	if spec.storeAsNew {
		h.Set(StoreAsNewHeader, s.storeAsNewValue(body))
	}

	o.req.URL, o.req.Header, o.req.Body = url, h, body
	a.RequestSHA256, a.RequestSize = sha256Hex(body), int64(len(body))
	if spec.mode == db.ModeEdited {
		a.RequestBody = body
	}
	a.RequestHeader = redactHeader(h, o.hidden)
	return o, nil
}

// sendReplay sends a prepared request and returns its attempt, filled with the outcome. The
// attempt is returned as is (not recorded) when ctx ended mid-way.
func (s *Server) sendReplay(ctx context.Context, o outbound) db.Attempt {
	a := o.attempt
	c, err := s.replayClient(ctx)
	if err != nil {
		a.ErrorKind, a.Error = string(replay.KindOther), "the address policy could not be read"
		s.log.Error("read replay policy", "error", err)
		return a
	}
	a.StartedAt = s.now()
	res := c.Send(ctx, o.req)
	a.Duration = res.Duration
	a.StatusCode = res.StatusCode
	a.ResponseHeader = res.ResponseHeader
	a.ResponseBody = res.ResponseBody
	a.ResponseTruncated = res.Truncated
	a.ErrorKind, a.Error = string(res.ErrorKind), res.Error
	if res.RequestHeader != nil {
		a.RequestHeader = redactHeader(res.RequestHeader, o.hidden)
	}
	return a
}

// attemptRecorded is everything that follows a stored attempt: the live row on the event's
// page, the log line, metrics, and an audit entry when the policy refused it.
func (s *Server) attemptRecorded(ctx context.Context, a db.Attempt, who Actor) {
	s.publishAttempt(ctx, a)
	switch {
	case a.OK():
		s.countReplayAttempt("ok")
	case a.ErrorKind == string(replay.KindRefusedByPolicy):
		s.countReplayAttempt("refused")
	default:
		s.countReplayAttempt("failed")
	}

	switch {
	case a.ErrorKind == string(replay.KindRefusedByPolicy):
		s.log.Warn("replay refused by the address policy", "event_id", a.EventID,
			"attempt_id", a.ID, "error", a.Error)
		s.auditAs(ctx, who, "replay.refused", attemptDest(a),
			fmt.Sprintf("event %d: %s", a.EventID, a.Error))
	case a.ErrorKind != "" || a.StatusCode >= 500:
		s.log.Warn("replay target failed", "event_id", a.EventID, "attempt_id", a.ID,
			"status_code", a.StatusCode, "error_kind", a.ErrorKind,
			"duration_ms", a.Duration.Milliseconds())
	case a.Source == "forward" || a.Source == "bulk":
		// Background work can send thousands: successes are detail.
		s.log.Debug("replay sent", "event_id", a.EventID, "attempt_id", a.ID,
			"source", a.Source, "status_code", a.StatusCode)
	default:
		s.log.Info("replay sent", "event_id", a.EventID, "attempt_id", a.ID,
			"status_code", a.StatusCode, "duration_ms", a.Duration.Milliseconds())
	}
}

// auditAs records an action of who; a failure to record is logged only.
func (s *Server) auditAs(ctx context.Context, who Actor, action, target, detail string) {
	e := db.AuditEntry{Actor: who.Name, ActorID: who.ID, Action: action, Target: target,
		Detail: detail, RemoteAddr: who.RemoteAddr}
	if err := s.store.CreateAuditEntry(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("record audit entry", "action", action, "error", err)
	}
}

// checkEditedBody validates an edited body: not empty, within the body limit, and valid JSON
// when the event's body is JSON.
func (s *Server) checkEditedBody(ev db.Event, first db.Delivery, body []byte) ([]byte, error) {
	if len(body) == 0 {
		return nil, &db.ValidationError{Message: "The edited body is empty."}
	}
	if int64(len(body)) > s.cfg.BodyLimit {
		return nil, &db.ValidationError{Message: "The edited body is larger than the body limit."}
	}
	if !ev.JSON && !strings.Contains(strings.ToLower(first.ContentType), "json") {
		return body, nil
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		msg := err.Error()
		var se *json.SyntaxError
		if errors.As(err, &se) {
			msg = fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
		}
		return nil, &db.ValidationError{Message: "The edited body is not valid JSON: " + msg}
	}
	return body, nil
}

// resignScheme picks the signing scheme: asked for, else the target's, else the event's own.
func (s *Server) resignScheme(spec sendSpec, first db.Delivery) (signature.Scheme, error) {
	scheme := spec.scheme
	if scheme == "" && spec.target != nil {
		scheme = spec.target.Scheme
	}
	if scheme == "" {
		scheme, _, _ = strings.Cut(first.Scheme, "+") // "devguide+wire" signed the gzip bytes
	}
	switch signature.Scheme(scheme) {
	case signature.SchemeDevguide, signature.SchemeEmbedded:
		return signature.Scheme(scheme), nil
	case "":
		return signature.SchemeDevguide, nil
	}
	return "", &db.ValidationError{Message: "The scheme must be devguide or embedded."}
}

// resignSecret picks the key that signs: the target's own secret, or one of the event's endpoint
// secrets by label. It returns the label recorded with the attempt, never the value.
func (s *Server) resignSecret(ctx context.Context, spec sendSpec, ev db.Event, first db.Delivery,
	keys db.TargetKeys) (string, []byte, error) {
	// The target's own secret, when asked for or by default.
	if spec.secret == "target" || (spec.secret == "" && keys.Secret != nil) {
		if keys.Secret == nil {
			return "", nil, &db.ValidationError{
				Message: "This target has no secret of its own; choose an endpoint secret."}
		}
		return "target " + spec.target.Name, keys.Secret, nil
	}

	// An endpoint secret in use (active or retiring): the one named, else the one that verified
	// the event, else the newest.
	secrets, _, err := s.verifySecrets(ctx, ev.EndpointID, s.now())
	if err != nil {
		return "", nil, err
	}
	want := spec.secret
	if want == "" {
		want = first.SecretLabel
	}
	for _, sec := range secrets {
		if sec.Label == want {
			return sec.Label, sec.Key, nil
		}
	}
	if spec.secret == "" && len(secrets) > 0 {
		return secrets[0].Label, secrets[0].Key, nil
	}
	if spec.secret != "" {
		return "", nil, &db.ValidationError{Message: fmt.Sprintf(
			"The endpoint %q has no secret labelled %q.", ev.Endpoint, spec.secret)}
	}
	return "", nil, &db.ValidationError{Message: "There is no secret to sign with: " +
		"give the target a secret or add one to the endpoint."}
}

// transportHeaders are owned by net/http or describe the inbound connection; they are never
// copied onto an outbound request.
var transportHeaders = []string{"Host", "Content-Length", "Transfer-Encoding", "Connection",
	"Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Upgrade", "Content-Encoding"}

// outboundHeader copies the stored headers of a delivery without the transport ones.
func outboundHeader(stored http.Header) http.Header {
	h := stored.Clone()
	if h == nil {
		h = http.Header{}
	}
	for _, k := range transportHeaders {
		h.Del(k)
	}
	for k := range h {
		if strings.EqualFold(k, ReplayMarkerHeader) || strings.EqualFold(k, StoreAsNewHeader) ||
			strings.EqualFold(k, "User-Agent") {
			delete(h, k)
		}
	}
	return h
}

// stripSignatures removes every inbound signature: Plaud's headers and any other header whose
// name says signature, so a re-signed request never carries the original one (C18).
func stripSignatures(h http.Header) {
	for k := range h {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "signature") || lk == strings.ToLower(signature.HeaderTimestamp) {
			delete(h, k)
		}
	}
}

// redactHeader copies h with the values of the hidden headers replaced.
func redactHeader(h http.Header, hidden []string) http.Header {
	out := h.Clone()
	for _, k := range hidden {
		for hk := range out {
			if strings.EqualFold(hk, k) {
				out[hk] = []string{hiddenValue}
			}
		}
	}
	return out
}

// attemptDest names where an attempt went: its target, or its URL.
func attemptDest(a db.Attempt) string {
	if a.TargetName != "" {
		return "target " + a.TargetName
	}
	return a.URL
}

// attemptResult says in a few words how an attempt ended.
func attemptResult(a db.Attempt) string {
	if a.ErrorKind != "" {
		return a.ErrorKind + ": " + a.Error
	}
	return "HTTP " + strconv.Itoa(a.StatusCode)
}

// topics fans live replay messages out by topic ("event 12", "bulk 3"), one hub per topic that
// has subscribers, so an event page only gets the attempts of its own event.
type topics struct {
	mu   sync.Mutex
	hubs map[string]*live.Hub // mu guards hubs
}

// subscribe opens a stream on topic; the caller must call unsubscribe.
func (t *topics) subscribe(topic string) *live.Subscription {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.hubs == nil {
		t.hubs = map[string]*live.Hub{}
	}
	h := t.hubs[topic]
	if h == nil {
		h = live.NewHub(32)
		t.hubs[topic] = h
	}
	return h.Subscribe()
}

// unsubscribe closes sub and forgets the topic's hub once nobody listens.
func (t *topics) unsubscribe(topic string, sub *live.Subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sub.Cancel()
	if h := t.hubs[topic]; h != nil && h.Len() == 0 {
		delete(t.hubs, topic)
	}
}

// publish hands m to the topic's streams, if any; it never blocks.
func (t *topics) publish(topic string, m live.Message) {
	t.mu.Lock()
	h := t.hubs[topic]
	t.mu.Unlock()
	if h != nil {
		h.Publish(m)
	}
}

func eventTopic(id int64) string { return "event " + strconv.FormatInt(id, 10) }
