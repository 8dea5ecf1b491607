package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
	"github.com/plaudhook/plaudhook/web/replay"
	"github.com/plaudhook/plaudhook/web/sample"
	"github.com/plaudhook/plaudhook/web/signature"
)

// endpointStore is what endpoint pages need from storage.
type endpointStore interface {
	FindEndpoints(ctx context.Context) ([]db.Endpoint, error)
	FindEndpointBySlug(ctx context.Context, slug string) (db.Endpoint, error)
	CreateEndpoint(ctx context.Context, e db.Endpoint) (db.Endpoint, error)
	UpdateEndpoint(ctx context.Context, id int64, u db.EndpointUpdate) (db.Endpoint, error)
	DeleteEndpoint(ctx context.Context, id int64) error
	FindEndpointHealth(ctx context.Context, endpointID int64, now time.Time) (db.EndpointHealth, error)
	FindEndpointTraffic(ctx context.Context, endpointID int64, now time.Time) (db.EndpointTraffic, error)
	FindClockSkew(ctx context.Context, endpointID *int64, since time.Time) (db.SkewSummary, error)
}

// skewBannerMin is how many timestamp-skew rejections within an hour raise the clock banner.
const skewBannerMin = 5

// handleEndpointIndex lists the endpoints.
func (s *Server) handleEndpointIndex(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	endpoints, err := s.store.FindEndpoints(ctx)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	props := views.EndpointListProps{Notice: s.endpointNotice(r)}
	now := s.now()
	for _, e := range endpoints {
		keys, err := s.endpointKeys(ctx, e.ID)
		if err != nil {
			s.respondError(w, r, err)
			return
		}
		h, err := s.store.FindEndpointTraffic(ctx, e.ID, now)
		if err != nil {
			s.respondError(w, r, err)
			return
		}
		sum := views.EndpointSummary{Endpoint: e, LastDeliveryAt: h.LastDeliveryAt}
		for _, k := range keys {
			if k.Usable(now) {
				sum.ActiveSecrets++
			}
		}
		props.Endpoints = append(props.Endpoints, sum)
	}
	s.render(w, r, views.EndpointList(s.page(r, "Endpoints", "endpoints"), props))
}

// handleEndpointNew shows the form that creates an endpoint.
func (s *Server) handleEndpointNew(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, views.EndpointNewPage(s.page(r, "New endpoint", "endpoints"),
		views.EndpointFormProps{}))
}

// endpointForm reads the endpoint form.
func endpointForm(r *http.Request) (db.Endpoint, string, error) {
	e := db.Endpoint{Slug: r.PostFormValue("slug"), Name: r.PostFormValue("name"),
		Note: r.PostFormValue("note")}
	typed := r.PostFormValue("expected_types")
	types, err := db.ParseEventTypes(typed)
	e.ExpectedTypes = types
	if err == nil && strings.TrimSpace(e.Slug) == "new" { // /endpoints/new is the form
		err = &db.ValidationError{Message: "slug: \"new\" is reserved; choose another"}
	}
	return e, typed, err
}

// handleEndpointCreate creates an endpoint and opens its page.
func (s *Server) handleEndpointCreate(w http.ResponseWriter, r *http.Request) {
	e, typed, err := endpointForm(r)
	if err == nil {
		e, err = s.store.CreateEndpoint(r.Context(), e)
	}
	if err != nil {
		msg, ok := formMessage(err, "an endpoint with this slug already exists")
		if !ok {
			s.respondError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnprocessableEntity)
		views.EndpointNewPage(s.page(r, "New endpoint", "endpoints"),
			views.EndpointFormProps{Endpoint: e, Types: typed, Error: msg}).Render(r.Context(), w)
		return
	}
	s.audit(r, "endpoint.create", "endpoint "+e.Slug,
		fmt.Sprintf("%q, expects %s", e.Name, typesOrAny(e.ExpectedTypes)))
	s.redirectNotice(w, r, views.EndpointURL(e.Slug), url.Values{"notice": {"endpoint_created"}})
}

