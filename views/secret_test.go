package views

import (
	"bytes"
	"context"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/plaudhook/plaudhook/db"
)

// TestSecretSourceBadges: a secret from PLAUD_WEBHOOK_SECRET says so, the one plaudhook
// generated for trying it says that instead, and a stored one carries neither.
func TestSecretSourceBadges(t *testing.T) {
	rows := []SecretRow{
		{Secret: db.Secret{ID: 1, Label: "PLAUD_WEBHOOK_SECRET", Source: db.SourceEnvironment}, Status: "active"},
		{Secret: db.Secret{ID: 2, Label: "generated (webhook-secret)", Source: db.SourceEnvironment}, Status: "active"},
		{Secret: db.Secret{ID: 3, Label: "portal", Source: db.SourceStored}, Status: "active"},
	}
	var buf bytes.Buffer
	e := db.Endpoint{ID: 1, Slug: "default"}
	if err := SecretSection(e, EndpointPageProps{Endpoint: e, Secrets: rows}).Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	doc, err := goquery.NewDocumentFromReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"PLAUD_WEBHOOK_SECRET": "from environment",
		"generated (webhook-secret)": "generated for trying", "portal": ""}
	doc.Find("[data-testid=secret-row]").Each(func(_ int, s *goquery.Selection) {
		label := s.AttrOr("data-label", "")
		got := s.Find("td").First().Find(".badge").Text()
		if got != want[label] {
			t.Errorf("%s: badge %q, want %q", label, got, want[label])
		}
		delete(want, label)
	})
	if len(want) != 0 {
		t.Errorf("rows not rendered: %v", want)
	}
}
