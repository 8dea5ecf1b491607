package web_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/web/signature"
)

// BenchmarkIngest measures one delivery through the real router: read, verify, group commit to a
// real SQLite file with synchronous=FULL, answer 200. Every delivery is a distinct event; the
// senders run in parallel, so concurrent deliveries share commits as in production.
func BenchmarkIngest(b *testing.B) {
	for _, c := range []struct{ size, senders int }{{2 << 10, 1}, {2 << 10, 16}, {2 << 10, 64}, {40 << 10, 16}} {
		size := c.size
		b.Run(fmt.Sprintf("body=%dKB/senders=%d", size>>10, c.senders), func(b *testing.B) {
			b.SetParallelism(max(1, c.senders/runtime.GOMAXPROCS(0)))
			if c.senders == 1 {
				runtime.GOMAXPROCS(1)
				defer runtime.GOMAXPROCS(runtime.NumCPU())
			}
			e := newEnv(b, func(c *webConfig) { c.Now = time.Now })
			filler := bytes.Repeat([]byte("x"), size-64)
			var n atomic.Int64
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					body := fmt.Appendf(nil, `{"event":"bench","id":"evt_%d","data":"%s"}`, n.Add(1), filler)
					req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
					req.Header = signature.Sign(signature.SchemeDevguide, []byte(testSecret), time.Now(), body)
					w := httptest.NewRecorder()
					e.srv.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Errorf("status %d: %s", w.Code, w.Body.String())
						return
					}
				}
			})
		})
	}
}
