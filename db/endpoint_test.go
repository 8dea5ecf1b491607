package db

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestEndpointCRUD(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{Sealer: mustSealer(t)})

	e, err := d.CreateEndpoint(ctx, Endpoint{Slug: "meetings", Name: " Meetings ",
		ExpectedTypes: []string{"transcription.completed, transcription.failed", "transcription.completed"}})
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "Meetings" || !slices.Equal(e.ExpectedTypes, []string{"transcription.completed", "transcription.failed"}) || e.Path() != "/webhook/meetings" {
		t.Errorf("created = %+v", e)
	}

	var ve *ValidationError
	for name, bad := range map[string]Endpoint{
		"bad slug":  {Slug: "Has Spaces", Name: "x"},
		"dash end":  {Slug: "a-", Name: "x"},
		"no name":   {Slug: "ok", Name: ""},
		"bad types": {Slug: "ok2", Name: "x", ExpectedTypes: []string{"a<b>"}},
	} {
		if _, err := d.CreateEndpoint(ctx, bad); !errors.As(err, &ve) {
			t.Errorf("%s: err = %v, want a ValidationError", name, err)
		}
	}
	if _, err := d.CreateEndpoint(ctx, Endpoint{Slug: "meetings", Name: "again"}); !errors.Is(err, ErrConflict) {
		t.Errorf("same slug: %v, want ErrConflict", err)
	}

	// Update: fields change; the default endpoint keeps its slug.
	note, slug := "from the Plaud portal", "calls"
	u, err := d.UpdateEndpoint(ctx, e.ID, EndpointUpdate{Slug: &slug, Note: &note, ExpectedTypes: &[]string{}})
	if err != nil || u.Slug != "calls" || u.Note != note || len(u.ExpectedTypes) != 0 || u.Name != "Meetings" {
		t.Fatalf("updated = %+v, %v", u, err)
	}
	other := "other"
	if _, err := d.UpdateEndpoint(ctx, DefaultEndpointID, EndpointUpdate{Slug: &other}); !errors.As(err, &ve) {
		t.Errorf("renaming default: %v, want a ValidationError", err)
	}
	if _, err := d.UpdateEndpoint(ctx, 999, EndpointUpdate{Note: &note}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown endpoint: %v, want ErrNotFound", err)
	}

	all, _ := d.FindEndpoints(ctx)
	if len(all) != 2 || all[0].Slug != "default" || all[0].Path() != "/webhook" {
		t.Fatalf("endpoints = %+v, want default first", all)
	}
	// The default endpoint is dated by the migration that created it, not 1970.
	if age := time.Since(all[0].CreatedAt); age < 0 || age > time.Hour {
		t.Errorf("default endpoint created_at = %v, want about now", all[0].CreatedAt)
	}

	// Delete takes its secrets and deliveries along; the default endpoint stays.
	mustCreateSecret(t, d, e.ID, "s", "value")
	in := verified([]byte("x"), "k")
	in.Delivery.EndpointID = e.ID
	if _, err := d.CreateDelivery(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteEndpoint(ctx, DefaultEndpointID); !errors.As(err, &ve) {
		t.Errorf("delete default: %v", err)
	}
	if err := d.DeleteEndpoint(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.FindEndpointBySlug(ctx, "calls"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted endpoint still found: %v", err)
	}
	if s, _ := d.FindSecrets(ctx, e.ID); len(s) != 0 {
		t.Errorf("secrets left = %d", len(s))
	}
	if ds, _ := d.FindDeliveries(ctx, DeliveryFilter{}); len(ds) != 0 {
		t.Errorf("deliveries left = %d", len(ds))
	}
}

// TestUnexpectedEventType: events whose type the endpoint does not list are flagged; an endpoint
// listing none flags nothing.
func TestUnexpectedEventType(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	types := []string{"transcription.completed"}
	if _, err := d.UpdateEndpoint(ctx, 1, EndpointUpdate{ExpectedTypes: &types}); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"transcription.completed", "device.synced", "transcription.completed.x"} {
		in := verified([]byte(typ), typ)
		in.Event.EventType = typ
		if _, err := d.CreateDelivery(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	events, _, _ := d.FindEvents(ctx, EventFilter{})
	got := map[string]bool{}
	for _, e := range events {
		got[e.EventType] = e.Unexpected
	}
	want := map[string]bool{"transcription.completed": false, "device.synced": true, "transcription.completed.x": true}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s unexpected = %v, want %v", k, got[k], v)
		}
	}

	// No expected types: nothing is flagged.
	if _, err := d.UpdateEndpoint(ctx, 1, EndpointUpdate{ExpectedTypes: &[]string{}}); err != nil {
		t.Fatal(err)
	}
	e, _ := d.FindEventByID(ctx, events[0].ID)
	if e.Unexpected {
		t.Errorf("flagged with no expected types: %+v", e)
	}
}

