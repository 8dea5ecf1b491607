package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web"
	"github.com/plaudhook/plaudhook/web/signature"
)

// TestReplayOriginal replays a stored event as Plaud sent it: the receiver gets the body byte
// for byte and every stored header unchanged, signature included, plus plaudhook's User-Agent
// and the replay marker.
func TestReplayOriginal(t *testing.T) {
	for _, scheme := range []signature.Scheme{signature.SchemeDevguide, signature.SchemeEmbedded} {
		t.Run(string(scheme), func(t *testing.T) {
			e := mustReplayEnv(t)
			id := e.mustIngest(scheme, b3, http.Header{"X-Request-Id": {"req-1", "req-2"}})
			rc := newReceiver(t, nil)

			res := e.apiReplay(e.client("operator"), id, map[string]string{
				"target_url": rc.srv.URL + "/hooks/plaud", "mode": "original"})
			if res.status != http.StatusCreated || !res.attempt.OK || res.attempt.StatusCode != 200 {
				t.Fatalf("replay = %d %s, want 201 and a 200 attempt", res.status, res.raw)
			}

			// The body, byte for byte.
			reqs := rc.requests()
			if len(reqs) != 1 {
				t.Fatalf("receiver got %d requests, want 1", len(reqs))
			}
			got := reqs[0]
			if shaHex(got.body) != "c14d3ac865d78e744c529a43282ed794d1881cc052bd2c206c44647e9a529bcd" {
				t.Errorf("body sha256 = %s, want C3's", shaHex(got.body))
			}

			// Every stored header arrives unchanged, except those net/http owns and the
			// User-Agent, which is plaudhook's on every replay.
			ev, _ := e.db.FindEventByID(context.Background(), id)
			stored, _ := e.db.FindDeliveryByID(context.Background(), ev.BodyDeliveryID)
			for k, want := range stored.Header {
				switch k {
				case "Host", "Content-Length", "User-Agent":
					continue
				}
				if g := got.header[k]; strings.Join(g, "\x00") != strings.Join(want, "\x00") {
					t.Errorf("header %s = %q, want %q", k, g, want)
				}
			}
			// And nothing else is added: every header the receiver got was stored, except
			// plaudhook's own two and the length net/http writes.
			for k, vs := range got.header {
				switch k {
				case "User-Agent", web.ReplayMarkerHeader, "Content-Length":
					continue
				}
				if _, ok := stored.Header[k]; !ok {
					t.Errorf("receiver got header %s: %q, which the stored delivery lacks", k, vs)
				}
			}
			if g := got.header.Get(signature.HeaderSignature); g == "" || g != stored.Header.Get(signature.HeaderSignature) {
				t.Errorf("Plaud-Signature = %q, want the original %q", g, stored.Header.Get(signature.HeaderSignature))
			}
			if g := got.header.Get("User-Agent"); g != "plaudhook/test" {
				t.Errorf("User-Agent = %q, want plaudhook/test", g)
			}
			if g := got.header.Get(web.ReplayMarkerHeader); g != strconv.FormatInt(id, 10) {
				t.Errorf("%s = %q, want %d", web.ReplayMarkerHeader, g, id)
			}

			// The attempt is recorded, response included.
			as, _ := e.db.FindAttempts(context.Background(), db.AttemptFilter{EventID: id})
			if len(as) != 1 || as[0].Mode != db.ModeOriginal || string(as[0].ResponseBody) != "ok" ||
				as[0].Actor != "operator" || as[0].Source != "api" || as[0].RequestSHA256 != shaHex(b3) {
				t.Errorf("attempts = %+v, want one original attempt by operator with the answer", as)
			}
			es := auditActions(t, e.db, "replay.send")
			if len(es) != 1 || es[0].Actor != "operator" || es[0].Target != fmt.Sprintf("event %d", id) ||
				!strings.Contains(es[0].Detail, "HTTP 200") || !strings.Contains(es[0].Detail, rc.srv.URL) {
				t.Errorf("audit = %+v, want who, which event, where and the result", es)
			}
		})
	}
}

