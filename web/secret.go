package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
	"github.com/plaudhook/plaudhook/web/signature"
)

// secretStore is what signing secrets need from storage.
type secretStore interface {
	FindSecrets(ctx context.Context, endpointID int64) ([]db.Secret, error)
	FindSecretByID(ctx context.Context, id int64) (db.Secret, error)
	FindSecretKeys(ctx context.Context, endpointID int64) ([]db.SecretKey, error)
	CreateSecret(ctx context.Context, in db.NewSecret) (db.Secret, error)
	RotateSecret(ctx context.Context, in db.NewSecret, retireAfter time.Duration) (db.Secret, []db.Secret, error)
	RevokeSecret(ctx context.Context, id int64) (db.Secret, error)
	SecretsGeneration() int64
}

// keyCacheTTL bounds how long a cached key set is trusted. Changes made in this process are seen
// at once (SecretsGeneration); changes made by the CLI in another process within this time.
const keyCacheTTL = 2 * time.Second

// keyCache keeps each endpoint's secrets, values opened, so that a delivery costs no query and
// no decryption to verify. mu guards entries.
type keyCache struct {
	mu      sync.Mutex
	entries map[int64]keyEntry
}

type keyEntry struct {
	keys   []db.SecretKey
	gen    int64
	loaded time.Time // wall clock with monotonic reading, not the injected one: this is a cache age
}

// endpointKeys returns every secret of an endpoint with its value: the environment ones (from
// Config.Secrets) and the stored ones, in every state. Callers filter by Usable.
func (s *Server) endpointKeys(ctx context.Context, endpointID int64) ([]db.SecretKey, error) {
	gen := s.store.SecretsGeneration()
	s.keys.mu.Lock()
	e, ok := s.keys.entries[endpointID]
	s.keys.mu.Unlock()
	if ok && e.gen == gen && time.Since(e.loaded) < keyCacheTTL {
		return e.keys, nil
	}

	keys, err := s.loadKeys(ctx, endpointID)
	if err != nil {
		return nil, err
	}
	s.keys.mu.Lock()
	if s.keys.entries == nil {
		s.keys.entries = map[int64]keyEntry{}
	}
	s.keys.entries[endpointID] = keyEntry{keys: keys, gen: gen, loaded: time.Now()}
	s.keys.mu.Unlock()
	return keys, nil
}

// loadKeys reads an endpoint's secrets from storage and the configuration.
func (s *Server) loadKeys(ctx context.Context, endpointID int64) ([]db.SecretKey, error) {
	stored, err := s.store.FindSecretKeys(ctx, endpointID)
	if err != nil {
		return nil, fmt.Errorf("secrets of endpoint %d: %w", endpointID, err)
	}
	rows, err := s.store.FindSecrets(ctx, endpointID)
	if err != nil {
		return nil, fmt.Errorf("secrets of endpoint %d: %w", endpointID, err)
	}

	// Environment secrets first (they carry their id when cmd saved a row for them), then the
	// stored ones, newest first.
	var out []db.SecretKey
	for _, c := range s.cfg.Secrets(ctx, endpointID) {
		k := db.SecretKey{Value: c.Key, Secret: db.Secret{ID: c.ID, EndpointID: endpointID,
			Label: c.Label, Fingerprint: db.Fingerprint(c.Key), Source: db.SourceEnvironment,
			State: db.SecretActive}}
		if i := slices.IndexFunc(rows, func(r db.Secret) bool { return c.ID != 0 && r.ID == c.ID }); i >= 0 {
			k.Secret = rows[i]
		}
		out = append(out, k)
	}
	return append(out, stored...), nil
}

// verifySecrets returns the secrets that verify a delivery received at t: active ones and those
// still retiring, the newest active first. The full key set comes along for bookkeeping.
func (s *Server) verifySecrets(ctx context.Context, endpointID int64, t time.Time) ([]signature.Secret, []db.SecretKey, error) {
	keys, err := s.endpointKeys(ctx, endpointID)
	if err != nil {
		return nil, nil, err
	}
	var out []signature.Secret
	for _, state := range []db.SecretState{db.SecretActive, db.SecretRetiring} {
		for _, k := range keys {
			if k.State == state && k.Usable(t) {
				out = append(out, signature.Secret{ID: k.ID, Label: k.Label, Key: k.Value})
			}
		}
	}
	return out, keys, nil
}

// secretIsOld reports whether the secret that verified a delivery at t was already superseded:
// retiring, or older than another active secret of the endpoint. The sender should move on.
func secretIsOld(keys []db.SecretKey, matched *signature.Secret, t time.Time) bool {
	i := slices.IndexFunc(keys, func(k db.SecretKey) bool {
		return k.Label == matched.Label && (matched.ID == 0 || k.ID == matched.ID)
	})
	if i < 0 {
		return false
	}
	m := keys[i]
	if m.State == db.SecretRetiring {
		return true
	}
	for j, k := range keys {
		if j != i && k.State == db.SecretActive && k.Usable(t) && k.CreatedAt.After(m.CreatedAt) {
			return true
		}
	}
	return false
}

// newestActiveKey is the secret "send a test event" signs with: the newest active stored one, or
// else an environment one.
func newestActiveKey(keys []db.SecretKey, t time.Time) (db.SecretKey, bool) {
	var best db.SecretKey
	found := false
	for _, k := range keys {
		if k.State != db.SecretActive || !k.Usable(t) {
			continue
		}
		if !found || k.CreatedAt.After(best.CreatedAt) {
			best, found = k, true
		}
	}
	return best, found
}

