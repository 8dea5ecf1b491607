package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
	"github.com/plaudhook/plaudhook/web/live"
	"github.com/plaudhook/plaudhook/web/plaud"
	"github.com/plaudhook/plaudhook/web/replay"
)

// handleEventReplay is POST /events/{id}/replay, the event page's replay form. Without
// JavaScript it redirects back to the event page, where the attempt heads the log; with htmx it
// answers a short notice, and the attempt's row arrives over the page's stream.
func (s *Server) handleEventReplay(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}

	// A form-encoded edited body can take three bytes per byte.
	r.Body = http.MaxBytesReader(w, r.Body, 3*s.cfg.BodyLimit+64<<10)
	if err := r.ParseForm(); err != nil {
		s.respondError(w, r, badRequest("The form could not be read (too large?)."))
		return
	}

	// Browsers send a textarea's line breaks as CR LF; the body typed had LF.
	body := strings.ReplaceAll(r.PostFormValue("body"), "\r\n", "\n")
	rq := ReplayRequest{EventID: id, Target: r.PostFormValue("target"),
		URL: r.PostFormValue("url"), Mode: db.ReplayMode(r.PostFormValue("mode")),
		Scheme: r.PostFormValue("scheme"), Secret: r.PostFormValue("secret"),
		StoreAsNew: r.PostFormValue("store_as_new") != "", Source: "ui"}
	if rq.Mode == db.ModeEdited {
		rq.Body = []byte(body)
	}

	// The replay outlives a browser that gives up waiting: it is recorded either way.
	a, err := s.Replay(context.WithoutCancel(r.Context()), actorOf(r), rq)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	if r.Header.Get("HX-Request") == "true" {
		s.render(w, r, views.ReplayResult(a))
		return
	}
	http.Redirect(w, r, fmt.Sprintf("%s#%s", views.EventURL(id), views.AttemptRowID(a.ID)),
		http.StatusSeeOther)
}

// apiReplayRequest is the body of POST /api/v1/events/{id}/replay.
type apiReplayRequest struct {
	Target    string `json:"target"`     // a saved target's name or id
	TargetURL string `json:"target_url"` // or a one-off URL
	Mode      string `json:"mode"`       // original, resign or edited
	Scheme    string `json:"scheme"`     // devguide or embedded (resign, edited)
	Secret    string `json:"secret"`     // "target" or an endpoint secret's label
	Body      string `json:"body"`       // the edited body (edited)
	// StoreAsNew: when the target is this plaudhook, store the replay as a new event.
	StoreAsNew bool `json:"store_as_new"`
}

// apiAttempt is an attempt as the API shows it. Signature values are cut to 8 hex digits and a
// target's extra header values are hidden, as in the UI.
type apiAttempt struct {
	ID                int64               `json:"id"`
	EventID           int64               `json:"event_id"`
	Target            string              `json:"target,omitempty"`
	URL               string              `json:"url"`
	Mode              string              `json:"mode"`
	Scheme            string              `json:"scheme,omitempty"`
	SecretLabel       string              `json:"secret_label,omitempty"`
	Source            string              `json:"source"`
	Actor             string              `json:"actor"`
	StartedAt         time.Time           `json:"started_at"`
	DurationMS        float64             `json:"duration_ms"`
	OK                bool                `json:"ok"`
	Outcome           string              `json:"outcome"`
	StatusCode        int                 `json:"status_code"`
	ErrorKind         string              `json:"error_kind,omitempty"`
	Error             string              `json:"error,omitempty"`
	RequestHeaders    map[string][]string `json:"request_headers"`
	RequestSHA256     string              `json:"request_sha256"`
	RequestSize       int64               `json:"request_size"`
	ResponseHeaders   map[string][]string `json:"response_headers"`
	ResponseBody      string              `json:"response_body"`
	ResponseTruncated bool                `json:"response_truncated"`
}

func toAPIAttempt(a db.Attempt) apiAttempt {
	outcome, _ := views.AttemptOutcome(a)
	body, _ := views.BodyText(a.ResponseBody)
	return apiAttempt{ID: a.ID, EventID: a.EventID, Target: a.TargetName, URL: a.URL,
		Mode: string(a.Mode), Scheme: a.Scheme, SecretLabel: a.SecretLabel, Source: a.Source,
		Actor: a.Actor, StartedAt: a.StartedAt,
		DurationMS: float64(a.Duration.Microseconds()) / 1000, OK: a.OK(), Outcome: outcome,
		StatusCode: a.StatusCode, ErrorKind: a.ErrorKind, Error: a.Error,
		RequestHeaders: maskedHeader(a.RequestHeader), RequestSHA256: a.RequestSHA256,
		RequestSize: a.RequestSize, ResponseHeaders: a.ResponseHeader, ResponseBody: body,
		ResponseTruncated: a.ResponseTruncated}
}

