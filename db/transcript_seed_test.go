package db

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// SeedEnd is the occurrence time of the newest transcript SeedTranscripts stores; the others
// are a minute apart before it.
var SeedEnd = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// seedWords are the vocabulary of seeded segments: ordinary meeting talk, so that common words
// match in most transcripts.
var seedWords = strings.Fields(`the a and we to of for on in is it that this with our team
	plan budget review customer launch hiring design meeting weekly sync roadmap numbers
	quarter sales dock pallet inventory schedule next week today follow up action item agree
	think need should could shipping order warehouse product price support ticket release
	question answer report update timeline risk goal`)

// seedCJK are Japanese and Chinese sentences mixed into every tenth transcript.
var seedCJK = []string{
	"来週の定例ミーティングで予算を確認しましょう。",
	"新製品の発売日は九月一日を想定しています。",
	"我们下周讨论客户回访计划和预算。",
	"上海团队负责仓库的库存盘点。",
}

// SeedTranscripts stores n completed transcripts of segs segments each, through the same
// tables, triggers and code as ingest: every transcript has its own event (stored by
// CreateDelivery) and is normalised by createRecordingEvent, many to one transaction. Segments
// are 8 to 20 words; every tenth transcript also speaks Japanese or Chinese; transcript i
// mentions "zanzibar" when i%1000 == 7. It is for benchmarks outside this package.
func SeedTranscripts(d *DB, n, segs int) error {
	ctx := context.Background()
	// The events first, from 16 senders so that they share group commits.
	ids := make([]int64, n)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				key := fmt.Sprintf("seed-transcript-%d", i)
				body := []byte(`{"event":"transcription.completed","data":{"transcription_id":"T` +
					fmt.Sprint(i) + `"}}`)
				sum := sha256.Sum256(body)
				in := &Ingest{
					Delivery: Delivery{EndpointID: 1, ReceivedAt: SeedEnd, Method: "POST",
						Path: "/webhook", Body: body, BodySHA256: hex.EncodeToString(sum[:]), Size: int64(len(body)), Verdict: Verified,
						Scheme: "devguide", SecretLabel: "seed"},
					Event: &Event{DedupeKey: key, EventType: "transcription.completed", JSON: true,
						Size: int64(len(body)), TranscriptionID: fmt.Sprint("T", i)},
				}
				res, err := d.CreateDelivery(ctx, in)
				if err != nil {
					errs <- err
					return
				}
				ids[i] = res.EventID
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}

	rng := rand.New(rand.NewPCG(5, 5))
	const batch = 200
	for start := 0; start < n; start += batch {
		tx, err := d.w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for i := start; i < min(start+batch, n); i++ {
			c := &TranscriptContent{Status: TranscriptCompleted, Language: "en"}
			if i%10 == 3 {
				c.Language = "ja"
			}
			var all []string
			for j := range segs {
				words := make([]string, 8+rng.IntN(13))
				for k := range words {
					words[k] = seedWords[rng.IntN(len(seedWords))]
				}
				if i%1000 == 7 && j == segs/2 {
					words[0] = "zanzibar"
				}
				text := strings.Join(words, " ")
				if i%10 == 3 && j%5 == 0 {
					text = seedCJK[(i+j)%len(seedCJK)]
				}
				start := int64(j) * 5200
				c.Segments = append(c.Segments, Segment{Index: j, StartMS: start,
					EndMS: start + 5000, Speaker: fmt.Sprintf("Speaker %d", (j/3)%4+1), Text: text})
				all = append(all, text)
			}
			c.Text = strings.Join(all, " ")
			c.DurationMS = int64(segs) * 5200
			at := SeedEnd.Add(-time.Duration(n-1-i) * time.Minute)
			_, err := d.createRecordingEvent(ctx, tx, RecordingEvent{EventID: ids[i],
				TranscriptionID: fmt.Sprint("T", i), Title: fmt.Sprintf("Meeting %d", i),
				Status: RecordingTranscribed, Uploaded: true, OccurredAt: at, ReceivedAt: at,
				Transcript: c})
			if err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	// Move everything into the database file, so that its size is the size of the data.
	_, err := d.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}
