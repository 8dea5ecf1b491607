package db

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db/sealed"
)

// mustSealer returns a keyring over a fresh random master key.
func mustSealer(tb testing.TB, keys ...[]byte) *sealed.Keyring {
	tb.Helper()
	if len(keys) == 0 {
		keys = [][]byte{sealed.GenerateKey()}
	}
	k, err := sealed.New(keys[0], keys[1:]...)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func mustCreateSecret(tb testing.TB, d *DB, endpointID int64, label, value string) Secret {
	tb.Helper()
	s, err := d.CreateSecret(context.Background(), NewSecret{EndpointID: endpointID, Label: label,
		Value: value, CreatedBy: "admin"})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestCleanSecretValue(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    string
		trimmed bool
		ok      bool
	}{
		{"plain", "plaud_test_secret_do_not_use", "plaud_test_secret_do_not_use", false, true},
		{"C17 pasted with whitespace", "  plaud_test_secret_do_not_use\n", "plaud_test_secret_do_not_use", true, true},
		{"CR LF", "abc\r\n", "abc", true, true},
		{"inner space", "plaud test", "", false, false},
		{"inner tab", "plaud\tsecret", "", false, false},
		{"control character", "plaud\x07secret", "", false, false},
		{"empty", " \n", "", true, false},
		{"invalid UTF-8", "plaud\xffsecret", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, trimmed, err := CleanSecretValue(tt.raw)
			var ve *ValidationError
			if tt.ok != (err == nil) || (err != nil && !errors.As(err, &ve)) {
				t.Fatalf("err = %v, want ok %v (a ValidationError otherwise)", err, tt.ok)
			}
			if got != tt.want || (tt.ok && trimmed != tt.trimmed) {
				t.Errorf("CleanSecretValue(%q) = %q, %v; want %q, %v", tt.raw, got, trimmed, tt.want, tt.trimmed)
			}
		})
	}
}