// handleEndpointView shows an endpoint: health, secrets, test event and settings.
func (s *Server) handleEndpointView(w http.ResponseWriter, r *http.Request) {
	e, err := s.store.FindEndpointBySlug(r.Context(), r.PathValue("slug"))
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	s.renderEndpointPage(w, r, e, http.StatusOK, nil)
}

// handleEndpointUpdate saves an endpoint's settings.
func (s *Server) handleEndpointUpdate(w http.ResponseWriter, r *http.Request) {
	e, err := s.store.FindEndpointBySlug(r.Context(), r.PathValue("slug"))
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	in, typed, err := endpointForm(r)
	var updated db.Endpoint
	if err == nil {
		u := db.EndpointUpdate{Name: &in.Name, Note: &in.Note, ExpectedTypes: &in.ExpectedTypes}
		if e.ID != db.DefaultEndpointID { // its slug field is disabled in the form
			u.Slug = &in.Slug
		}
		updated, err = s.store.UpdateEndpoint(r.Context(), e.ID, u)
	}
	if err != nil {
		msg, ok := formMessage(err, "an endpoint with this slug already exists")
		if !ok {
			s.respondError(w, r, err)
			return
		}
		if e.ID == db.DefaultEndpointID {
			in.Slug = e.Slug
		}
		s.renderEndpointPage(w, r, e, http.StatusUnprocessableEntity, func(x *endpointPageExtra) {
			x.editError, x.edit = msg, &views.EndpointFormProps{Endpoint: in, Types: typed}
		})
		return
	}
	s.audit(r, "endpoint.update", "endpoint "+updated.Slug,
		fmt.Sprintf("%q, slug %s, expects %s", updated.Name, updated.Slug, typesOrAny(updated.ExpectedTypes)))
	s.redirectNotice(w, r, views.EndpointURL(updated.Slug), url.Values{"notice": {"endpoint_updated"}})
}

// handleEndpointDelete deletes an endpoint once its slug was typed to confirm.
func (s *Server) handleEndpointDelete(w http.ResponseWriter, r *http.Request) {
	e, err := s.store.FindEndpointBySlug(r.Context(), r.PathValue("slug"))
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	if strings.TrimSpace(r.PostFormValue("confirm")) != e.Slug {
		s.renderEndpointPage(w, r, e, http.StatusUnprocessableEntity, func(x *endpointPageExtra) {
			x.editError = "Type the slug " + e.Slug + " exactly to delete this endpoint."
		})
		return
	}
	if err := s.store.DeleteEndpoint(r.Context(), e.ID); err != nil {
		s.respondError(w, r, err)
		return
	}
	s.log.Info("endpoint deleted", "endpoint", e.Slug)
	s.audit(r, "endpoint.delete", "endpoint "+e.Slug, fmt.Sprintf("%q with its history", e.Name))
	s.redirectNotice(w, r, "/endpoints", url.Values{"notice": {"endpoint_deleted"}})
}

// handleEndpointTest signs a built-in sample with the endpoint's newest active secret and posts
// it to this server's own webhook URL, over real HTTP, so the whole chain runs as for Plaud.
func (s *Server) handleEndpointTest(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	e, err := s.store.FindEndpointBySlug(ctx, r.PathValue("slug"))
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	name := r.PostFormValue("sample")
	if name == "" {
		name = "transcription.completed"
	}
	body, name, err := sample.Get(name)
	if err != nil {
		s.respondError(w, r, &db.ValidationError{Message: "unknown sample"})
		return
	}
	keys, err := s.endpointKeys(ctx, e.ID)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	key, ok := newestActiveKey(keys, s.now())
	if !ok {
		s.secretFormError(w, r, e, "", &db.ValidationError{
			Message: "This endpoint has no active secret to sign a test event with: add one first."})
		return
	}

	// Sign and send it through the real HTTP path.
	h := signature.Sign(signature.Scheme(sample.Scheme(name)), key.Value, s.now(), body)
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "plaudhook-test/"+s.cfg.Version)
	target := s.selfURL(r) + e.Path()
	a := s.self.Send(ctx, replay.Request{URL: target, Header: h, Body: body})

	// Report what the webhook endpoint answered.
	q := url.Values{"notice": {"test_sent"}, "sample": {name}}
	if a.ErrorKind != replay.KindNone {
		q.Set("error", string(a.ErrorKind))
		s.log.Warn("test event not delivered", "endpoint", e.Slug, "error", a.Error)
	} else {
		var reply ingestReply
		json.Unmarshal(a.ResponseBody, &reply)
		q.Set("status", strconv.Itoa(a.StatusCode))
		q.Set("reason", reply.Reason)
		if reply.EventID != 0 {
			q.Set("event", strconv.FormatInt(reply.EventID, 10))
		}
		q.Set("dup", boolParam(reply.Duplicate))
	}
	s.audit(r, "endpoint.test", "endpoint "+e.Slug, fmt.Sprintf("sample %s signed with %q: %s",
		name, key.Label, testOutcome(a)))
	s.redirectNotice(w, r, views.EndpointURL(e.Slug), q)
}

