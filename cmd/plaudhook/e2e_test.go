package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
)

// TestEndToEndFixtures starts the real program, posts every fixture under its own scheme, and
// finds each stored byte-exact; posting them all again (under the other scheme) counts
// duplicates instead of duplicating.
func TestEndToEndFixtures(t *testing.T) {
	m := mustRunMain(t, fixtureTime.Add(20*time.Second))
	fixtures := loadFixtures(t)
	if len(fixtures) < 18 {
		t.Fatalf("fixtures = %d, want every file of the corpus", len(fixtures))
	}

	ids := map[string]int64{}
	for name, f := range fixtures {
		h := f.sig.Devguide
		if f.sig.Scheme == "embedded" {
			h = f.sig.Embedded
		}
		status, reply := postSigned(t, m.URL()+"/webhook", h, f.body)
		if status != 200 {
			t.Fatalf("%s: %d %s", name, status, reply)
		}
		var r struct {
			Status  string `json:"status"`
			EventID int64  `json:"event_id"`
		}
		json.Unmarshal([]byte(reply), &r)
		if r.Status != "success" || r.EventID == 0 {
			t.Fatalf("%s: reply %s", name, reply)
		}
		ids[name] = r.EventID
	}

	ctx := context.Background()
	for name, f := range fixtures {
		e, err := m.DB.FindEventByID(ctx, ids[name])
		if err != nil {
			t.Fatal(err)
		}
		d, err := m.DB.FindDeliveryByID(ctx, e.BodyDeliveryID)
		if err != nil {
			t.Fatal(err)
		}
		if shaHex(d.Body) != shaHex(f.body) || d.BodySHA256 != shaHex(f.body) {
			t.Errorf("%s: stored sha256 %s, want %s", name, shaHex(d.Body), shaHex(f.body))
		}
		if want := string(bytes.SplitN(f.body, []byte(`"`), 5)[3]); e.EventType == "" && strings.Contains(want, ".") {
			t.Errorf("%s: no event type stored", name)
		}
	}

	// Every fixture again, signed the other way: all acknowledged, none stored twice.
	for name, f := range fixtures {
		h := f.sig.Embedded
		if f.sig.Scheme == "embedded" {
			h = f.sig.Devguide
		}
		if status, reply := postSigned(t, m.URL()+"/webhook", h, f.body); status != 200 || !strings.Contains(reply, `"duplicate":true`) {
			t.Fatalf("%s again: %d %s, want 200 duplicate", name, status, reply)
		}
	}
	events, _, err := m.DB.FindEvents(ctx, db.EventFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != len(fixtures) {
		t.Fatalf("events = %d, want %d", len(events), len(fixtures))
	}
	for _, e := range events {
		if e.DeliveryCount != 2 {
			t.Errorf("event %d (%s) delivered %d times, want 2", e.ID, e.EventType, e.DeliveryCount)
		}
	}
}

// TestSendCommand runs `plaudhook send` for every built-in sample against the real server, as
// the README tells a newcomer to.
func TestSendCommand(t *testing.T) {
	m := mustRunMain(t, time.Time{})
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"send", "--url", m.URL() + "/webhook",
		"--secret", fixtureSecret, "--sample", "all"}, nil, &out, &errOut)
	if err != nil {
		t.Fatalf("send: %v\n%s%s", err, out.String(), errOut.String())
	}
	if got := strings.Count(out.String(), "200 OK"); got != 18 {
		t.Errorf("accepted = %d, want 18:\n%s", got, out.String())
	}
	events, _, _ := m.DB.FindEvents(context.Background(), db.EventFilter{Limit: 100})
	if len(events) != 18 {
		t.Errorf("events = %d, want 18", len(events))
	}

	// A wrong secret is refused, and send says so with a failing exit.
	out.Reset()
	err = run(context.Background(), []string{"send", "--url", m.URL() + "/webhook",
		"--secret", "wrong", "--sample", "device.synced"}, nil, &out, &errOut)
	if err == nil || !strings.Contains(out.String(), "signature_mismatch") {
		t.Errorf("send with wrong secret: err %v, output %q", err, out.String())
	}
}

// TestConfigValidation checks bad settings are all reported at once, and env fallbacks work.
func TestConfigValidation(t *testing.T) {
	env := map[string]string{"PLAUDHOOK_ADDR": "127.0.0.1:9999", "PLAUD_WEBHOOK_SECRET": " a , b\n"}
	getenv := func(k string) string { return env[k] }
	c, err := parseServeFlags(nil, getenv, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9999" || len(c.Secrets) != 2 || c.Secrets[0] != "a" || c.Secrets[1] != "b" {
		t.Errorf("config = %+v", c)
	}
	if c.BodyLimit != 25<<20 || c.Tolerance != 5*time.Minute || c.DB != "./data/plaudhook.db" {
		t.Errorf("defaults = %d %v %s", c.BodyLimit, c.Tolerance, c.DB)
	}
	_, err = parseServeFlags([]string{"--addr", "nope", "--body-limit", "huge", "--tolerance", "-1s", "--log-level", "loud"}, getenv, &bytes.Buffer{})
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"--addr", "--body-limit", "--tolerance", "--log-level"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
}