// TestReplayResign re-signs the stored bytes under each scheme, with the target's own secret and
// with an endpoint secret: the receiver verifies each with its secret, the timestamp is fresh,
// and the original signature is not forwarded (C18).
func TestReplayResign(t *testing.T) {
	tests := []struct {
		name    string
		scheme  signature.Scheme
		secret  string // the API's "secret" field
		key     string // what the receiver verifies with
		wantSig string // exact expected signature, when known
	}{
		{"devguide target secret", signature.SchemeDevguide, "", targetSecret,
			"900c6c17ce86b12d78aefbe8d361508fb578c3193c8636c635a6b59400bf0e7f"},
		{"embedded target secret", signature.SchemeEmbedded, "target", targetSecret, ""},
		{"devguide endpoint secret", signature.SchemeDevguide, "S", testSecret,
			"e18d55e294c0dc401d6fc6a9edda7a650a3e1e2ce60ae6c68fcaadbf2ae2a19a"},
		{"embedded endpoint secret", signature.SchemeEmbedded, "S", testSecret, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustReplayEnv(t)
			// Arrives under the other scheme, so a copied signature would not verify.
			other := signature.SchemeEmbedded
			if tt.scheme == signature.SchemeEmbedded {
				other = signature.SchemeDevguide
			}
			const contentType = "application/json; charset=utf-8"
			id := e.mustIngest(other, b3, http.Header{"Content-Type": {contentType}})
			original := signature.Sign(other, []byte(testSecret), e.now(), b3).Get(signature.HeaderSignature)
			rc := newReceiver(t, nil)
			admin := e.client("admin")
			resp, body := sendForm(t, admin, e.ts.URL+"/targets", map[string]string{
				"name": "app", "url": rc.srv.URL + "/hook", "default_mode": "resign",
				"scheme": string(tt.scheme), "secret": targetSecret}, false)
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("create target = %d %s", resp.StatusCode, body)
			}

			e.advance(2 * time.Second) // the fresh timestamp is the replay's, not the delivery's
			res := e.apiReplay(e.client("operator"), id, map[string]string{"target": "app",
				"secret": tt.secret})
			if res.status != http.StatusCreated || !res.attempt.OK {
				t.Fatalf("replay = %d %s", res.status, res.raw)
			}
			got := rc.requests()[0]

			// The receiver verifies with its secret, under the chosen scheme.
			v := signature.Verifier{Tolerance: 5 * time.Second, Now: e.now}
			vr := v.Verify(got.header, got.body, []signature.Secret{{Label: "mine", Key: []byte(tt.key)}})
			if !vr.OK || vr.Scheme != tt.scheme {
				t.Errorf("receiver verify = %+v, want OK under %s", vr, tt.scheme)
			}
			if string(got.body) != string(b3) {
				t.Errorf("body changed: %q", got.body)
			}
			if ct := got.header.Get("Content-Type"); ct != contentType {
				t.Errorf("Content-Type = %q, want the original %q", ct, contentType)
			}
			if tt.wantSig != "" && got.header.Get(signature.HeaderSignature) != tt.wantSig {
				t.Errorf("Plaud-Signature = %s, want %s", got.header.Get(signature.HeaderSignature), tt.wantSig)
			}
			if tt.scheme == signature.SchemeEmbedded {
				if ts := got.header.Get(signature.HeaderTimestamp); ts != strconv.FormatInt(e.now().Unix(), 10) {
					t.Errorf("Plaud-Timestamp = %s, want the replay's time %d", ts, e.now().Unix())
				}
			} else if got.header.Get(signature.HeaderTimestamp) != "" {
				t.Errorf("devguide replay carries the original Plaud-Timestamp")
			}
			for _, vs := range got.header {
				for _, v := range vs {
					if strings.Contains(v, original) {
						t.Errorf("the original inbound signature was forwarded")
					}
				}
			}

			// The log names the secret by label only, and the UI shows 8 hex digits of the
			// signature, never all of it.
			if res.attempt.Scheme != string(tt.scheme) || res.attempt.SecretLabel == "" {
				t.Errorf("attempt scheme %q secret %q", res.attempt.Scheme, res.attempt.SecretLabel)
			}
			_, page := get(t, e.client("viewer"), fmt.Sprintf("%s/attempts/%d", e.ts.URL, res.attempt.ID))
			sig := got.header.Get(signature.HeaderSignature)
			sig = sig[strings.IndexByte(sig, '=')+1:]
			if strings.Contains(page, sig) || !strings.Contains(page, sig[:8]+"…") {
				t.Errorf("attempt page does not mask the signature to its first 8 hex digits")
			}
			if strings.Contains(page, targetSecret) {
				t.Errorf("attempt page shows the target's secret")
			}
		})
	}
}

