package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/plaudhook/plaudhook/db"
)

// auditRows returns the actions listed on an audit page, and the page's next link.
func auditRows(t *testing.T, c *http.Client, u string) ([]string, string) {
	t.Helper()
	resp, body := get(t, c, u)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d", u, resp.StatusCode)
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	doc.Find("[data-testid=audit-row]").Each(func(_ int, s *goquery.Selection) {
		actions = append(actions, s.AttrOr("data-action", ""))
	})
	next, _ := doc.Find("[data-testid=next-page]").Attr("href")
	return actions, next
}

// TestAuditPage: sign-ins, sign-outs and other actions land in the audit log; an admin reads it
// newest first and filters it by who, action prefix and day; older entries page.
func TestAuditPage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	// A day earlier: a failed sign-in. Today: viewer signs in and out, admin signs in.
	advance(e, -24*time.Hour)
	signInAttempt(t, e, "viewer", "wrong password")
	advance(e, 24*time.Hour)
	viewer := e.client("viewer")
	if status, _, _ := do(t, viewer, "POST", e.ts.URL+"/logout", nil); status != http.StatusSeeOther {
		t.Fatalf("logout = %d", status)
	}
	admin := e.client("admin")

	actions, next := auditRows(t, admin, e.ts.URL+"/audit")
	want := []string{"login.ok", "logout", "login.ok", "login.failed"}
	if strings.Join(actions, " ") != strings.Join(want, " ") || next != "" {
		t.Errorf("audit = %v next %q, want %v and no next page", actions, next, want)
	}

	day := testNow.Format(time.DateOnly)
	yesterday := testNow.AddDate(0, 0, -1).Format(time.DateOnly)
	filters := []struct {
		query string
		want  []string
	}{
		{"actor=viewer", []string{"logout", "login.ok"}},
		{"action=login.", []string{"login.ok", "login.ok", "login.failed"}},
		{"action=logout&actor=admin", nil},
		{"since=" + day, []string{"login.ok", "logout", "login.ok"}},
		{"until=" + yesterday, []string{"login.failed"}},
		{"since=" + yesterday + "&until=" + yesterday, []string{"login.failed"}},
	}
	for _, f := range filters {
		got, _ := auditRows(t, admin, e.ts.URL+"/audit?"+f.query)
		if strings.Join(got, " ") != strings.Join(f.want, " ") {
			t.Errorf("audit?%s = %v, want %v", f.query, got, f.want)
		}
	}
	if status, _, _ := do(t, admin, "GET", e.ts.URL+"/audit?since=last+week", nil); status != http.StatusUnprocessableEntity {
		t.Errorf("a bad date = %d, want 422", status)
	}

	// More than a page: the next link keeps the filter and walks to the end.
	for i := range 150 {
		e.db.CreateAuditEntry(ctx, db.AuditEntry{Actor: "cli", Action: "token.create", Target: "t" + itoa(int64(i))})
	}
	total := 0
	u := e.ts.URL + "/audit?" + url.Values{"action": {"token."}}.Encode()
	for pages := 0; u != ""; pages++ {
		got, next := auditRows(t, admin, u)
		for _, a := range got {
			if a != "token.create" {
				t.Fatalf("filtered page holds %s", a)
			}
		}
		total += len(got)
		u = ""
		if next != "" {
			u = e.ts.URL + next
		}
		if pages > 3 {
			t.Fatal("paging does not end")
		}
	}
	if total != 150 {
		t.Errorf("paged entries = %d, want 150", total)
	}
}
