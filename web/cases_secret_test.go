package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
)

// step is one request of a CASES scenario and what must come of it.
type step struct {
	h      http.Header
	body   []byte
	at     time.Time // the server clock for this request (zero: T)
	status int
	reason string
	check  func(t *testing.T, e *secretEnv, d db.Delivery, r reply)
}

func hdrs(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// storedAs checks the stored delivery: verdict, scheme, secret label and body hash.
func storedAs(scheme, label, sha string) func(*testing.T, *secretEnv, db.Delivery, reply) {
	return func(t *testing.T, e *secretEnv, d db.Delivery, r reply) {
		t.Helper()
		if d.Verdict != db.Verified || d.Scheme != scheme || d.SecretLabel != label || d.EventID != r.EventID {
			t.Errorf("delivery = %s, scheme %q, secret %q, event %d; want verified, %q, %q, %d",
				d.Verdict, d.Scheme, d.SecretLabel, d.EventID, scheme, label, r.EventID)
		}
		full, _ := e.db.FindDeliveryByID(context.Background(), d.ID)
		if sha != "" && shaHex(full.Body) != sha {
			t.Errorf("stored sha256 = %s, want %s", shaHex(full.Body), sha)
		}
	}
}

// TestSignatureCasesStoredSecrets runs the signature cases of ../shared/cases/CASES.md (C1–C3,
// C5, C8, C10–C12, C14, C16) over HTTP against secrets stored encrypted in the database (the
// foundation's ingest tests run the same inputs against an environment secret). Every rejection
// must leave one rejected delivery with its reason and no event.
func TestSignatureCasesStoredSecrets(t *testing.T) {
	b3 := []byte("{ \"event\": \"transcription.completed\",\n  \"data\": { \"transcriptionId\": \"tr_0003\", \"file_id\": \"f_0003\", \"title\": \"R\\u00e9union\" } }")
	b5, _ := hex.DecodeString("7b226576656e74223a227472616e736372697074696f6e2e636f6d706c65746564222c2264617461223a7b2266696c655f6964223a22665f30303035222c227469746c65223a22436166c3a920e282b920e4bc9ae8adb020f09f988a227d7d")
	c8, _ := base64.StdEncoding.DecodeString("H4sIAAAAAAACA6tWSi1LzStRslIqKUrMK04uyiwoyczP00vOzy3ISS1JTVHSUUpJLElUsqpWSsvMSY3PTAGqTYs3MDAwBEqhaPJMARsDkautBQCzkATTWwAAAA==")
	form := []byte("payload=%7B%22text%22%3A%22*bold*%20note%22%7D&ts=1")
	b12 := []byte(`{"event":"device.recording_completed","data":{"file_id":"f_0012","event_id":"evt_0012"}}`)
	big := []byte(`{"event":"transcription.completed","data":{"file_id":"f_0010","text":"` + strings.Repeat("lorem ", (1<<20)/6-20) + `"}}`)
	big = append(big, bytes.Repeat([]byte(" "), (1<<20)-len(big))...) // exactly L = 1 MiB
	tooBig := append(bytes.Clone(big), ' ')
	zeros := strings.Repeat("0", 64)
	var thousand []string
	for range 1000 {
		thousand = append(thousand, zeros)
	}
	thousand = append(thousand, sigS)
	const b1SHA = "bc6b9b5e040845116c941c2428411c53851e35696e293fe25eb8fa850008162f"
	tts := func(d time.Duration) string { return itoa64(testNow.Add(d).Unix()) }

	cases := []struct {
		name  string
		old   bool // also store "old" (created before S), both active (C16)
		steps []step
	}{
		{"C1 raw baseline", false, []step{
			{hdrs("Plaud-Signature", sigS, "Content-Type", "application/json"), b1, time.Time{}, 200, "", storedAs("devguide", "S", b1SHA)},
		}},
		{"C1 tampered", false, []step{{hdrs("Plaud-Signature", sigS), bytes.Replace(b1, []byte("tr_0001"), []byte("tr_0002"), 1), time.Time{}, 400, "signature_mismatch", nil}}},
		{"C1 header absent", false, []step{{hdrs("Content-Type", "application/json"), b1, time.Time{}, 400, "missing_signature", nil}}},
		{"C1 header empty", false, []step{{hdrs("Plaud-Signature", ""), b1, time.Time{}, 400, "missing_signature", nil}}},
		{"C2 timestamped", false, []step{
			{hdrs("Plaud-Timestamp", "1796299200", "Plaud-Signature", "sha256=8ac13db87fdf5842d1ba6ae8629981ef7bf41aff9f0f364624a98917b2757f3d"), b1, testNow.Add(10 * time.Second), 200, "",
				func(t *testing.T, e *secretEnv, d db.Delivery, r reply) {
					storedAs("embedded", "S", b1SHA)(t, e, d, r)
					if d.SenderTimestamp != "1796299200" {
						t.Errorf("sender timestamp = %q", d.SenderTimestamp)
					}
				}},
		}},
		{"C2 timestamp outside the signed text changed", false, []step{
			{hdrs("Plaud-Timestamp", "1796299201", "Plaud-Signature", "sha256=8ac13db87fdf5842d1ba6ae8629981ef7bf41aff9f0f364624a98917b2757f3d"), b1, testNow.Add(10 * time.Second), 400, "signature_mismatch", nil},
		}},
		{"C3 raw bytes", false, []step{
			{hdrs("Plaud-Signature", "e18d55e294c0dc401d6fc6a9edda7a650a3e1e2ce60ae6c68fcaadbf2ae2a19a"), b3, time.Time{}, 200, "", storedAs("devguide", "S", "c14d3ac865d78e744c529a43282ed794d1881cc052bd2c206c44647e9a529bcd")},
		}},
		{"C3 re-serialisation signed", false, []step{{hdrs("Plaud-Signature", "95f03e089eb588059b7b85ea8429fdd2a2df42b01c25c8b2f3c95cc1d012f451"), b3, time.Time{}, 400, "signature_mismatch", nil}}},
		{"C5 multibyte UTF-8", false, []step{
			{hdrs("Plaud-Signature", "19b57294aa8d53c0d3cd5972cd8f5d5d58f8c2b3bbffc5d014b7c61454884371"), b5, time.Time{}, 200, "", storedAs("devguide", "S", shaHex(b5))},
		}},
		{"C5 ASCII-mangled signature", false, []step{{hdrs("Plaud-Signature", "80c1fe5217757afd174df7edda551560a2f88d52c1dcb96476412ae5b03279a9"), b5, time.Time{}, 400, "signature_mismatch", nil}}},
		{"C8 gzip signed over decoded bytes", false, []step{
			{hdrs("Plaud-Signature", sigS, "Content-Encoding", "gzip"), c8, time.Time{}, 200, "", storedAs("devguide", "S", b1SHA)},
		}},
		{"C8 gzip signed over wire bytes", false, []step{
			{hdrs("Plaud-Signature", "4f75b065c44c6387693b81045453a78701bd3bfb76a0bab4cc5015079d8ea064", "Content-Encoding", "gzip"), c8, time.Time{}, 200, "", storedAs("devguide+wire", "S", b1SHA)},
		}},
		{"C10 exactly the limit", false, []step{{devguide(testSecret, big), big, time.Time{}, 200, "", storedAs("devguide", "S", shaHex(big))}}},
		{"C10 one byte over", false, []step{{devguide(testSecret, tooBig), tooBig, time.Time{}, 413, "payload_too_large", nil}}},
		{"C11 form body", false, []step{
			{hdrs("Plaud-Signature", "0c720722cc7e9b3f297498d038404abff7636eda81e890a601cfa503dad0933f", "Content-Type", "application/x-www-form-urlencoded"), form, time.Time{}, 200, "", storedAs("devguide", "S", shaHex(form))},
		}},
		{"C11 text without Content-Type", false, []step{
			{hdrs("Plaud-Signature", "af513704b7f50d0929c34b5873c1c3ca74c04cc9fa503ba1fb92e7acede4370b"), []byte("hello plaud"), time.Time{}, 200, "", storedAs("devguide", "S", shaHex([]byte("hello plaud")))},
		}},
		{"C12 duplicates", false, []step{
			{hdrs("Plaud-Signature", "b41376619131978a730c1432aa8e76001cde4eb1d5e051384b230edcf8d02bad"), b12, time.Time{}, 200, "", nil},
			{hdrs("Plaud-Signature", "b41376619131978a730c1432aa8e76001cde4eb1d5e051384b230edcf8d02bad"), b12, testNow.Add(24 * time.Second), 200, "", nil},
			{hdrs("Plaud-Timestamp", tts(0), "Plaud-Signature", "sha256=52c618180db323d5db72219e96eb2b159a37ad28d6e40c91f70c1fac5d72bd5b"), b12, time.Time{}, 200, "", nil},
			{hdrs("Plaud-Timestamp", tts(24*time.Second), "Plaud-Signature", "sha256=344f9640c912cbc2cb5662cfd63cff139fcb68f73d5a3754d6b0101bca1e0bf5"), b12, testNow.Add(24 * time.Second), 200, "",
				func(t *testing.T, e *secretEnv, d db.Delivery, r reply) {
					events, _, _ := e.db.FindEvents(context.Background(), db.EventFilter{})
					if len(events) != 1 || events[0].DeliveryCount != 4 || !r.Duplicate {
						t.Errorf("events = %+v, duplicate %v; want one event delivered 4 times", events, r.Duplicate)
					}
				}},
		}},
		{"C14 tolerance", false, []step{
			{hdrs("Plaud-Timestamp", "1796298901", "Plaud-Signature", "sha256=200a57d20f3275402c54585f761b35f056808877484b51367fde34046ebdd0bc"), b1, time.Time{}, 200, "", nil},
			{hdrs("Plaud-Timestamp", "1796298899", "Plaud-Signature", "sha256=675feb52978513591705bf5bbdedcdcd1f7a6701faf0b9326ac2d8abeb6d9108"), b1, time.Time{}, 400, "timestamp_out_of_tolerance",
				func(t *testing.T, e *secretEnv, d db.Delivery, r reply) {
					if d.SkewMS == nil || *d.SkewMS != 301000 {
						t.Errorf("measured skew = %v, want 301 s", d.SkewMS)
					}
				}},
			{hdrs("Plaud-Timestamp", "1796299499", "Plaud-Signature", "sha256=7ff1b8fce03668d1b7d084a7221b1d1430e1c5767696c65ee589ad75723519b9"), b1, time.Time{}, 200, "", nil},
			{hdrs("Plaud-Timestamp", "1796299501", "Plaud-Signature", "sha256=6132b4afa75f5da31d579578596142c04703ad26a677687a99923b511a4d947b"), b1, time.Time{}, 400, "timestamp_out_of_tolerance", nil},
			{hdrs("Plaud-Timestamp", "abc", "Plaud-Signature", "sha256="+sigS), b1, time.Time{}, 400, "bad_timestamp", nil},
			{hdrs("Plaud-Timestamp", "1796299200000", "Plaud-Signature", "sha256=d4c00503647d6b2d4fc3c29dafc569383539c81c7ebb060d9775062f1a1e8136"), b1, time.Time{}, 400, "timestamp_out_of_tolerance", nil},
		}},
		{"C16 signed by the old secret", true, []step{
			{hdrs("Plaud-Signature", sigOld), b1, time.Time{}, 200, "", func(t *testing.T, e *secretEnv, d db.Delivery, r reply) {
				storedAs("devguide", "old", b1SHA)(t, e, d, r)
				if !d.SecretOld {
					t.Error("not marked: the sender still uses the old secret")
				}
				doc := e.deliveryDoc(e.client("viewer"), d.ID)
				if got := doc.Find("[data-testid=verified-by]").Text(); got != "old" {
					t.Errorf("verified by %q, want old", got)
				}
				if w := doc.Find("[data-testid=old-secret-warning]").Text(); !strings.Contains(w, "sender still uses the old secret") {
					t.Errorf("warning = %q", w)
				}
			}},
			{hdrs("Plaud-Signature", sigS), b1, time.Time{}, 200, "", func(t *testing.T, e *secretEnv, d db.Delivery, r reply) {
				if d.SecretLabel != "S" || d.SecretOld {
					t.Errorf("signed by new: secret %q, old %v", d.SecretLabel, d.SecretOld)
				}
			}},
			{hdrs("Plaud-Signature", zeros+","+sigS), b1, time.Time{}, 200, "", nil},
			{hdrs("Plaud-Signature", zeros+" "+sigS), b1, time.Time{}, 200, "", nil},
			{hdrs("Plaud-Signature", zeros, "Plaud-Signature", sigS), b1, time.Time{}, 200, "", nil},
			{hdrs("Plaud-Signature", strings.Join(thousand, ",")), b1, time.Time{}, 400, "signature_mismatch", nil},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newSecretEnv(t)
			ctx := context.Background()
			if tc.old {
				if _, err := e.db.CreateSecret(ctx, db.NewSecret{EndpointID: 1, Label: "old", Value: oldSecret}); err != nil {
					t.Fatal(err)
				}
				e.setClock(testNow.Add(time.Second)) // "new" is created after "old"
			}
			if _, err := e.db.CreateSecret(ctx, db.NewSecret{EndpointID: 1, Label: "S", Value: testSecret}); err != nil {
				t.Fatal(err)
			}
			for i, st := range tc.steps {
				at := st.at
				if at.IsZero() {
					at = testNow
				}
				e.setClock(at)
				resp, body := e.post("/webhook", st.h, st.body)
				if resp.StatusCode != st.status {
					t.Fatalf("step %d: status %d, want %d (%s)", i+1, resp.StatusCode, st.status, body)
				}
				var r reply
				json.Unmarshal([]byte(body), &r)
				if r.Reason != st.reason {
					t.Errorf("step %d: reason %q, want %q", i+1, r.Reason, st.reason)
				}
				ds, _ := e.db.FindDeliveries(ctx, db.DeliveryFilter{Limit: 1})
				if len(ds) != 1 {
					t.Fatalf("step %d: no delivery stored", i+1)
				}
				d := ds[0]
				if st.status != 200 {
					if d.Verdict != db.Rejected || d.Reason != st.reason || d.EventID != 0 {
						t.Errorf("step %d: stored %s %q event %d, want a rejection %q", i+1, d.Verdict, d.Reason, d.EventID, st.reason)
					}
					if strings.Contains(body, testSecret) || hex64.MatchString(body) {
						t.Errorf("step %d: the answer reveals internals: %s", i+1, body)
					}
				}
				if st.check != nil {
					st.check(t, e, d, r)
				}
			}
		})
	}
}

// TestRevokedOldSecretC16: once "old" is revoked, a delivery signed by it is refused.
func TestRevokedOldSecretC16(t *testing.T) {
	e := newSecretEnv(t)
	ctx := context.Background()
	old, err := e.db.CreateSecret(ctx, db.NewSecret{EndpointID: 1, Label: "old", Value: oldSecret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.CreateSecret(ctx, db.NewSecret{EndpointID: 1, Label: "new", Value: testSecret}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.post("/webhook", hdrs("Plaud-Signature", sigOld), b1); resp.StatusCode != 200 {
		t.Fatalf("old before revoke: %d", resp.StatusCode)
	}
	admin := e.client("admin")
	e.mustForm(admin, "/endpoints/default/secrets/"+itoa64(old.ID)+"/revoke", nil)
	if resp, body := e.post("/webhook", hdrs("Plaud-Signature", sigOld), b1); resp.StatusCode != 400 || !strings.Contains(body, "signature_mismatch") {
		t.Fatalf("old after revoke: %d %s, want 400", resp.StatusCode, body)
	}
}

// TestParallelDuplicatesC12 is C12's last variant against a stored secret: ten identical signed
// deliveries at once are ten 2xx answers, one event delivered ten times, and ten delivery rows.
func TestParallelDuplicatesC12(t *testing.T) {
	e := newSecretEnv(t)
	ctx := context.Background()
	if _, err := e.db.CreateSecret(ctx, db.NewSecret{EndpointID: 1, Label: "S", Value: testSecret}); err != nil {
		t.Fatal(err)
	}
	b12 := []byte(`{"event":"device.recording_completed","data":{"file_id":"f_0012","event_id":"evt_0012"}}`)
	const n = 10
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/webhook", bytes.NewReader(b12))
			req.Header.Set("Plaud-Signature", "b41376619131978a730c1432aa8e76001cde4eb1d5e051384b230edcf8d02bad")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Errorf("status %d, want 200 for every copy", s)
		}
	}
	events, _, err := e.db.FindEvents(ctx, db.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].DeliveryCount != n {
		t.Fatalf("events = %+v, want one delivered %d times", events, n)
	}
	ds, _ := e.db.FindDeliveries(ctx, db.DeliveryFilter{Limit: 100})
	if len(ds) != n {
		t.Errorf("deliveries = %d, want %d", len(ds), n)
	}
	secrets, _ := e.db.FindSecrets(ctx, 1)
	if len(secrets) != 1 || secrets[0].MatchCount != n {
		t.Errorf("secrets = %+v, want S matched %d times", secrets, n)
	}
}