// TestReplayEdited sends the body edited in the page, freshly signed; a body that is not JSON is
// refused before anything is sent.
func TestReplayEdited(t *testing.T) {
	e := mustReplayEnv(t)
	id := e.mustIngest(signature.SchemeDevguide, b1, nil)
	rc := newReceiver(t, nil)
	op := e.client("operator")
	u := fmt.Sprintf("%s/events/%d/replay", e.ts.URL, id)

	// A browser sends the textarea's line breaks as CR LF.
	edited := "{\r\n  \"event\": \"transcription.completed\",\r\n  \"data\": {\"file_id\": \"f_9\"}\r\n}"
	want := strings.ReplaceAll(edited, "\r\n", "\n")
	resp, body := sendForm(t, op, u, map[string]string{"url": rc.srv.URL, "mode": "edited",
		"scheme": "embedded", "body": edited}, false)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("edited replay = %d %s", resp.StatusCode, body)
	}
	got := rc.requests()[0]
	if string(got.body) != want {
		t.Errorf("body = %q, want the edited bytes %q", got.body, want)
	}
	v := signature.Verifier{Tolerance: 5 * time.Second, Now: e.now}
	if vr := v.Verify(got.header, got.body, []signature.Secret{{Key: []byte(testSecret)}}); !vr.OK {
		t.Errorf("edited body signature does not verify: %+v", vr)
	}
	as, _ := e.db.FindAttempts(context.Background(), db.AttemptFilter{EventID: id})
	if len(as) != 1 || string(as[0].RequestBody) != want || as[0].RequestSHA256 != shaHex([]byte(want)) {
		t.Errorf("attempt = %+v, want the edited body kept", as)
	}

	t.Run("ErrNotJSON", func(t *testing.T) {
		resp, body := sendForm(t, op, u, map[string]string{"url": rc.srv.URL, "mode": "edited",
			"body": `{"event": "x",}`}, true)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "not valid JSON") {
			t.Errorf("bad JSON = %d %s, want 422 naming the JSON error", resp.StatusCode, body)
		}
		if n := len(rc.requests()); n != 1 {
			t.Errorf("receiver got %d requests, want none more", n)
		}
	})
	t.Run("ErrTargetAndURL", func(t *testing.T) {
		res := e.apiReplay(op, id, map[string]string{"target": "x", "target_url": rc.srv.URL})
		if res.status != http.StatusUnprocessableEntity || !strings.Contains(res.raw, "not both") {
			t.Errorf("target and URL = %d %s, want 422", res.status, res.raw)
		}
	})
	t.Run("ErrForbidden", func(t *testing.T) {
		resp, _ := sendForm(t, e.client("viewer"), u, map[string]string{"url": rc.srv.URL}, false)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("viewer replay = %d, want 403", resp.StatusCode)
		}
	})
}

// TestReplayFailures records a 5xx, a timeout and a refused connection as such: failed, with no
// automatic retry loop for a manual replay.
func TestReplayFailures(t *testing.T) {
	e := mustReplayEnv(t, func(c *webConfig) {
		c.ReplayTimeout = 300 * time.Millisecond
		// A resolver whose server cannot be reached: every host name fails to resolve.
		c.ReplayResolver = &net.Resolver{PreferGo: true,
			Dial: func(context.Context, string, string) (net.Conn, error) {
				return nil, errors.New("no DNS server in this test")
			}}
	})
	id := e.mustIngest(signature.SchemeDevguide, b1, nil)
	op := e.client("operator")

	fail := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom <b>bold</b>", http.StatusInternalServerError)
	})
	slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers; the client gives up
	})
	selfSigned := httptest.NewTLSServer(http.NotFoundHandler()) // a certificate nobody trusts
	t.Cleanup(selfSigned.Close)
	closed := newReceiver(t, nil)
	closedURL := closed.srv.URL
	closed.srv.Close()

	tests := []struct {
		name, url, wantKind, wantOutcome string
		wantStatus                       int
	}{
		{"5xx", fail.srv.URL, "", "500 failed", 500},
		{"timeout", slow.srv.URL, "timeout", "timeout", 0},
		{"connection refused", closedURL, "connection_refused", "connection refused", 0},
		{"dns", "http://app.example.test/hook", "dns", "DNS failure", 0},
		{"tls", selfSigned.URL, "tls", "TLS error", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.apiReplay(op, id, map[string]string{"target_url": tt.url})
			a := res.attempt
			if res.status != http.StatusCreated || a.OK || a.ErrorKind != tt.wantKind ||
				a.StatusCode != tt.wantStatus || a.Outcome != tt.wantOutcome {
				t.Errorf("attempt = %d %s, want kind %q, status %d, outcome %q", res.status,
					res.raw, tt.wantKind, tt.wantStatus, tt.wantOutcome)
			}
		})
	}
	if n := len(fail.requests()); n != 1 {
		t.Errorf("failing target got %d requests, want 1 (no retry loop)", n)
	}

	// The event page lists them, the target's answer escaped.
	_, page := get(t, op, fmt.Sprintf("%s/events/%d", e.ts.URL, id))
	doc, _ := goquery.NewDocumentFromReader(strings.NewReader(page))
	var outcomes []string
	doc.Find("[data-testid=attempt-row] [data-testid=attempt-outcome]").Each(func(_ int, s *goquery.Selection) {
		outcomes = append(outcomes, s.Text())
	})
	want := "TLS error|DNS failure|connection refused|timeout|500 failed"
	if strings.Join(outcomes, "|") != want {
		t.Errorf("attempt log = %q, want newest first: %s", outcomes, want)
	}
	as, _ := e.db.FindAttempts(context.Background(), db.AttemptFilter{EventID: id})
	_, page = get(t, op, fmt.Sprintf("%s/attempts/%d", e.ts.URL, as[len(as)-1].ID))
	_, metrics := get(t, op, e.ts.URL+"/metrics")
	if !strings.Contains(metrics, `plaudhook_replay_attempts_total{outcome="failed"} 5`) {
		t.Errorf("metrics do not count the 5 failed attempts")
	}
	if strings.Contains(page, "<b>bold</b>") || !strings.Contains(page, "&lt;b&gt;bold&lt;/b&gt;") {
		t.Errorf("the target's answer is not escaped on the attempt page")
	}
}

