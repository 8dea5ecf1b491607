package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web/signature"
)

// TestSecretRotation walks a rotation through the UI: old and new both verify while the old one
// retires; the old one fails once the retiring deadline passes on the clock, and a revoked one at
// once. Rotation and revocation each write an audit row.
func TestSecretRotation(t *testing.T) {
	e := newSecretEnv(t)
	admin := e.client("admin")
	ctx := context.Background()
	b2 := []byte(`{"event":"device.synced","data":{"file_id":"f_rot"}}`)

	e.addSecret(admin, "default", "old", oldSecret)
	if resp, body := e.post("/webhook", devguide(oldSecret, b1), b1); resp.StatusCode != 200 {
		t.Fatalf("old before rotation: %d %s", resp.StatusCode, body)
	}

	// Rotate: paste the new secret; the old one starts retiring for 26 hours.
	page := e.mustForm(admin, "/endpoints/default/secrets/rotate", url.Values{"label": {"new"}, "value": {testSecret}})
	doc := mustDoc(t, page)
	if got := doc.Find(`[data-testid=secret-row][data-label=old]`).AttrOr("data-status", ""); got != "retiring" {
		t.Errorf("old secret status = %q, want retiring", got)
	}
	if got := doc.Find(`[data-testid=secret-row][data-label=new]`).AttrOr("data-status", ""); got != "active" {
		t.Errorf("new secret status = %q, want active", got)
	}
	if notice := doc.Find("[data-testid=notice]").Text(); !strings.Contains(notice, "keep verifying until 2026-12-04 14:00:00 UTC") {
		t.Errorf("notice = %q, want the retiring deadline", notice)
	}

	// Both verify while the old one retires; the old one carries the warning. (Sessions expire
	// as the clock jumps: sign in again.)
	e.setClock(testNow.Add(25 * time.Hour))
	admin = e.client("admin")
	for _, tt := range []struct {
		key, label string
		body       []byte
		old        bool
	}{{oldSecret, "old", b2, true}, {testSecret, "new", b1, false}} {
		resp, body := e.post("/webhook", devguide(tt.key, tt.body), tt.body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s while retiring: %d %s", tt.label, resp.StatusCode, body)
		}
		d, doc := e.newestDelivery(admin)
		if d.SecretLabel != tt.label || d.SecretOld != tt.old {
			t.Errorf("%s: verified by %q, old %v; want %q, %v", tt.label, d.SecretLabel, d.SecretOld, tt.label, tt.old)
		}
		if got := doc.Find("[data-testid=old-secret-warning]").Length() == 1; got != tt.old {
			t.Errorf("%s: old-secret warning shown = %v, want %v", tt.label, got, tt.old)
		}
	}

	// Past the retiring deadline the old one no longer verifies; the new one does.
	e.setClock(testNow.Add(26*time.Hour + time.Second))
	admin = e.client("admin")
	if resp, body := e.post("/webhook", devguide(oldSecret, b2), b2); resp.StatusCode != 400 || !strings.Contains(body, "signature_mismatch") {
		t.Fatalf("old after its deadline: %d %s, want 400", resp.StatusCode, body)
	}
	_, doc = e.newestDelivery(admin)
	if hint := doc.Find(`[data-testid=hint][data-kind=inactive_secret]`).Text(); !strings.Contains(hint, `"old"`) || !strings.Contains(hint, "stopped verifying at 2026-12-04 14:00:00 UTC") {
		t.Errorf("debugger hint = %q, want the retired secret named with its deadline", hint)
	}
	if resp, _ := e.post("/webhook", devguide(testSecret, b2), b2); resp.StatusCode != 200 {
		t.Fatalf("new after the deadline: %d", resp.StatusCode)
	}

	// Revoke: a third secret stops at once.
	e.addSecret(admin, "default", "third", "plaud_third_secret")
	b3 := []byte(`{"event":"device.synced","data":{"file_id":"f_third"}}`)
	if resp, _ := e.post("/webhook", devguide("plaud_third_secret", b3), b3); resp.StatusCode != 200 {
		t.Fatalf("third before revoke: %d", resp.StatusCode)
	}
	secrets, _ := e.db.FindSecrets(ctx, 1)
	var third db.Secret
	for _, s := range secrets {
		if s.Label == "third" {
			third = s
		}
	}
	if third.MatchCount != 1 || third.LastMatchedAt.IsZero() {
		t.Errorf("third: match count %d, last matched %v; want 1 and a time", third.MatchCount, third.LastMatchedAt)
	}
	e.mustForm(admin, "/endpoints/default/secrets/"+itoa64(third.ID)+"/revoke", nil)
	b4 := []byte(`{"event":"device.synced","data":{"file_id":"f_third2"}}`)
	if resp, _ := e.post("/webhook", devguide("plaud_third_secret", b4), b4); resp.StatusCode != 400 {
		t.Fatalf("third after revoke: %d, want 400", resp.StatusCode)
	}

	// The audit log has the rotation and the revocation, by admin, without secret values.
	entries, _, err := e.db.FindAuditEntries(ctx, db.AuditFilter{ActionPrefix: "secret."})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]db.AuditEntry{}
	for _, a := range entries {
		got[a.Action] = a
		if strings.Contains(a.Detail, oldSecret) || strings.Contains(a.Detail, testSecret) {
			t.Errorf("audit detail reveals a secret: %q", a.Detail)
		}
	}
	for _, action := range []string{"secret.create", "secret.rotate", "secret.revoke"} {
		if a, ok := got[action]; !ok || a.Actor != "admin" {
			t.Errorf("audit %s = %+v, want one by admin", action, a)
		}
	}
	if d := got["secret.rotate"].Detail; !strings.Contains(d, `"new"`) || !strings.Contains(d, `"old"`) {
		t.Errorf("rotate detail = %q, want both labels", d)
	}
}