// maskedHeader copies h with signature values cut to their first 8 hex digits.
func maskedHeader(h http.Header) map[string][]string {
	out := map[string][]string{}
	for k, vs := range h {
		for _, v := range vs {
			out[k] = append(out[k], views.MaskHeader(k, v))
		}
	}
	return out
}

// handleAPIEventReplay is POST /api/v1/events/{id}/replay: replay one event and answer the
// attempt, 201 when it was sent (whatever the target answered) and 403 with the attempt when the
// address policy refused it.
func (s *Server) handleAPIEventReplay(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}

	// Read the request, strictly: a misspelled field is an error, not a silent default.
	var in apiReplayRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 2*s.cfg.BodyLimit+64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		s.respondError(w, r, badRequest("The body must be a JSON object: "+err.Error()))
		return
	}
	rq := ReplayRequest{EventID: id, Target: in.Target, URL: in.TargetURL,
		Mode: db.ReplayMode(in.Mode), Scheme: in.Scheme, Secret: in.Secret,
		StoreAsNew: in.StoreAsNew, Source: "api"}
	if in.Body != "" {
		rq.Body = []byte(in.Body)
	}

	a, err := s.Replay(context.WithoutCancel(r.Context()), actorOf(r), rq)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	if a.ErrorKind == string(replay.KindRefusedByPolicy) {
		writeJSON(w, http.StatusForbidden, map[string]any{"error": a.Error,
			"code": "refused_by_policy", "attempt": toAPIAttempt(a)})
		return
	}
	writeJSON(w, http.StatusCreated, toAPIAttempt(a))
}

// handleAPIEventAttempts is GET /api/v1/events/{id}/attempts: an event's attempts, newest first.
func (s *Server) handleAPIEventAttempts(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	if _, err := s.store.FindEventByID(r.Context(), id); err != nil {
		s.respondError(w, r, err)
		return
	}
	as, err := s.store.FindAttempts(r.Context(), db.AttemptFilter{EventID: id, Limit: 500})
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	out := make([]apiAttempt, 0, len(as))
	for _, a := range as {
		out = append(out, toAPIAttempt(a))
	}
	writeJSON(w, http.StatusOK, map[string]any{"attempts": out})
}

// handleAttemptView shows one attempt: what was sent and what came back.
func (s *Server) handleAttemptView(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	a, err := s.store.FindAttemptByID(r.Context(), id)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	ev, first, err := s.eventWithBody(r.Context(), a.EventID)
	if err != nil {
		s.respondError(w, r, err)
		return
	}

	// Operators see the request as a curl command, its signature in full.
	props := views.AttemptPageProps{Attempt: a, Event: ev}
	if canReplay(r) {
		body := first.Body
		if a.Mode == db.ModeEdited {
			body = a.RequestBody
		}
		props.Curl = views.CurlCommand(a.URL, a.RequestHeader, body,
			fmt.Sprintf("event-%d.body", ev.ID))
	}
	s.render(w, r, views.AttemptPage(s.page(r, fmt.Sprintf("Attempt #%d", a.ID), "events"), props))
}

// canReplay reports whether the signed-in user may replay (operators and admins).
func canReplay(r *http.Request) bool {
	u, ok := userFrom(r.Context())
	return ok && u.Role.Allows(db.RoleOperator)
}

// eventReplayProps builds the replay part of an event's page: the attempt log for everyone;
// the form, the targets, the secret labels and copy-as-curl for operators.
func (s *Server) eventReplayProps(r *http.Request, e db.Event, first db.Delivery) (views.EventReplayProps, error) {
	ctx := r.Context()
	props := views.EventReplayProps{EventID: e.ID, Scheme: first.Scheme}
	var err error
	if props.Attempts, err = s.store.FindAttempts(ctx, db.AttemptFilter{EventID: e.ID}); err != nil {
		return props, err
	}
	if !canReplay(r) {
		return props, nil
	}

	props.CanReplay = true
	if props.Targets, err = s.store.FindTargets(ctx); err != nil {
		return props, err
	}
	secrets, _, err := s.verifySecrets(ctx, e.EndpointID, s.now())
	if err != nil {
		return props, err
	}
	for _, sec := range secrets {
		props.Secrets = append(props.Secrets, sec.Label)
	}

	// The edited mode starts from the pretty body when there is one.
	props.EditBody, _ = views.BodyText(first.Body)
	if pretty, ok := plaud.Pretty(first.Body); ok && pretty != "" {
		props.EditBody = pretty
	}

	// Copy as curl: the stored delivery, aimed at the endpoint it came in on.
	props.Curl = views.CurlCommand(requestOrigin(r)+first.Path, outboundHeader(first.Header),
		first.Body, fmt.Sprintf("event-%d.body", e.ID))
	return props, nil
}