// TestReplayIntoOwnWebhook replays into plaudhook's own /webhook with the same secret: the
// delivery verifies and is recognised as a duplicate (C18, C12).
func TestReplayIntoOwnWebhook(t *testing.T) {
	e := mustReplayEnv(t)
	id := e.mustIngest(signature.SchemeDevguide, b3, nil)
	op := e.client("operator")
	for i, mode := range []string{"original", "resign"} {
		res := e.apiReplay(op, id, map[string]string{"target_url": e.ts.URL + "/webhook",
			"mode": mode, "secret": "S"})
		if res.status != http.StatusCreated || res.attempt.StatusCode != 200 ||
			!strings.Contains(res.attempt.ResponseBody, `"duplicate":true`) {
			t.Errorf("%s into own webhook = %s, want 200 and a duplicate", mode, res.raw)
		}
		ev, _ := e.db.FindEventByID(context.Background(), id)
		if ev.DeliveryCount != i+2 {
			t.Errorf("%s: delivery count = %d, want %d", mode, ev.DeliveryCount, i+2)
		}
	}
	if _, next, _ := e.db.FindEvents(context.Background(), db.EventFilter{Limit: 1}); next != 0 {
		t.Errorf("a replay into our own webhook stored a second event")
	}

	// Unless "store as new" is chosen: then each such replay is a new event of its own, with
	// the same bytes, in every mode.
	for i, mode := range []string{"original", "resign"} {
		res := e.apiReplayJSON(op, id, map[string]any{"target_url": e.ts.URL + "/webhook",
			"mode": mode, "secret": "S", "store_as_new": true})
		var reply struct {
			EventID   int64 `json:"event_id"`
			Duplicate bool  `json:"duplicate"`
		}
		json.Unmarshal([]byte(res.attempt.ResponseBody), &reply)
		if res.status != http.StatusCreated || res.attempt.StatusCode != 200 || reply.Duplicate ||
			reply.EventID == 0 || reply.EventID == id {
			t.Fatalf("%s, store as new = %s, want 200 and a new event", mode, res.raw)
		}
		got, _ := e.db.FindEventByID(context.Background(), reply.EventID)
		orig, _ := e.db.FindEventByID(context.Background(), id)
		if got.DeliveryCount != 1 || got.EventType != orig.EventType || orig.DeliveryCount != 3 {
			t.Errorf("%s: new event %+v, original %+v", mode, got, orig)
		}
		if n := countEvents(t, e.db); n != i+2 {
			t.Errorf("%s: events = %d, want %d", mode, n, i+2)
		}
	}

	// The same from the event page's form (its checkbox).
	resp, body := sendForm(t, op, fmt.Sprintf("%s/events/%d/replay", e.ts.URL, id),
		map[string]string{"url": e.ts.URL + "/webhook", "mode": "original", "store_as_new": "1"}, true)
	if resp.StatusCode != http.StatusOK || countEvents(t, e.db) != 4 {
		t.Errorf("form replay, store as new = %d, events %d; want 200 and a fourth event\n%s",
			resp.StatusCode, countEvents(t, e.db), body)
	}

	// The header cannot be forged: a made-up value on a correctly signed delivery is ignored,
	// and the delivery is the duplicate it is.
	h := signed(signature.SchemeDevguide, b3, e.now())
	h.Set(web.StoreAsNewHeader, strings.Repeat("ab", 16)+"."+strings.Repeat("00", 32))
	resp, body = e.post("/webhook", h, b3)
	if resp.StatusCode != 200 || !strings.Contains(body, `"duplicate":true`) {
		t.Errorf("forged store-as-new header = %d %s, want a duplicate", resp.StatusCode, body)
	}
}

