package views

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/plaudhook/plaudhook/db"
)

func TestAttemptOutcome(t *testing.T) {
	tests := []struct {
		name   string
		a      db.Attempt
		want   string
		wantOK bool
	}{
		{"2xx", db.Attempt{StatusCode: 204}, "204 No Content", true},
		{"5xx", db.Attempt{StatusCode: 503}, "503 failed", false},
		{"redirect not followed", db.Attempt{StatusCode: 302}, "302 failed", false},
		{"timeout", db.Attempt{ErrorKind: "timeout"}, "timeout", false},
		{"refused connection", db.Attempt{ErrorKind: "connection_refused"}, "connection refused", false},
		{"dns", db.Attempt{ErrorKind: "dns"}, "DNS failure", false},
		{"tls", db.Attempt{ErrorKind: "tls"}, "TLS error", false},
		{"policy", db.Attempt{ErrorKind: "refused_by_policy"}, "refused by policy", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := AttemptOutcome(tt.a)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("AttemptOutcome = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestCurlCommand checks the command's shape: the body fed by printf (no added newline, no
// option parsing of a leading @), every value single-quoted, headers sorted, and a file
// reference for a body a shell argument cannot carry.
func TestCurlCommand(t *testing.T) {
	h := http.Header{"Plaud-Signature": {"abc"}, "Content-Type": {"application/json"},
		"Content-Length": {"9"}, "X-Quote": {"it's"}}
	got := CurlCommand("http://app/hook?a=1&b=2", h, []byte("@etc/passwd 'x'"), "event-1.body")
	want := "URL='http://app/hook?a=1&b=2'\n" +
		"printf '%s' '@etc/passwd '\\''x'\\''' |\n" +
		"curl -sS -X POST \"$URL\" \\\n" +
		"  -H 'Content-Type: application/json' \\\n" +
		"  -H 'Plaud-Signature: abc' \\\n" +
		"  -H 'X-Quote: it'\\''s' \\\n" +
		"  --data-binary @-"
	if got != want {
		t.Errorf("CurlCommand =\n%s\nwant\n%s", got, want)
	}
	bin := CurlCommand("http://app/", nil, []byte{0xff, 0x00}, "event-1.body")
	if strings.Contains(bin, "printf") || !strings.HasSuffix(bin, "--data-binary @'event-1.body'") {
		t.Errorf("binary body command = %q, want it read from the downloaded file", bin)
	}
}

// TestAttemptRow renders one attempt row: its outcome, its error, and the target's answer never
// interpreted as HTML.
func TestAttemptRow(t *testing.T) {
	a := db.Attempt{ID: 9, EventID: 3, URL: "http://app/<x>", Mode: db.ModeResign,
		Scheme: "embedded", Source: "ui", Actor: "alice", StartedAt: time.Unix(0, 0),
		Duration: 12 * time.Millisecond, ErrorKind: "timeout", Error: "no complete answer <b>"}
	var buf bytes.Buffer
	if err := AttemptRow(a).Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader("<table>" + buf.String() + "</table>"))
	if err != nil {
		t.Fatal(err)
	}
	row := doc.Find("[data-testid=attempt-row]")
	if id, _ := row.Attr("id"); id != "attempt-9" {
		t.Errorf("row id = %q, want attempt-9", id)
	}
	if got := row.Find("[data-testid=attempt-outcome]").Text(); got != "timeout" {
		t.Errorf("outcome = %q, want timeout", got)
	}
	if got := row.Find("[data-testid=attempt-error]").Text(); got != "no complete answer <b>" {
		t.Errorf("error = %q", got)
	}
	if strings.Contains(buf.String(), "<b>") || strings.Contains(buf.String(), "<x>") {
		t.Errorf("row renders markup from the attempt: %s", buf.String())
	}
}