// requestOrigin is the scheme and host this request was made to, for commands that point back
// at this server.
func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// publishAttempt renders an attempt's row once and sends it to the streams of its event's page.
func (s *Server) publishAttempt(ctx context.Context, a db.Attempt) {
	var buf bytes.Buffer
	if err := views.AttemptRow(a).Render(ctx, &buf); err != nil {
		s.log.Warn("render live attempt", "attempt_id", a.ID, "error", err)
		return
	}
	s.rp.topics.publish(eventTopic(a.EventID), live.Message{ID: a.ID, Name: "attempt-new",
		Data: buf.String()})
}

// handleAttemptStream is GET /events/{id}/attempts/stream: server-sent events for the attempts
// of one event, so its page shows each replay the moment it is recorded. A browser that
// reconnects with Last-Event-ID (an attempt id) first gets the attempts it missed.
func (s *Server) handleAttemptStream(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	if _, err := s.store.FindEventByID(ctx, id); err != nil {
		s.respondError(w, r, err)
		return
	}

	// Subscribe before reading the backlog, so nothing falls between the two.
	topic := eventTopic(id)
	sub := s.rp.topics.subscribe(topic)
	defer s.rp.topics.unsubscribe(topic, sub)
	rc := s.startStream(w, r)
	last, _ := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64)
	if last > 0 {
		missed, err := s.store.FindAttempts(ctx, db.AttemptFilter{EventID: id, After: last, Limit: 100})
		if err != nil {
			return
		}
		for _, a := range missed {
			var buf bytes.Buffer
			views.AttemptRow(a).Render(ctx, &buf)
			// Each under the stream's write deadline: a client that stopped reading is let go.
			if err := s.writeMessage(w, rc, live.Message{ID: a.ID, Name: "attempt-new",
				Data: buf.String()}); err != nil {
				return
			}
			last = a.ID
		}
	}
	if err := s.writeChunk(w, rc, nil); err != nil {
		return
	}
	s.pumpStream(w, r, rc, sub, last)
}

// startStream clears the write deadline for this response, caps its connection's send buffer
// (capSendBuffer) and sends the event-stream headers.
func (s *Server) startStream(w http.ResponseWriter, r *http.Request) *http.ResponseController {
	capSendBuffer(r)
	rc := http.NewResponseController(w)
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		s.log.Debug("stream write deadline", "error", err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 2000\n\n")
	return rc
}

// pumpStream writes sub's messages (skipping ids up to last) and heartbeats until the client
// leaves, the server shuts down, the stream falls behind or the credentials stop working. A
// stream the topic's ring left behind ends; its browser reconnects with Last-Event-ID and gets
// what it missed from the database.
func (s *Server) pumpStream(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, sub *live.Subscription, last int64) {
	ctx := r.Context()
	a, _ := ctx.Value(authKey{}).(*auth)
	tick := time.NewTicker(s.cfg.Heartbeat)
	defer tick.Stop()
	var items []*live.Item
	var out []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.streams.Done():
			return
		case <-sub.Ready():
			items = items[:0]
			lost := sub.Take().Newest(func(it *live.Item) bool {
				items = append(items, it)
				return true
			})
			if lost > 0 {
				return
			}
			out = out[:0]
			for i := len(items) - 1; i >= 0; i-- {
				if id := items[i].Head().ID; id <= last && id != 0 {
					continue
				}
				if frame, ok := items[i].Frame(); ok {
					out = append(out, frame...)
				}
			}
			clear(items)
			if len(out) == 0 {
				continue
			}
			if err := s.writeChunk(w, rc, out); err != nil {
				return
			}
		case <-tick.C:
			if a != nil && !s.sessionStillValid(ctx, a) {
				return
			}
			if err := s.writeRaw(w, rc, ": heartbeat\n\n"); err != nil {
				return
			}
		}
	}
}