// TestReplayPolicy proves C25 at the API and UI: with the default policy the metadata,
// link-local and unspecified addresses, non-HTTP schemes and a redirect to the metadata address
// are refused while loopback is attempted; with "public addresses only" every spelling of
// loopback is refused; an allow-list opens loopback again but never the metadata address. Every
// refusal: an explained error, an audit row, and no connection to a listener on that address.
func TestReplayPolicy(t *testing.T) {
	e := mustReplayEnv(t, func(c *webConfig) { c.ReplayTimeout = 500 * time.Millisecond })
	id := e.mustIngest(signature.SchemeDevguide, b1, nil)
	op, admin := e.client("operator"), e.client("admin")
	rc := newReceiver(t, nil)
	port := rc.port()

	setPolicy := func(mode, allow string) {
		t.Helper()
		resp, body := sendForm(t, admin, e.ts.URL+"/targets/policy",
			map[string]string{"mode": mode, "allow": allow}, false)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("set policy = %d %s", resp.StatusCode, body)
		}
	}
	refused := func(t *testing.T, u, wantReason string) {
		t.Helper()
		before, audits := rc.conns.Load(), len(auditActions(t, e.db, "replay.refused"))
		res := e.apiReplay(op, id, map[string]string{"target_url": u})
		if res.status != http.StatusForbidden || res.attempt.ErrorKind != "refused_by_policy" ||
			res.attempt.Error != "target not allowed: "+wantReason {
			t.Errorf("%s = %d %s, want 403 \"target not allowed: %s\"", u, res.status, res.raw, wantReason)
		}
		if n := rc.conns.Load() - before; n != 0 {
			t.Errorf("%s: the listener saw %d connections, want 0", u, n)
		}
		es := auditActions(t, e.db, "replay.refused")
		if len(es) != audits+1 || es[0].Actor != "operator" || es[0].Target != u ||
			!strings.Contains(es[0].Detail, wantReason) {
			t.Errorf("%s: audit = %+v, want a replay.refused row by operator naming the reason", u, es)
		}
	}
	attempted := func(t *testing.T, u string) {
		t.Helper()
		before := rc.conns.Load()
		res := e.apiReplay(op, id, map[string]string{"target_url": u})
		if res.status != http.StatusCreated || !res.attempt.OK {
			t.Errorf("%s = %d %s, want it attempted", u, res.status, res.raw)
		}
		if rc.conns.Load() == before {
			t.Errorf("%s: no connection reached the listener", u)
		}
	}

	t.Run("default", func(t *testing.T) {
		refused(t, "http://169.254.169.254/latest/meta-data/", "cloud metadata address")
		refused(t, "http://[fd00:ec2::254]/", "cloud metadata address")
		refused(t, "http://169.254.10.10:"+port+"/", "link-local address")
		refused(t, "http://0.0.0.0:"+port+"/", "unspecified address")
		refused(t, "file:///etc/passwd", "scheme not allowed")
		refused(t, "gopher://x/", "scheme not allowed")
		attempted(t, "http://127.0.0.1:"+port+"/")
		attempted(t, "http://localhost:"+port+"/")
	})

	t.Run("redirect", func(t *testing.T) {
		redir := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		})
		// Not followed by default, and refused since it points at the metadata address: the
		// 302 is recorded with the reason, and the refusal audited.
		before := len(auditActions(t, e.db, "replay.refused"))
		res := e.apiReplay(op, id, map[string]string{"target_url": redir.srv.URL})
		if res.status != http.StatusForbidden || res.attempt.StatusCode != http.StatusFound || res.attempt.OK ||
			!strings.Contains(res.attempt.Error, "redirect to http://169.254.169.254/latest/meta-data/: target not allowed: cloud metadata address") {
			t.Errorf("redirect not followed = %d %s, want the 302 refused as a redirect to the metadata address", res.status, res.raw)
		}
		if es := auditActions(t, e.db, "replay.refused"); len(es) != before+1 || es[0].Actor != "operator" {
			t.Errorf("refused redirect audit = %+v, want one more row by operator", es)
		}
		// A target that follows redirects has the hop refused.
		sendForm(t, admin, e.ts.URL+"/targets", map[string]string{"name": "redir",
			"url": redir.srv.URL, "default_mode": "original", "follow_redirects": "1"}, false)
		res = e.apiReplay(op, id, map[string]string{"target": "redir"})
		if res.status != http.StatusForbidden || !strings.Contains(res.attempt.Error, "cloud metadata address") {
			t.Errorf("followed redirect = %d %s, want the hop refused", res.status, res.raw)
		}
	})

	t.Run("public_only", func(t *testing.T) {
		setPolicy("public_only", "")
		if es := auditActions(t, e.db, "replay.policy"); len(es) == 0 || es[0].Actor != "admin" {
			t.Errorf("policy change not audited: %+v", es)
		}
		for _, host := range []string{"127.0.0.1", "0x7f000001", "2130706433", "127.1",
			"[::ffff:127.0.0.1]", "[::1]"} {
			refused(t, "http://"+host+":"+port+"/", "loopback address")
		}
		refused(t, "http://localhost:"+port+"/", "loopback address") // checked on the resolved IP
		refused(t, "http://10.0.0.5/", "private address")
		refused(t, "http://169.254.169.254/", "cloud metadata address")

		// The UI explains a refusal in place.
		resp, body := sendForm(t, op, fmt.Sprintf("%s/events/%d/replay", e.ts.URL, id),
			map[string]string{"url": "http://127.0.0.1:" + port + "/"}, true)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "target not allowed: loopback address") {
			t.Errorf("UI refusal = %d %s, want the reason shown", resp.StatusCode, body)
		}
	})

	t.Run("allow-list 10.0.0.0/24", func(t *testing.T) {
		// C25's allow-list: it opens only its own range (10.0.0.5 is allowed, proven in
		// web/replay without sending traffic off this machine); loopback stays refused and
		// the metadata address can never be opened.
		setPolicy("public_only", "10.0.0.0/24")
		refused(t, "http://127.0.0.1:"+port+"/", "loopback address")
		refused(t, "http://localhost:"+port+"/", "loopback address")
		refused(t, "http://10.0.1.5/", "private address")
		refused(t, "http://169.254.169.254/latest/meta-data/", "cloud metadata address")
	})

	t.Run("allow-list", func(t *testing.T) {
		setPolicy("public_only", "127.0.0.0/8")
		attempted(t, "http://127.0.0.1:"+port+"/")
		refused(t, "http://169.254.169.254/", "cloud metadata address")
	})

	t.Run("ErrBadPolicy", func(t *testing.T) {
		resp, body := sendForm(t, admin, e.ts.URL+"/targets/policy",
			map[string]string{"mode": "public_only", "allow": "not-an-address"}, false)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "not-an-address") {
			t.Errorf("bad allow entry = %d, want 422 naming it", resp.StatusCode)
		}
		resp, _ = sendForm(t, op, e.ts.URL+"/targets/policy", map[string]string{"mode": "default"}, false)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("operator sets policy = %d, want 403", resp.StatusCode)
		}
	})
}