// secretForm reads and checks a secret form: the value cleaned (trimmed says whitespace was
// removed), the label, or a ValidationError to show beside the form. Nothing is stored here.
func secretForm(r *http.Request) (value, label string, trimmed bool, err error) {
	label = strings.TrimSpace(r.PostFormValue("label"))
	value, trimmed, err = db.CleanSecretValue(r.PostFormValue("value"))
	return value, label, trimmed, err
}

// handleSecretCreate adds a secret to an endpoint, beside the others.
func (s *Server) handleSecretCreate(w http.ResponseWriter, r *http.Request) {
	e, err := s.store.FindEndpointBySlug(r.Context(), r.PathValue("slug"))
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	value, label, trimmed, err := secretForm(r)
	if err != nil {
		s.secretFormError(w, r, e, label, err)
		return
	}

	u, _ := userFrom(r.Context())
	sec, err := s.store.CreateSecret(r.Context(), db.NewSecret{EndpointID: e.ID, Label: label,
		Value: value, CreatedBy: u.Username})
	if err != nil {
		s.secretFormError(w, r, e, label, err)
		return
	}
	s.log.Info("secret added", "endpoint", e.Slug, "secret_id", sec.ID, "fingerprint", sec.Fingerprint)
	s.audit(r, "secret.create", "endpoint "+e.Slug,
		fmt.Sprintf("added %q (fingerprint %s)", sec.Label, sec.Fingerprint))
	s.redirectNotice(w, r, views.EndpointURL(e.Slug), url.Values{"notice": {"secret_added"},
		"trimmed": {boolParam(trimmed)}})
}

// handleSecretRotate makes a new secret active and starts the endpoint's other stored active
// secrets retiring, in one step. POST /secrets/rotate names the endpoint in a form field.
func (s *Server) handleSecretRotate(w http.ResponseWriter, r *http.Request) {
	slug := r.PathValue("slug")
	if slug == "" {
		slug = r.PostFormValue("endpoint")
	}
	if slug == "" {
		slug = "default"
	}
	e, err := s.store.FindEndpointBySlug(r.Context(), slug)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	value, label, trimmed, err := secretForm(r)
	if err != nil {
		s.secretFormError(w, r, e, label, err)
		return
	}
	if label == "" {
		label = "rotated " + s.now().UTC().Format("2006-01-02 15:04")
	}
	retire := db.DefaultRetireAfter
	if v := r.PostFormValue("retire_hours"); v != "" {
		h, err := strconv.Atoi(v)
		if err != nil || h < 0 || h > 720 {
			s.secretFormError(w, r, e, label, &db.ValidationError{
				Message: "retiring period: 0 to 720 hours"})
			return
		}
		// Zero hours still leaves a second, so "retire at once" is a deliberate choice.
		retire = max(time.Duration(h)*time.Hour, time.Second)
	}

	u, _ := userFrom(r.Context())
	sec, retired, err := s.store.RotateSecret(r.Context(), db.NewSecret{EndpointID: e.ID,
		Label: label, Value: value, CreatedBy: u.Username}, retire)
	if err != nil {
		s.secretFormError(w, r, e, label, err)
		return
	}
	var olds []string
	for _, o := range retired {
		olds = append(olds, fmt.Sprintf("%q (%s)", o.Label, o.Fingerprint))
	}
	detail := fmt.Sprintf("new %q (fingerprint %s)", sec.Label, sec.Fingerprint)
	if len(olds) > 0 {
		detail += fmt.Sprintf("; retiring until %s: %s",
			retired[0].RetireAt.Format(time.RFC3339), strings.Join(olds, ", "))
	}
	s.log.Info("secret rotated", "endpoint", e.Slug, "secret_id", sec.ID, "retired", len(retired))
	s.audit(r, "secret.rotate", "endpoint "+e.Slug, detail)
	q := url.Values{"notice": {"secret_rotated"}, "trimmed": {boolParam(trimmed)},
		"retiring": {strconv.Itoa(len(retired))}}
	if len(retired) > 0 {
		q.Set("until", strconv.FormatInt(retired[0].RetireAt.Unix(), 10))
	}
	s.redirectNotice(w, r, views.EndpointURL(e.Slug), q)
}

// handleSecretRevoke revokes a stored secret at once.
func (s *Server) handleSecretRevoke(w http.ResponseWriter, r *http.Request) {
	e, err := s.store.FindEndpointBySlug(r.Context(), r.PathValue("slug"))
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	sec, err := s.store.FindSecretByID(r.Context(), id)
	if err == nil && sec.EndpointID != e.ID {
		err = fmt.Errorf("secret %d of endpoint %s: %w", id, e.Slug, db.ErrNotFound)
	}
	if err != nil {
		s.respondError(w, r, err)
		return
	}

	if sec, err = s.store.RevokeSecret(r.Context(), id); err != nil {
		s.secretFormError(w, r, e, "", err)
		return
	}
	s.log.Info("secret revoked", "endpoint", e.Slug, "secret_id", sec.ID)
	s.audit(r, "secret.revoke", "endpoint "+e.Slug,
		fmt.Sprintf("revoked %q (fingerprint %s)", sec.Label, sec.Fingerprint))
	s.redirectNotice(w, r, views.EndpointURL(e.Slug), url.Values{"notice": {"secret_revoked"},
		"label": {sec.Label}})
}

// secretFormError shows a refused secret form on the endpoint page, beside the form, with 422;
// other errors go to the error responder.
func (s *Server) secretFormError(w http.ResponseWriter, r *http.Request, e db.Endpoint, label string, err error) {
	var ve *db.ValidationError
	if !errors.As(err, &ve) {
		s.respondError(w, r, err)
		return
	}
	s.renderEndpointPage(w, r, e, http.StatusUnprocessableEntity, func(p *endpointPageExtra) {
		p.secretError, p.secretLabel = ve.Message, label
	})
}

func boolParam(b bool) string {
	if b {
		return "1"
	}
	return ""
}
