package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/plaudhook/plaudhook/db"
)

// StoreAsNewHeader asks plaudhook's own webhook to store a replayed delivery as a new event
// instead of counting it as another delivery of the event it repeats (case C18: "store as
// new"). Its value is "<nonce>.<mac>": a random nonce and an HMAC, under a key only this
// server process holds, of the nonce and the body's SHA-256. A sender cannot make one, so the
// header cannot be used to get around duplicate detection; a copy of one that is sent again
// carries the same nonce and is a duplicate of the event it made.
const StoreAsNewHeader = "X-Plaudhook-Store-As-New"

// storeAsNewKey returns this process's key for StoreAsNewHeader, made on first use. It never
// leaves memory: a replay into this server is checked by the process that sent it.
func (s *Server) storeAsNewKey() []byte {
	s.rp.newKeyOnce.Do(func() {
		s.rp.newKey = make([]byte, 32)
		rand.Read(s.rp.newKey)
	})
	return s.rp.newKey
}

// storeAsNewValue is a fresh StoreAsNewHeader value for body.
func (s *Server) storeAsNewValue(body []byte) string {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	n := hex.EncodeToString(nonce)
	return n + "." + s.storeAsNewMAC(n, body)
}

func (s *Server) storeAsNewMAC(nonce string, body []byte) string {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, s.storeAsNewKey())
	m.Write([]byte("plaudhook store-as-new\x00" + nonce + "\x00"))
	m.Write(sum[:])
	return hex.EncodeToString(m.Sum(nil))
}

// applyStoreAsNew gives a verified delivery that carries a valid StoreAsNewHeader a dedupe key
// of its own, so it is stored as a new event. An invalid or foreign value is ignored: the
// delivery is deduplicated as usual.
func (s *Server) applyStoreAsNew(h http.Header, body []byte, ev *db.Event) {
	v := h.Get(StoreAsNewHeader)
	nonce, mac, ok := strings.Cut(v, ".")
	if !ok || len(nonce) != 32 {
		return
	}
	if !hmac.Equal([]byte(mac), []byte(s.storeAsNewMAC(nonce, body))) {
		return
	}
	ev.DedupeKey = "replay:" + nonce
}