// TestTargetSecretsHidden saves a target with its own secret and an Authorization header: the
// receiver gets the header, but no page, attempt record or audit row shows its value.
func TestTargetSecretsHidden(t *testing.T) {
	e := mustReplayEnv(t)
	id := e.mustIngest(signature.SchemeDevguide, b1, nil)
	rc := newReceiver(t, nil)
	admin := e.client("admin")
	token := "Bearer tok_very_secret_123456"
	resp, body := sendForm(t, admin, e.ts.URL+"/targets", map[string]string{"name": "app",
		"url": rc.srv.URL, "default_mode": "resign", "secret": "  " + targetSecret + "\n",
		"headers": "Authorization: " + token + "\nX-Team: blue"}, false)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create target = %d %s", resp.StatusCode, body)
	}
	res := e.apiReplay(e.client("operator"), id, map[string]string{"target": "app"})
	if !res.attempt.OK {
		t.Fatalf("replay = %s", res.raw)
	}
	got := rc.requests()[0]
	if got.header.Get("Authorization") != token || got.header.Get("X-Team") != "blue" {
		t.Errorf("receiver headers = %v, want the target's extra headers", got.header)
	}
	v := signature.Verifier{Tolerance: time.Minute, Now: e.now}
	if vr := v.Verify(got.header, got.body, []signature.Secret{{Key: []byte(targetSecret)}}); !vr.OK {
		t.Errorf("the target's secret (trimmed) does not verify: %+v", vr)
	}

	// Nowhere in clear: the attempt record, the API answer, the pages, the audit log.
	as, _ := e.db.FindAttempts(context.Background(), db.AttemptFilter{EventID: id})
	if h := as[0].RequestHeader.Get("Authorization"); h != "(hidden)" {
		t.Errorf("stored Authorization = %q, want (hidden)", h)
	}
	_, targets := get(t, admin, e.ts.URL+"/targets")
	tg, _ := e.db.FindTargetByName(context.Background(), "app")
	_, edit := get(t, admin, fmt.Sprintf("%s/targets/%d", e.ts.URL, tg.ID))
	_, attempt := get(t, admin, fmt.Sprintf("%s/attempts/%d", e.ts.URL, as[0].ID))
	var audit []string
	for _, a := range auditActions(t, e.db, "target.") {
		audit = append(audit, a.Detail)
	}
	for name, text := range map[string]string{"api": res.raw, "targets page": targets,
		"edit page": edit, "attempt page": attempt, "audit": strings.Join(audit, "\n")} {
		if strings.Contains(text, "tok_very_secret") || strings.Contains(text, targetSecret) {
			t.Errorf("%s shows a secret value", name)
		}
	}
	if !strings.Contains(targets, "Authorization") {
		t.Errorf("targets page does not name the extra header")
	}

	// Editing without retyping keeps them; viewers and operators cannot see targets.
	sendForm(t, admin, fmt.Sprintf("%s/targets/%d", e.ts.URL, tg.ID), map[string]string{
		"name": "app", "url": rc.srv.URL, "default_mode": "resign"}, false)
	keys, err := e.db.FindTargetKeys(context.Background(), tg.ID)
	if err != nil || string(keys.Secret) != targetSecret || keys.Headers.Get("Authorization") != token {
		t.Errorf("after an edit keys = %v %v, want them kept", keys, err)
	}
	for _, who := range []string{"viewer", "operator"} {
		if resp, _ := get(t, e.client(who), e.ts.URL+"/targets"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s GET /targets = %d, want 403", who, resp.StatusCode)
		}
	}
	// Deleting the target keeps its attempts, under its name.
	resp, _ = sendForm(t, admin, fmt.Sprintf("%s/targets/%d/delete", e.ts.URL, tg.ID), nil, false)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete target = %d", resp.StatusCode)
	}
	as, _ = e.db.FindAttempts(context.Background(), db.AttemptFilter{EventID: id})
	if len(as) != 1 || as[0].TargetName != "app" || as[0].TargetID != 0 {
		t.Errorf("after delete: attempts = %+v, want the attempt kept with the name", as)
	}
	resp, body = sendForm(t, admin, e.ts.URL+"/targets", map[string]string{"name": "bad",
		"url": rc.srv.URL, "default_mode": "original", "headers": "Plaud-Signature: x"}, false)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "set by plaudhook") {
		t.Errorf("reserved header = %d, want 422", resp.StatusCode)
	}
}

