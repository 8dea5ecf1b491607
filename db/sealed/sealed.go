// Package sealed encrypts small values at rest (webhook signing secrets) with AES-256-GCM under a
// master key that lives outside the database.
//
// Every Seal draws a fresh random 96-bit nonce and binds the ciphertext to caller-supplied
// additional data (the row id of the secret), so a sealed value copied into another row does not
// open. Each master key has a short id that is stored beside the ciphertext; a Keyring holds the
// current key, which seals, and any number of previous keys, which only open. Rotating the master
// key means: put the new key first, keep the old one after it, and re-seal every row.
//
// The package uses the standard library only and imports nothing from plaudhook.
package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a master key in bytes (AES-256).
const KeySize = 32

// Errors returned by Open. Callers test them with errors.Is.
var (
	// ErrUnknownKey means the value was sealed under a key the keyring does not hold.
	ErrUnknownKey = errors.New("sealed with an unknown master key")
	// ErrOpen means the value did not authenticate: wrong key, wrong additional data, or a
	// damaged ciphertext.
	ErrOpen = errors.New("sealed value does not open")
)

// Keyring seals with its current master key and opens with any key it holds. It is safe for
// concurrent use.
type Keyring struct {
	current string                 // id of the key that seals
	keys    map[string]cipher.AEAD // every key by id
}

// New builds a keyring whose current key is current; previous keys open values sealed before a
// rotation. Every key must be KeySize bytes.
func New(current []byte, previous ...[]byte) (*Keyring, error) {
	k := &Keyring{keys: map[string]cipher.AEAD{}}
	for i, key := range append([][]byte{current}, previous...) {
		if len(key) != KeySize {
			return nil, fmt.Errorf("master key #%d: %d bytes, want %d", i+1, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("master key #%d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("master key #%d: %w", i+1, err)
		}
		id := KeyID(key)
		if i == 0 {
			k.current = id
		}
		k.keys[id] = aead
	}
	return k, nil
}

// KeyID is the short public name of a master key: the first 16 hex digits of a SHA-256 over a
// fixed label and the key. It names the key in the database without revealing it.
func KeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("plaudhook master key id\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// KeyID returns the id of the current key, the one Seal uses.
func (k *Keyring) KeyID() string { return k.current }

// Has reports whether the keyring holds the key with id.
func (k *Keyring) Has(id string) bool {
	_, ok := k.keys[id]
	return ok
}

// Seal encrypts plaintext under the current key, bound to aad. It returns the id of the key used
// and the sealed value: the 12-byte nonce followed by the ciphertext and its 16-byte tag.
func (k *Keyring) Seal(plaintext, aad []byte) (string, []byte, error) {
	aead := k.keys[k.current]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return k.current, aead.Seal(nonce, nonce, plaintext, aad), nil
}

// Open decrypts a value sealed under the key with id and bound to aad. It returns an error
// wrapping ErrUnknownKey when the keyring lacks that key, and ErrOpen when the value does not
// authenticate.
func (k *Keyring) Open(id string, sealed, aad []byte) ([]byte, error) {
	aead, ok := k.keys[id]
	if !ok {
		return nil, fmt.Errorf("open: key %s: %w", id, ErrUnknownKey)
	}
	n := aead.NonceSize()
	if len(sealed) < n+aead.Overhead() {
		return nil, fmt.Errorf("open: %d bytes is too short: %w", len(sealed), ErrOpen)
	}
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, fmt.Errorf("open: %w", ErrOpen)
	}
	return plain, nil
}

// GenerateKey returns a new random master key.
func GenerateKey() []byte {
	key := make([]byte, KeySize)
	rand.Read(key) // never fails on supported platforms (crypto/rand panics otherwise)
	return key
}

// EncodeKey writes a key in the form ParseKey reads back: standard base64.
func EncodeKey(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

// ParseKey reads a master key written as 64 hex digits or as base64 (standard or URL alphabet,
// padded or not), surrounding whitespace ignored. The decoded key must be KeySize bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding,
		base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(b) != KeySize {
			return nil, fmt.Errorf("master key decodes to %d bytes, want %d", len(b), KeySize)
		}
		return b, nil
	}
	return nil, fmt.Errorf("master key is neither 64 hex digits nor base64 of %d bytes", KeySize)
}