func testOutcome(a replay.Attempt) string {
	if a.ErrorKind != replay.KindNone {
		return a.Error
	}
	return "HTTP " + strconv.Itoa(a.StatusCode)
}

// selfURL is where this server's own webhook endpoints are reached from inside the process:
// Config.SelfURL, or else the listener address the request came in on.
func (s *Server) selfURL(r *http.Request) string {
	if s.cfg.SelfURL != nil {
		if u := s.cfg.SelfURL(); u != "" {
			return strings.TrimRight(u, "/")
		}
	}
	if addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return "http://" + addr.String()
	}
	return "http://" + r.Host
}

// endpointPageExtra carries what a handler adds to the endpoint page after a refused form.
type endpointPageExtra struct {
	secretError, secretLabel string
	editError                string
	edit                     *views.EndpointFormProps
}

// renderEndpointPage gathers an endpoint's page and renders it with status.
func (s *Server) renderEndpointPage(w http.ResponseWriter, r *http.Request, e db.Endpoint, status int, extra func(*endpointPageExtra)) {
	ctx := r.Context()
	now := s.now()
	h, err := s.store.FindEndpointHealth(ctx, e.ID, now)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	rows, err := s.secretRows(ctx, e.ID, now)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	var x endpointPageExtra
	if extra != nil {
		extra(&x)
	}
	props := views.EndpointPageProps{Endpoint: e, URL: s.webhookURL(r, e), Health: h,
		Secrets: rows, Now: now, Tolerance: s.cfg.Tolerance, Samples: sample.Names(),
		Notice: s.endpointNotice(r), SecretError: x.secretError, SecretLabel: x.secretLabel,
		EditError: x.editError, SkewBanner: skewText(h.Skew),
		Edit: views.EndpointFormProps{Endpoint: e, Types: strings.Join(e.ExpectedTypes, ", ")}}
	if x.edit != nil {
		props.Edit = *x.edit
	}
	if status != http.StatusOK {
		props.Notice = ""
	}

	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := views.EndpointPage(s.page(r, e.Name, "endpoints"), props).Render(ctx, w); err != nil {
		s.log.Error("render page", "error", err, slogRequest(r))
	}
}

// secretRows lists an endpoint's secrets for its page: the stored rows, plus any environment
// secret that has no row (a server not started through cmd).
func (s *Server) secretRows(ctx context.Context, endpointID int64, now time.Time) ([]views.SecretRow, error) {
	secrets, err := s.store.FindSecrets(ctx, endpointID)
	if err != nil {
		return nil, err
	}
	var out []views.SecretRow
	for _, c := range s.cfg.Secrets(ctx, endpointID) {
		if c.ID == 0 {
			out = append(out, views.SecretRow{Status: "active", Unsaved: true, Secret: db.Secret{
				Label: c.Label, Fingerprint: db.Fingerprint(c.Key), Source: db.SourceEnvironment,
				State: db.SecretActive}})
		}
	}
	for _, sec := range secrets {
		out = append(out, views.SecretRow{Secret: sec, Status: sec.Status(now)})
	}
	return out, nil
}