// TestCopyAsCurl runs the event page's curl command with the real curl: the receiver gets the
// stored body byte for byte with its signature, which verifies.
func TestCopyAsCurl(t *testing.T) {
	e := mustReplayEnv(t)
	body := []byte("{\"event\":\"x\",\"data\":{\"q\":\"it's \\\"quoted\\\" $HOME `cmd` \\\\ 会議\"}}\n\n")
	id := e.mustIngest(signature.SchemeDevguide, body, nil)
	_, page := get(t, e.client("operator"), fmt.Sprintf("%s/events/%d", e.ts.URL, id))
	doc, _ := goquery.NewDocumentFromReader(strings.NewReader(page))
	cmd := doc.Find("[data-testid=curl]").Text()
	if !strings.Contains(cmd, signature.Sign(signature.SchemeDevguide, []byte(testSecret), e.now(), body).Get(signature.HeaderSignature)) {
		t.Fatalf("curl command lacks the full signature:\n%s", cmd)
	}
	_, viewerPage := get(t, e.client("viewer"), fmt.Sprintf("%s/events/%d", e.ts.URL, id))
	if strings.Contains(viewerPage, `data-testid="curl"`) || strings.Contains(viewerPage, `data-testid="replay-form"`) {
		t.Errorf("a viewer sees the replay form or the curl command")
	}

	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed: the command's text was checked, running it was not")
	}
	rc := newReceiver(t, nil)
	script := strings.Replace(cmd, "URL=", "URL="+shellQuote(rc.srv.URL)+" #", 1)
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("run curl: %v\n%s", err, out)
	}
	got := rc.requests()[0]
	if string(got.body) != string(body) {
		t.Errorf("curl sent %q, want %q", got.body, body)
	}
	v := signature.Verifier{Tolerance: time.Minute, Now: e.now}
	if vr := v.Verify(got.header, got.body, []signature.Secret{{Key: []byte(testSecret)}}); !vr.OK {
		t.Errorf("curl's request does not verify: %+v", vr)
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// TestAttemptStream reads the event page's stream: an attempt made meanwhile arrives as an
// "attempt-new" row, and a reconnect with Last-Event-ID gets what it missed.
func TestAttemptStream(t *testing.T) {
	e := mustReplayEnv(t)
	id := e.mustIngest(signature.SchemeDevguide, b1, nil)
	rc := newReceiver(t, nil)
	viewer, op := e.client("viewer"), e.client("operator")

	read := func(lastID string, during func()) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
			fmt.Sprintf("%s/events/%d/attempts/stream", e.ts.URL, id), nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := viewer.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("stream Content-Type = %q", ct)
		}
		go during()
		sc := bufio.NewScanner(resp.Body)
		var msg strings.Builder
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "id:") || strings.HasPrefix(line, "event:") || strings.HasPrefix(line, "data:") {
				msg.WriteString(line + "\n")
			}
			if line == "" && strings.Contains(msg.String(), "event: attempt-new") {
				return msg.String()
			}
		}
		t.Fatalf("stream ended without an attempt: %v", sc.Err())
		return ""
	}

	msg := read("", func() { e.apiReplay(op, id, map[string]string{"target_url": rc.srv.URL}) })
	as, _ := e.db.FindAttempts(context.Background(), db.AttemptFilter{EventID: id})
	if !strings.Contains(msg, fmt.Sprintf("id: %d", as[0].ID)) || !strings.Contains(msg, `data-testid="attempt-row"`) ||
		!strings.Contains(msg, "200 OK") {
		t.Errorf("live message = %q, want the attempt's row", msg)
	}

	// Missed while away: a second attempt, then a reconnect from the first.
	e.apiReplay(op, id, map[string]string{"target_url": rc.srv.URL})
	msg = read(strconv.FormatInt(as[0].ID, 10), func() {})
	if !strings.Contains(msg, fmt.Sprintf("id: %d", as[0].ID+1)) {
		t.Errorf("resumed message = %q, want attempt %d", msg, as[0].ID+1)
	}
}