func TestEndpointHealth(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	now := testNow.Add(30 * time.Minute) // 12:30

	add := func(ago time.Duration, verdict Verdict, reason string, skewS int64, typ string) {
		t.Helper()
		in := verified([]byte(ago.String()+reason+typ), ago.String()+reason+typ)
		if verdict == Rejected {
			in = rejected([]byte(ago.String()+reason), reason)
			if skewS != 0 {
				ms := skewS * 1000
				in.Delivery.SkewMS = &ms
			}
		} else {
			in.Event.EventType = typ
		}
		in.Delivery.ReceivedAt = now.Add(-ago)
		if _, err := d.CreateDelivery(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	add(10*time.Minute, Verified, "", 0, "transcription.completed")
	add(20*time.Minute, Verified, "", 0, "device.synced")
	add(3*time.Hour, Verified, "", 0, "transcription.completed")
	add(2*24*time.Hour, Verified, "", 0, "transcription.completed")
	add(8*24*time.Hour, Verified, "", 0, "old.type")
	for i := range 6 {
		add(time.Duration(i+1)*time.Minute, Rejected, "timestamp_out_of_tolerance", 400+int64(i), "")
	}
	add(5*time.Minute, Rejected, "timestamp_out_of_tolerance", -1796299200000/1000, "") // ms timestamp: not a clock
	add(30*time.Hour, Rejected, "signature_mismatch", 0, "")

	h, err := d.FindEndpointHealth(ctx, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	if h.LastDeliveryAt != now.Add(-time.Minute) {
		t.Errorf("last delivery = %v, want %v", h.LastDeliveryAt, now.Add(-time.Minute))
	}
	if h.Verified24h != 3 || h.Verified7d != 4 || h.Rejected24h != 7 || h.Rejected7d != 8 {
		t.Errorf("counts 24h %d/%d, 7d %d/%d; want 3/7, 4/8", h.Verified24h, h.Rejected24h, h.Verified7d, h.Rejected7d)
	}
	if len(h.Reasons) != 2 || h.Reasons[0] != (Count{"timestamp_out_of_tolerance", 7}) || h.Reasons[1] != (Count{"signature_mismatch", 1}) {
		t.Errorf("reasons = %+v", h.Reasons)
	}
	if len(h.Types) != 3 || h.Types[0] != (Count{"transcription.completed", 3}) {
		t.Errorf("types = %+v", h.Types)
	}
	if len(h.Hours) != ChartHours || !h.Hours[ChartHours-1].Start.Equal(testNow) {
		t.Fatalf("hours = %d, last starts %v; want %d ending with the current hour", len(h.Hours), h.Hours[len(h.Hours)-1].Start, ChartHours)
	}
	if last := h.Hours[ChartHours-1]; last.Verified != 2 || last.Rejected != 7 {
		t.Errorf("current hour = %+v, want 2 verified, 7 rejected", last)
	}
	if three := h.Hours[ChartHours-4]; three.Verified != 1 {
		t.Errorf("hour 09:00 = %+v, want 1 verified", three)
	}
	// Six skew rejections in the last hour, median 403 s; the millisecond one is left out.
	if h.Skew.Count != 6 || h.Skew.MedianSeconds != 403 {
		t.Errorf("skew = %+v, want 6 with median 403", h.Skew)
	}

	// The list's cheaper traffic query agrees with the health page.
	tr, err := d.FindEndpointTraffic(ctx, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	want := EndpointTraffic{LastDeliveryID: h.LastDeliveryID, LastDeliveryAt: h.LastDeliveryAt,
		Verified24h: 3, Rejected24h: 7}
	if tr != want || tr.LastDeliveryID == 0 {
		t.Errorf("traffic = %+v, want %+v", tr, want)
	}
	if tr, err := d.FindEndpointTraffic(ctx, 99, now); err != nil || tr != (EndpointTraffic{}) {
		t.Errorf("traffic of an endpoint without deliveries = %+v, %v; want nothing", tr, err)
	}
}

// BenchmarkEndpointHealth measures an endpoint page's queries ("health") and the endpoint list's
// ("traffic") over 200,000 deliveries and events spread across the last 7 days.
func BenchmarkEndpointHealth(b *testing.B) {
	ctx := context.Background()
	d := mustOpenDB(b, Options{})
	const n = 200_000
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	types := []string{"transcription.completed", "transcription.failed", "device.synced", "device.connected"}
	for i := range n {
		at := micros(testNow.Add(-time.Duration(i) * 3 * time.Second))
		verdict, reason := "verified", ""
		if i%50 == 0 {
			verdict, reason = "rejected", "signature_mismatch"
		}
		res, err := tx.Exec(`INSERT INTO deliveries (endpoint_id, received_at, method, path, headers,
			body_sha256, size, verdict, reason) VALUES (1, ?, 'POST', '/webhook', '{}', '', 10, ?, ?)`,
			at, verdict, reason)
		if err != nil {
			b.Fatal(err)
		}
		id, _ := res.LastInsertId()
		if verdict == "verified" {
			if _, err := tx.Exec(`INSERT INTO events (endpoint_id, dedupe_key, event_type, size,
				first_received_at, last_received_at, body_delivery_id) VALUES (1, ?, ?, 10, ?, ?, ?)`,
				id, types[i%len(types)], at, at, id); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.Run("health", func(b *testing.B) {
		for b.Loop() {
			h, err := d.FindEndpointHealth(ctx, 1, testNow)
			if err != nil || h.Verified7d == 0 {
				b.Fatal(h, err)
			}
		}
	})
	// What the endpoint list and GET /api/v1/endpoints pay per endpoint.
	b.Run("traffic", func(b *testing.B) {
		for b.Loop() {
			tr, err := d.FindEndpointTraffic(ctx, 1, testNow)
			if err != nil || tr.Verified24h == 0 {
				b.Fatal(tr, err)
			}
		}
	})
}