// TestSecretLifecycle: add, rotate (the old one retires for 26 h), revoke, and what verifies
// when.
func TestSecretLifecycle(t *testing.T) {
	ctx := context.Background()
	clock := testNow
	d := mustOpenDB(t, Options{Sealer: mustSealer(t), Now: func() time.Time { return clock }})

	old := mustCreateSecret(t, d, DefaultEndpointID, "old", "plaud_old_secret_do_not_use")
	if old.State != SecretActive || old.Fingerprint != Fingerprint([]byte("plaud_old_secret_do_not_use")) || len(old.Fingerprint) != 8 {
		t.Fatalf("created = %+v", old)
	}

	// Same label, same value, bad value, unknown endpoint: refused.
	for name, in := range map[string]NewSecret{
		"label in use":     {EndpointID: 1, Label: "old", Value: "another_value"},
		"value in use":     {EndpointID: 1, Label: "again", Value: "plaud_old_secret_do_not_use"},
		"control chars":    {EndpointID: 1, Label: "bad", Value: "a\x00b"},
		"empty label":      {EndpointID: 1, Label: " ", Value: "value_1"},
		"unknown endpoint": {EndpointID: 99, Label: "x", Value: "value_2"},
	} {
		if _, err := d.CreateSecret(ctx, in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	// Rotate: the new one is active, the old one retires for 26 hours.
	gen := d.SecretsGeneration()
	clock = clock.Add(time.Hour)
	s, retired, err := d.RotateSecret(ctx, NewSecret{EndpointID: 1, Label: "new",
		Value: "plaud_test_secret_do_not_use", CreatedBy: "admin"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.SecretsGeneration() == gen {
		t.Error("rotation did not change the secrets generation")
	}
	if len(retired) != 1 || retired[0].ID != old.ID || retired[0].State != SecretRetiring {
		t.Fatalf("retired = %+v, want the old secret retiring", retired)
	}
	if want := clock.Add(DefaultRetireAfter); !retired[0].RetireAt.Equal(want) {
		t.Errorf("retire at = %v, want %v", retired[0].RetireAt, want)
	}
	keys, err := d.FindSecretKeys(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || string(keys[0].Value) != "plaud_test_secret_do_not_use" || keys[0].ID != s.ID ||
		string(keys[1].Value) != "plaud_old_secret_do_not_use" {
		t.Fatalf("keys = %+v, want new then old with their values", keys)
	}
	oldKey := keys[1].Secret
	for _, tt := range []struct {
		at     time.Time
		usable bool
		status string
	}{
		{clock, true, "retiring"},
		{clock.Add(26*time.Hour - time.Second), true, "retiring"},
		{clock.Add(26 * time.Hour), false, "retired"},
	} {
		if oldKey.Usable(tt.at) != tt.usable || oldKey.Status(tt.at) != tt.status {
			t.Errorf("at %v: usable %v status %s, want %v %s", tt.at, oldKey.Usable(tt.at), oldKey.Status(tt.at), tt.usable, tt.status)
		}
	}

	// Revoke: at once, with the time; twice is refused.
	clock = clock.Add(time.Minute)
	r, err := d.RevokeSecret(ctx, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != SecretRevoked || !r.RevokedAt.Equal(clock) || r.Usable(clock) {
		t.Errorf("revoked = %+v", r)
	}
	if _, err := d.RevokeSecret(ctx, old.ID); err == nil {
		t.Error("revoked twice")
	}
	// A revoked label may be used again.
	mustCreateSecret(t, d, 1, "old", "a_third_value")
}

// TestSecretsEncryptedAtRest greps the database file, its WAL and shared memory for every secret
// value: none may appear in clear, while the labels beside them do (so the grep works).
func TestSecretsEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{Sealer: mustSealer(t)})
	values := []string{"plaud_test_secret_do_not_use", "plaud_old_secret_do_not_use", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	for i, v := range values {
		if i == 0 {
			mustCreateSecret(t, d, 1, "label-in-clear-0", v)
			continue
		}
		if _, _, err := d.RotateSecret(ctx, NewSecret{EndpointID: 1, Label: "label-in-clear-" + string(rune('0'+i)), Value: v}, 0); err != nil {
			t.Fatal(err)
		}
	}

	grep := func() (found []string, labels bool) {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			b, err := os.ReadFile(d.Path + suffix)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			for _, v := range values {
				if bytes.Contains(b, []byte(v)) {
					found = append(found, v+" in "+suffix)
				}
			}
			labels = labels || bytes.Contains(b, []byte("label-in-clear-2"))
		}
		return found, labels
	}
	found, labels := grep()
	if !labels {
		t.Fatal("the labels are not found either: the grep proves nothing")
	}
	if len(found) > 0 {
		t.Fatalf("secrets in clear: %v", found)
	}

	// After a checkpoint moves everything into the main file, still nothing.
	if _, err := d.w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	if found, _ := grep(); len(found) > 0 {
		t.Fatalf("secrets in clear after checkpoint: %v", found)
	}
}

// TestSealedValueBoundToRow: a ciphertext copied into another row does not open there.
func TestSealedValueBoundToRow(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{Sealer: mustSealer(t)})
	a := mustCreateSecret(t, d, 1, "a", "value_a")
	mustCreateSecret(t, d, 1, "b", "value_b")
	if _, err := d.w.Exec(`UPDATE secrets SET ciphertext = (SELECT ciphertext FROM secrets WHERE id = ?)
		WHERE label = 'b'`, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.FindSecretKeys(ctx, 1); !errors.Is(err, sealed.ErrOpen) {
		t.Fatalf("err = %v, want %v", err, sealed.ErrOpen)
	}
}

// TestMasterKeyRotation: secrets sealed under an old key open with a keyring that holds it, and
// ResealSecrets moves them to the new key, after which the old key is not needed.
func TestMasterKeyRotation(t *testing.T) {
	ctx := context.Background()
	oldKey, newKey := sealed.GenerateKey(), sealed.GenerateKey()
	d := mustOpenDB(t, Options{Sealer: mustSealer(t, oldKey)})
	mustCreateSecret(t, d, 1, "a", "value_a")
	path := d.Path
	d.Close()

	reopen := func(keys ...[]byte) *DB {
		d, err := Open(ctx, path, Options{Sealer: mustSealer(t, keys...)})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d = reopen(newKey, oldKey)
	ids, _ := d.FindSecretKeyIDs(ctx)
	if len(ids) != 1 || ids[0] != sealed.KeyID(oldKey) {
		t.Fatalf("key ids = %v, want the old key's", ids)
	}
	n, err := d.ResealSecrets(ctx)
	if err != nil || n != 1 {
		t.Fatalf("resealed %d, %v; want 1", n, err)
	}
	d.Close()

	d = reopen(newKey)
	defer d.Close()
	keys, err := d.FindSecretKeys(ctx, 1)
	if err != nil || len(keys) != 1 || string(keys[0].Value) != "value_a" || keys[0].KeyID != sealed.KeyID(newKey) {
		t.Fatalf("keys = %+v, %v", keys, err)
	}
}

func TestSyncEnvironmentSecrets(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	a := EnvSecret{Label: "PLAUD_WEBHOOK_SECRET #1", Fingerprint: Fingerprint([]byte("a"))}
	b := EnvSecret{Label: "PLAUD_WEBHOOK_SECRET #2", Fingerprint: Fingerprint([]byte("b"))}

	first, err := d.SyncEnvironmentSecrets(ctx, 1, []EnvSecret{a, b})
	if err != nil || len(first) != 2 || first[0].Source != SourceEnvironment {
		t.Fatalf("sync = %+v, %v", first, err)
	}

	// Swapped order swaps the labels but keeps the rows (and their counts).
	a.Label, b.Label = b.Label, a.Label
	again, err := d.SyncEnvironmentSecrets(ctx, 1, []EnvSecret{b, a})
	if err != nil {
		t.Fatal(err)
	}
	if again[0].ID != first[1].ID || again[0].Label != "PLAUD_WEBHOOK_SECRET #1" {
		t.Errorf("after swap = %+v, want b's row labelled #1", again)
	}

	// A secret no longer configured disappears; environment secrets cannot be revoked.
	if _, err := d.SyncEnvironmentSecrets(ctx, 1, []EnvSecret{a}); err != nil {
		t.Fatal(err)
	}
	all, _ := d.FindSecrets(ctx, 1)
	if len(all) != 1 || all[0].Fingerprint != a.Fingerprint {
		t.Fatalf("secrets = %+v, want only a", all)
	}
	var ve *ValidationError
	if _, err := d.RevokeSecret(ctx, all[0].ID); !errors.As(err, &ve) {
		t.Errorf("revoke environment secret: %v, want a ValidationError", err)
	}
}

// TestSecretMatchCounting: verified deliveries count on the secret that matched, inside the
// ingest commit.
func TestSecretMatchCounting(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{Sealer: mustSealer(t)})
	s := mustCreateSecret(t, d, 1, "S", "value")
	for i, at := range []time.Time{testNow.Add(-time.Hour), testNow, testNow.Add(-2 * time.Hour)} {
		in := verified([]byte{byte('a' + i)}, string(rune('a'+i)))
		in.Delivery.SecretID, in.Delivery.ReceivedAt = s.ID, at
		if _, err := d.CreateDelivery(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.CreateDelivery(ctx, rejected([]byte("x"), "signature_mismatch")); err != nil {
		t.Fatal(err)
	}
	got, err := d.FindSecretByID(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.MatchCount != 3 || !got.LastMatchedAt.Equal(testNow) {
		t.Errorf("match count %d, last %v; want 3, %v", got.MatchCount, got.LastMatchedAt, testNow)
	}
	ds, _ := d.FindDeliveries(ctx, DeliveryFilter{})
	if ds[len(ds)-1].SecretID != s.ID {
		t.Errorf("delivery secret id = %d, want %d", ds[len(ds)-1].SecretID, s.ID)
	}
}

// TestPromoteDelivery: a re-verified rejected delivery becomes verified in place and its event is
// stored through the ingest path, deduplicated like any other.
func TestPromoteDelivery(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	body := []byte(`{"event":"x","id":"evt_1"}`)

	// The same event already arrived once, verified.
	if _, err := d.CreateDelivery(ctx, verified(body, "id:evt_1")); err != nil {
		t.Fatal(err)
	}
	rej, err := d.CreateDelivery(ctx, rejected(body, "signature_mismatch"))
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := d.CreateDelivery(ctx, rejected([]byte(`{"id":"evt_2"}`), "signature_mismatch"))
	if err != nil {
		t.Fatal(err)
	}

	promote := func(id int64, body []byte, key string) (IngestResult, error) {
		in := verified(body, key)
		in.Promote = id
		in.Delivery.PromotedBy = "admin"
		return d.CreateDelivery(ctx, in)
	}
	t.Run("new event", func(t *testing.T) {
		out, err := promote(fresh.DeliveryID, []byte(`{"id":"evt_2"}`), "id:evt_2")
		if err != nil || out.DeliveryID != fresh.DeliveryID || out.EventID == 0 || out.Duplicate {
			t.Fatalf("promote = %+v, %v", out, err)
		}
		got, _ := d.FindDeliveryByID(ctx, fresh.DeliveryID)
		if got.Verdict != Verified || got.Reason != "" || got.EventID != out.EventID || got.PromotedBy != "admin" || !got.PromotedAt.Equal(testNow) {
			t.Errorf("delivery = %+v", got)
		}
		e, _ := d.FindEventByID(ctx, out.EventID)
		if e.BodyDeliveryID != fresh.DeliveryID {
			t.Errorf("event body delivery = %d, want %d", e.BodyDeliveryID, fresh.DeliveryID)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		out, err := promote(rej.DeliveryID, body, "id:evt_1")
		if err != nil || !out.Duplicate || out.DeliveryCount != 2 {
			t.Fatalf("promote = %+v, %v; want a duplicate counted on the stored event", out, err)
		}
		events, _, _ := d.FindEvents(ctx, EventFilter{})
		if len(events) != 2 {
			t.Errorf("events = %d, want 2", len(events))
		}
	})
	t.Run("ErrConflict", func(t *testing.T) {
		if _, err := promote(rej.DeliveryID, body, "id:evt_1"); !errors.Is(err, ErrConflict) {
			t.Fatalf("second promotion: %v, want ErrConflict", err)
		}
	})
}

func TestNoSealer(t *testing.T) {
	d := mustOpenDB(t, Options{})
	if _, err := d.CreateSecret(context.Background(), NewSecret{EndpointID: 1, Label: "a", Value: "b"}); !errors.Is(err, errNoSealer) {
		t.Fatalf("err = %v, want %v", err, errNoSealer)
	}
}