// TestReplayResignStoredSecret signs with a secret stored (sealed) on the endpoint, chosen by
// its label, and lists it in the replay form; a label the endpoint lacks is refused.
func TestReplayResignStoredSecret(t *testing.T) {
	e := mustReplayEnv(t)
	id := e.mustIngest(signature.SchemeDevguide, b3, nil)
	stored := "stored_endpoint_secret_0123"
	if _, err := e.db.CreateSecret(context.Background(), db.NewSecret{
		EndpointID: db.DefaultEndpointID, Label: "rotated", Value: stored, CreatedBy: "admin"}); err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, nil)
	op := e.client("operator")

	_, page := get(t, op, fmt.Sprintf("%s/events/%d", e.ts.URL, id))
	if !strings.Contains(page, "endpoint secret: rotated") {
		t.Errorf("the replay form does not offer the stored secret")
	}
	res := e.apiReplay(op, id, map[string]string{"target_url": rc.srv.URL, "mode": "resign",
		"secret": "rotated", "scheme": "embedded"})
	if !res.attempt.OK || res.attempt.SecretLabel != "rotated" {
		t.Fatalf("replay = %s", res.raw)
	}
	got := rc.requests()[0]
	v := signature.Verifier{Tolerance: 5 * time.Second, Now: e.now}
	if vr := v.Verify(got.header, got.body, []signature.Secret{{Key: []byte(stored)}}); !vr.OK {
		t.Errorf("does not verify under the stored secret: %+v", vr)
	}

	res = e.apiReplay(op, id, map[string]string{"target_url": rc.srv.URL, "mode": "resign",
		"secret": "nope"})
	if res.status != http.StatusUnprocessableEntity || !strings.Contains(res.raw, `no secret labelled \"nope\"`) {
		t.Errorf("unknown label = %d %s, want 422", res.status, res.raw)
	}
}

// BenchmarkReplay measures one replay from a user's click to the recorded attempt: load the
// event, prepare (and for resign sign) the request, send it through the guarded client to a
// loopback receiver, store the attempt in SQLite and publish its row. It reports the median and
// the 99th percentile of single replays besides the mean; parallel=4 is a bulk replay's typical
// concurrency.
func BenchmarkReplay(b *testing.B) {
	for _, c := range []struct {
		name     string
		mode     db.ReplayMode
		scheme   string
		parallel int
	}{
		{"mode=original/parallel=1", db.ModeOriginal, "", 1},
		{"mode=resign/parallel=1", db.ModeResign, "embedded", 1},
		{"mode=original/parallel=4", db.ModeOriginal, "", 4},
	} {
		b.Run(c.name, func(b *testing.B) {
			e := mustReplayEnv(b)
			id := e.mustIngest(signature.SchemeDevguide, b3, nil)
			rc := newReceiver(b, nil)
			rq := web.ReplayRequest{EventID: id, URL: rc.srv.URL, Mode: c.mode, Scheme: c.scheme,
				Source: "api"}
			who := web.Actor{Name: "bench"}

			var mu sync.Mutex
			var took []time.Duration
			var next atomic.Int64
			n := int64(b.N)
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range c.parallel {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= n {
						start := time.Now()
						a, err := e.srv.Replay(context.Background(), who, rq)
						d := time.Since(start)
						if err != nil || !a.OK() {
							b.Errorf("replay: %v %+v", err, a)
							return
						}
						mu.Lock()
						took = append(took, d)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(took)
			if len(took) > 0 {
				b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}
