package sealed_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/plaudhook/plaudhook/db/sealed"
)

func mustKeyring(t *testing.T, keys ...[]byte) *sealed.Keyring {
	t.Helper()
	k, err := sealed.New(keys[0], keys[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := mustKeyring(t, sealed.GenerateKey())
	secret := []byte("plaud_test_secret_do_not_use")
	aad := []byte("secret 7")

	id, box, err := k.Seal(secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	if id != k.KeyID() {
		t.Errorf("key id = %s, want the current key %s", id, k.KeyID())
	}
	if bytes.Contains(box, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	if got, want := len(box), 12+len(secret)+16; got != want {
		t.Errorf("sealed length = %d, want nonce + plaintext + tag = %d", got, want)
	}
	got, err := k.Open(id, box, aad)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, secret) {
		t.Errorf("opened = %q, want %q", got, secret)
	}

	// A fresh nonce every time: the same plaintext never seals to the same bytes.
	_, box2, _ := k.Seal(secret, aad)
	if bytes.Equal(box[:12], box2[:12]) || bytes.Equal(box, box2) {
		t.Error("two seals share a nonce")
	}
}

func TestOpenRefuses(t *testing.T) {
	k := mustKeyring(t, sealed.GenerateKey())
	other := mustKeyring(t, sealed.GenerateKey())
	id, box, _ := k.Seal([]byte("value"), []byte("secret 1"))
	flipped := append([]byte(nil), box...)
	flipped[len(flipped)-1] ^= 1

	tests := []struct {
		name string
		k    *sealed.Keyring
		id   string
		box  []byte
		aad  string
		want error
	}{
		{"other row id", k, id, box, "secret 2", sealed.ErrOpen},
		{"damaged", k, id, flipped, "secret 1", sealed.ErrOpen},
		{"too short", k, id, box[:20], "secret 1", sealed.ErrOpen},
		{"unknown key", other, id, box, "secret 1", sealed.ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.k.Open(tt.id, tt.box, []byte(tt.aad))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestRotation: a keyring with a new current key still opens what the old key sealed, and seals
// new values under the new key only.
func TestRotation(t *testing.T) {
	oldKey, newKey := sealed.GenerateKey(), sealed.GenerateKey()
	before := mustKeyring(t, oldKey)
	oldID, box, _ := before.Seal([]byte("value"), []byte("a"))

	after := mustKeyring(t, newKey, oldKey)
	if after.KeyID() == oldID || !after.Has(oldID) {
		t.Fatalf("current = %s, has old = %v; want a new current key that still holds %s", after.KeyID(), after.Has(oldID), oldID)
	}
	got, err := after.Open(oldID, box, []byte("a"))
	if err != nil || string(got) != "value" {
		t.Fatalf("open old value = %q, %v", got, err)
	}
	id, _, _ := after.Seal([]byte("value"), []byte("a"))
	if id != sealed.KeyID(newKey) {
		t.Errorf("sealed under %s, want the new key %s", id, sealed.KeyID(newKey))
	}
}

func TestParseKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, 32)
	tests := []struct {
		name  string
		in    string
		ok    bool
		wants []byte
	}{
		{"base64", sealed.EncodeKey(key) + "\n", true, key},
		{"hex", hex.EncodeToString(key), true, key},
		{"url base64 unpadded", strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(sealed.EncodeKey(key)), "="), true, key},
		{"short", sealed.EncodeKey(key[:16]), false, nil},
		{"junk", "not a key", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sealed.ParseKey(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if tt.ok && !bytes.Equal(got, tt.wants) {
				t.Errorf("key = %x, want %x", got, tt.wants)
			}
		})
	}
	if _, err := sealed.New(key[:16]); err == nil {
		t.Error("New accepted a 16-byte key")
	}
}