// TestSecretPasteC17: a pasted secret is trimmed with a notice and works; inner spaces and
// control characters are refused with nothing saved; the untrimmed value's signature is
// rejected (the verifier does not guess), and the debugger says why.
func TestSecretPasteC17(t *testing.T) {
	e := newSecretEnv(t)
	admin := e.client("admin")

	for _, bad := range []string{"plaud test secret", "plaud_test\x07secret", "plaud\tsecret"} {
		resp, body := form(t, admin, e.ts.URL+"/endpoints/default/secrets", url.Values{"label": {"bad"}, "value": {bad}})
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("value %q: %d, want 422", bad, resp.StatusCode)
		}
		if msg := mustDoc(t, body).Find("[data-testid=secret-error]").Text(); msg == "" {
			t.Errorf("value %q: no form error shown", bad)
		}
		if strings.Contains(body, bad) {
			t.Errorf("the refused value is echoed in the page")
		}
	}
	if s, _ := e.db.FindSecrets(context.Background(), 1); len(s) != 0 {
		t.Fatalf("secrets after refusals = %d, want 0", len(s))
	}

	page := e.addSecret(admin, "default", "S", "  "+testSecret+"\n")
	if notice := mustDoc(t, page).Find("[data-testid=notice]").Text(); !strings.Contains(notice, "Leading/trailing whitespace removed") {
		t.Errorf("notice = %q, want the whitespace notice", notice)
	}
	h := http.Header{"Plaud-Signature": {sigS}, "Content-Type": {"application/json"}}
	if resp, body := e.post("/webhook", h, b1); resp.StatusCode != 200 {
		t.Fatalf("B1 with f7b769ef…: %d %s", resp.StatusCode, body)
	}
	padded := http.Header{"Plaud-Signature": {"daeaab8e25d62af38d6442db12709e2558cd1168902ff0fe344e239afd23177f"}}
	if resp, _ := e.post("/webhook", padded, b1); resp.StatusCode != 400 {
		t.Fatalf("signed with the untrimmed value: %d, want 400", resp.StatusCode)
	}
	_, doc := e.newestDelivery(admin)
	if kinds := hintKinds(doc); len(kinds) != 1 || kinds[0] != "secret_whitespace" {
		t.Errorf("hints = %v, want [secret_whitespace]", kinds)
	}
}