// webhookURL is the endpoint's URL as the browser reaches this server, for copying into Plaud's
// portal (behind a proxy, the public host is what the browser used too).
func (s *Server) webhookURL(r *http.Request, e db.Endpoint) string {
	scheme := "http"
	if r.TLS != nil || s.cfg.SecureCookies || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host + e.Path()
}

// clockWarning is the banner shown on every page when at least skewBannerMin deliveries were
// rejected for timestamp skew in the last hour. A failed query shows no banner.
func (s *Server) clockWarning(r *http.Request) string {
	sum, err := s.store.FindClockSkew(r.Context(), nil, s.now().Add(-time.Hour))
	if err != nil {
		return ""
	}
	return skewText(sum)
}

// skewText words the clock banner, or returns "" below the threshold.
func skewText(sum db.SkewSummary) string {
	if sum.Count < skewBannerMin {
		return ""
	}
	off, dir := sum.MedianSeconds, "ahead of"
	if off < 0 {
		off, dir = -off, "behind"
	}
	return fmt.Sprintf("This server's clock may be off by about %d seconds (%s the senders'): "+
		"%d deliveries in the last hour were rejected for timestamp skew. Check NTP on this "+
		"server.", off, dir, sum.Count)
}

// redirectNotice answers a form post with 303 to path, carrying the outcome in the query.
func (s *Server) redirectNotice(w http.ResponseWriter, r *http.Request, path string, q url.Values) {
	for k, v := range q {
		if len(v) == 0 || v[0] == "" {
			q.Del(k)
		}
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

var codePattern = regexp.MustCompile(`^[a-z0-9_.]{1,60}$`)

// endpointNotice words the outcome of the last endpoint or secret action from the query. Only
// fixed phrases, numbers and machine codes are taken from the URL, so a crafted link cannot put
// arbitrary words on the page.
func (s *Server) endpointNotice(r *http.Request) string {
	q := r.URL.Query()
	code := func(k string) string {
		if v := q.Get(k); codePattern.MatchString(v) {
			return v
		}
		return ""
	}
	num := func(k string) int64 {
		n, _ := strconv.ParseInt(q.Get(k), 10, 64)
		return n
	}
	trimmed := ""
	if q.Get("trimmed") == "1" {
		trimmed = " Leading/trailing whitespace removed from the pasted secret."
	}
	switch q.Get("notice") {
	case "secret_added":
		return "Secret added." + trimmed
	case "secret_rotated":
		msg := "New secret active."
		if n := num("retiring"); n > 0 {
			msg += fmt.Sprintf(" %d previous secret(s) keep verifying until %s, then stop.", n,
				views.FormatTime(time.Unix(num("until"), 0)))
		}
		return msg + trimmed
	case "secret_revoked":
		return "Secret revoked: it no longer verifies anything."
	case "endpoint_created":
		return "Endpoint created. Add its signing secret below, then point the Plaud subscription at its URL."
	case "endpoint_updated":
		return "Endpoint saved."
	case "endpoint_deleted":
		return "Endpoint deleted with its history."
	case "test_sent":
		if k := code("error"); k != "" {
			return fmt.Sprintf("The test event (%s) could not be sent: %s.", code("sample"), k)
		}
		msg := fmt.Sprintf("Test event %s sent: the webhook endpoint answered HTTP %d", code("sample"), num("status"))
		if r := code("reason"); r != "" {
			msg += " (" + r + ")"
		}
		if id := num("event"); id > 0 {
			msg += fmt.Sprintf(", event #%d", id)
			if q.Get("dup") == "1" {
				msg += " (a repeat of an event already stored)"
			}
		}
		return msg + "."
	}
	return ""
}

func typesOrAny(types []string) string {
	if len(types) == 0 {
		return "any type"
	}
	return strings.Join(types, ", ")
}

// formMessage turns a refused form into the message to show beside it: a validation message, or
// conflictMsg for a conflict. ok is false for any other error.
func formMessage(err error, conflictMsg string) (string, bool) {
	var ve *db.ValidationError
	switch {
	case errors.As(err, &ve):
		return ve.Message, true
	case errors.Is(err, db.ErrConflict):
		return conflictMsg, true
	}
	return "", false
}