// TestSecretsNeverInClear adds and rotates secrets through the UI, then greps the database file,
// its WAL and shared memory, every page and API answer, and the server log: no secret value
// appears anywhere, while its label and fingerprint do (so each grep can find things).
func TestSecretsNeverInClear(t *testing.T) {
	e := newSecretEnv(t)
	admin := e.client("admin")
	values := []string{testSecret, oldSecret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	e.addSecret(admin, "default", "first-label", values[0])
	e.mustForm(admin, "/endpoints/default/secrets/rotate", url.Values{"label": {"second-label"}, "value": {values[1]}})
	e.mustForm(admin, "/endpoints", url.Values{"slug": {"calls"}, "name": {"Calls"}})
	e.addSecret(admin, "calls", "third-label", values[2])
	e.post("/webhook", devguide(values[0], b1), b1)
	e.post("/webhook/calls", devguide("wrong", b1), b1)

	var seen []string
	for _, path := range []string{"/endpoints", "/endpoints/default", "/endpoints/calls", "/api/v1/endpoints", "/deliveries/1", "/deliveries/2", "/audit"} {
		_, body := get(t, admin, e.ts.URL+path)
		seen = append(seen, path+"\n"+body)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(e.db.Path + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		seen = append(seen, "db"+suffix+"\n"+string(b))
	}
	seen = append(seen, "log\n"+e.logs.String())

	for _, text := range seen {
		name, _, _ := strings.Cut(text, "\n")
		for _, v := range values {
			if strings.Contains(text, v) {
				t.Errorf("%s contains the secret %q in clear", name, v)
			}
		}
	}
	all := strings.Join(seen, "\n")
	for _, want := range []string{"third-label", db.Fingerprint([]byte(values[2]))} {
		if !strings.Contains(all, want) {
			t.Errorf("%q found nowhere: the greps prove nothing", want)
		}
	}
	dbFile, _ := os.ReadFile(e.db.Path)
	wal, _ := os.ReadFile(e.db.Path + "-wal")
	if !bytes.Contains(append(dbFile, wal...), []byte("second-label")) {
		t.Error("labels are not in the database files either: the grep proves nothing")
	}
}

// TestAPIEndpoints: GET /api/v1/endpoints lists endpoints with their secrets' labels,
// fingerprints and states, for a session or a token, and never a value.
func TestAPIEndpoints(t *testing.T) {
	e := newSecretEnv(t, func(c *webConfig) {
		c.Secrets = func(_ context.Context, id int64) []signature.Secret {
			if id != 1 {
				return nil
			}
			return []signature.Secret{{Label: "PLAUD_WEBHOOK_SECRET", Key: []byte("env_secret_value")}}
		}
	})
	admin := e.client("admin")
	e.addSecret(admin, "default", "stored", testSecret)
	e.post("/webhook", devguide(testSecret, b1), b1)

	resp, body := get(t, e.client("viewer"), e.ts.URL+"/api/v1/endpoints")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/v1/endpoints: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var got struct {
		Endpoints []struct {
			Slug        string `json:"slug"`
			Path        string `json:"path"`
			Verified24h int    `json:"verified_24h"`
			Secrets     []struct {
				Label       string `json:"label"`
				Fingerprint string `json:"fingerprint"`
				Source      string `json:"source"`
				State       string `json:"state"`
				MatchCount  int    `json:"match_count"`
			} `json:"secrets"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Endpoints) != 1 || got.Endpoints[0].Path != "/webhook" || got.Endpoints[0].Verified24h != 1 {
		t.Fatalf("endpoints = %+v", got.Endpoints)
	}
	secs := got.Endpoints[0].Secrets
	if len(secs) != 2 || secs[0].Source != "environment" || secs[1].Label != "stored" ||
		secs[1].Fingerprint != db.Fingerprint([]byte(testSecret)) || secs[1].State != "active" || secs[1].MatchCount != 1 {
		t.Errorf("secrets = %+v", secs)
	}
	if strings.Contains(body, testSecret) || strings.Contains(body, "env_secret_value") {
		t.Error("the API reveals a secret value")
	}

	resp, _ = get(t, http.DefaultClient, e.ts.URL+"/api/v1/endpoints")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without credentials: %d, want 401", resp.StatusCode)
	}
}

// TestRotateCrossOrigin is C28 for secrets: a cross-site POST /secrets/rotate is refused and
// rotates nothing; the same request from the dashboard rotates; GET is not allowed.
func TestRotateCrossOrigin(t *testing.T) {
	e := newSecretEnv(t)
	admin := e.client("admin")
	e.addSecret(admin, "default", "old", oldSecret)
	rotate := func(h map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/secrets/rotate",
			strings.NewReader(url.Values{"endpoint": {"default"}, "value": {testSecret}, "label": {"new"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := admin.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	count := func() int {
		s, _ := e.db.FindSecrets(context.Background(), 1)
		return len(s)
	}
	if got := rotate(map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}); got != http.StatusForbidden || count() != 1 {
		t.Fatalf("cross-site rotate: %d with %d secrets, want 403 and 1", got, count())
	}
	if got := rotate(map[string]string{"Origin": "https://evil.example"}); got != http.StatusForbidden || count() != 1 {
		t.Fatalf("foreign origin without Sec-Fetch-Site: %d with %d secrets, want 403 and 1", got, count())
	}
	if got := rotate(map[string]string{"Sec-Fetch-Site": "same-origin"}); got != http.StatusSeeOther || count() != 2 {
		t.Fatalf("same-origin rotate: %d with %d secrets, want 303 and 2", got, count())
	}
	resp, _ := get(t, admin, e.ts.URL+"/secrets/rotate")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /secrets/rotate: %d, want 405", resp.StatusCode)
	}
}

// TestSecretCreatedByAndAt: who added a stored secret and when is shown on the endpoint page and
// in GET /api/v1/endpoints (created_by, created_at), for the admin who really added it.
func TestSecretCreatedByAndAt(t *testing.T) {
	e := newSecretEnv(t)
	if _, err := e.db.CreateUser(context.Background(), "dana", testHash(), db.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	added := testNow.Add(90 * time.Minute)
	e.setClock(added)
	e.addSecret(e.client("dana"), "default", "portal", testSecret)
	e.setClock(added.Add(2 * time.Hour)) // later views must not show their own time

	_, page := get(t, e.client("admin"), e.ts.URL+"/endpoints/default")
	row := mustDoc(t, page).Find(`[data-testid=secret-row][data-label="portal"]`)
	if row.Length() != 1 {
		t.Fatalf("secret rows labelled portal = %d, want 1", row.Length())
	}
	text := strings.Join(strings.Fields(row.Text()), " ")
	for _, want := range []string{"2026-12-03 13:30:00 UTC", "by dana"} {
		if !strings.Contains(text, want) {
			t.Errorf("secret row %q lacks %q", text, want)
		}
	}

	_, body := get(t, e.client("viewer"), e.ts.URL+"/api/v1/endpoints")
	var got struct {
		Endpoints []struct {
			Secrets []struct {
				Label     string `json:"label"`
				CreatedAt string `json:"created_at"`
				CreatedBy string `json:"created_by"`
			} `json:"secrets"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Endpoints) != 1 || len(got.Endpoints[0].Secrets) != 1 {
		t.Fatalf("endpoints = %+v, want the default one with one secret", got.Endpoints)
	}
	s := got.Endpoints[0].Secrets[0]
	if s.Label != "portal" || s.CreatedBy != "dana" || s.CreatedAt != "2026-12-03T13:30:00Z" {
		t.Errorf("secret = %+v, want portal created by dana at 2026-12-03T13:30:00Z", s)
	}
}
