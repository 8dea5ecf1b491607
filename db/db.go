package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/pressly/goose/v3"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Errors returned by storage methods. Callers test them with errors.Is.
var (
	// ErrNotFound means the record asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique or foreign-key constraint refused the write.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable means the database could not commit (disk full, read-only file, closed):
	// nothing was stored, and a webhook sender should retry later.
	ErrUnavailable = errors.New("storage unavailable")
)

// ValidationError carries a message that is safe to show to the user.
type ValidationError struct{ Message string }

func (e *ValidationError) Error() string { return e.Message }

// Options tune Open. The zero value gives plaudhook's defaults.
type Options struct {
	// Synchronous is SQLite's synchronous pragma: "FULL" (default) fsyncs the WAL on every
	// commit, so a commit that returned survives power loss. "NORMAL" may lose the last commits
	// on an OS crash and is only for throwaway setups.
	Synchronous string
	// MaxBatch caps how many deliveries share one ingest transaction (default 256).
	MaxBatch int
	// MaxRejected bounds how many rejected deliveries are kept (default 10,000); the oldest
	// are pruned first.
	MaxRejected int
	// MaxRejectedBytes bounds the bytes (bodies and headers) rejected deliveries keep
	// (default 256 MiB), pruned by RunRetention.
	MaxRejectedBytes int64
	// RetainDays deletes events whose last delivery is older than this many days, and rejected
	// deliveries as old (0, the default: keep forever). See Prune.
	RetainDays int
	// RetainPerEndpoint keeps at most this many newest events per endpoint (0, the default: no
	// limit).
	RetainPerEndpoint int
	// Logger receives migration and writer messages (default: discard).
	Logger *slog.Logger
	// Now is the clock used for timestamps written by storage (default time.Now).
	Now func() time.Time
	// Sealer encrypts stored signing secrets (db/sealed.Keyring). Without it, reading or
	// writing stored secrets fails; everything else works.
	Sealer Sealer
	// WALLimit bounds the write-ahead log (default 256 MiB). Checkpoints run beside ingest
	// without blocking it; when a flood writes faster than they copy, the log grows, and past
	// this size the checkpointer pauses writes for the moment it takes to copy the log back
	// and truncate it. Between floods the log is kept to a quarter of this size at most.
	WALLimit int64
}

// DefaultWALLimit is the default Options.WALLimit.
const DefaultWALLimit = 256 << 20

// DB is plaudhook's database: one writer connection, a pool of readers and the ingest batch
// writer.
type DB struct {
	Path string

	w   *sql.DB // exactly one connection: every write goes here
	r   *sql.DB // read pool
	log *slog.Logger
	now func() time.Time
	opt Options

	jobs      chan *job
	closeOnce sync.Once
	stopped   chan struct{}

	// rejectedSincePrune counts rejected rows inserted since the last prune; writer goroutine only.
	rejectedSincePrune int

	// secretsGen changes on every secret or endpoint write (db/secret.go).
	secretsGen atomic.Int64

	stmts stmtCache     // the writer's prepared statements (db/stmt.go)
	kick  chan struct{} // asks RunRetention for an early pass (db/retention.go)

	// ck is the checkpointer's own connection, ckWake tells it that commits happened, ckStop
	// stops it and ckDone is closed when it has stopped (startCheckpointer).
	ck     *sql.DB
	ckWake chan struct{}
	ckStop chan struct{}
	// ckTail tells the ingest writer that a checkpoint pass has just copied the log: it copies
	// the few frames committed since (tailCheckpoint), so the log can start over.
	ckTail atomic.Bool
	ckDone chan struct{}
	// pageSize is the database's page size, which is also a log frame's; walTruncations
	// counts the checkpoints that paused writes because the log passed WALLimit.
	pageSize int64

	ackBuckets  [][2]int64         // bucket, upper bound: the ack latency histogram (db/bookkeeping.go)
	indexStmt   *sql.Stmt          // bodyIndexQuery on the readers (db/bookkeeping.go)
	slugStmt    *sql.Stmt          // an endpoint's id by slug, on the readers (EndpointIDBySlug)
	shapeIDs    map[shapeKey]int64 // the writer's memory of schema shape ids (db/bookkeeping.go)
	rowsQueries map[rowsKey]string // multi-row statements by shape, writer only (db/ingest.go)
	// skipBookkeeping leaves the batch bookkeeping out: only BenchmarkIngestBookkeeping sets
	// it, to measure what that bookkeeping costs.
	skipBookkeeping bool
	walTruncations  atomic.Int64
	walRestarts     atomic.Int64 // times a checkpoint found the log started over (tests)
}

// Open opens (creating if needed) the database file at path, applies every pending migration,
// and starts the ingest writer. Close stops it.
func Open(ctx context.Context, path string, opt Options) (*DB, error) {
	if opt.Synchronous == "" {
		opt.Synchronous = "FULL"
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 256
	}
	if opt.MaxRejected <= 0 {
		opt.MaxRejected = DefaultMaxRejected
	}
	if opt.MaxRejectedBytes <= 0 {
		opt.MaxRejectedBytes = DefaultMaxRejectedBytes
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.WALLimit <= 0 {
		opt.WALLimit = DefaultWALLimit
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create database folder: %w", err)
		}
	}

	// The pragmas travel in the DSN so that every pooled connection gets them, not just the
	// one a PRAGMA statement happens to run on:
	//   WAL: readers never block the writer and the writer never blocks readers;
	//   synchronous: FULL makes a returned commit durable (see Options.Synchronous);
	//   busy_timeout: a reader that meets a checkpoint waits instead of failing;
	//   foreign_keys: deleting a delivery removes its body;
	//   txlock=immediate: a write transaction takes the write lock at BEGIN, because an upgrade
	//   from a read lock fails with SQLITE_BUSY without ever calling the busy handler.
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", opt.Synchronous)
	q.Set("_busy_timeout", "5000")
	q.Set("_foreign_keys", "1")
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()

	w, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)

	r, err := sql.Open("sqlite3", dsn+"&mode=ro")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database readers: %w", err)
	}
	readers := max(4, runtime.NumCPU()*2)
	r.SetMaxOpenConns(readers)
	// Every webhook reads on this pool (its endpoint, its body's index facts): with fewer idle
	// connections kept than open, a busy minute opens and closes connections by the thousand,
	// each running its pragmas again.
	r.SetMaxIdleConns(readers)

	db := &DB{Path: path, w: w, r: r, log: opt.Logger, now: opt.Now, opt: opt,
		jobs: make(chan *job, 4096), stopped: make(chan struct{}), kick: make(chan struct{}, 1)}

	if err := db.migrate(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	// The database holds transcripts and sealed secrets: readable by its owner only, whatever
	// the umask made of it (SQLite gives the -wal and -shm files the database's mode).
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Chmod(path+suffix, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			db.log.Warn("restrict database file mode", "file", path+suffix, "error", err)
		}
	}
	if err := db.loadAckBuckets(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	db.indexStmt, err = r.PrepareContext(ctx, bodyIndexQuery)
	if err == nil {
		db.slugStmt, err = r.PrepareContext(ctx, `SELECT id FROM endpoints WHERE slug = ?`)
	}
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open database readers: %w", err)
	}
	if err := db.startCheckpointer(ctx, dsn); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	go db.runWriter()
	return db, nil
}

// checkpointEvery is how often, at most, the checkpointer copies committed pages from the
// write-ahead log into the database file while deliveries arrive.
const checkpointEvery = 500 * time.Millisecond

// startCheckpointer moves WAL checkpoints off the ingest path. By default SQLite checkpoints
// inside the commit that crosses 1,000 WAL pages, so every few dozen deliveries one sender
// waits for the whole copy and its fsyncs. Here the writer never checkpoints; a goroutine with
// its own connection runs a PASSIVE checkpoint (which never blocks the writer or readers) at
// most every checkpointEvery after commits. Durability is unchanged: with synchronous=FULL a
// commit is on disk once the WAL is synced, and the WAL is replayed on open after a crash.
// After each pass the writer copies the few frames committed meanwhile (tailCheckpoint), so
// its next transaction restarts the WAL from its beginning: the log stays bounded by what
// arrives between two checkpoints, and commits overwrite its blocks rather than grow the file.
func (db *DB) startCheckpointer(ctx context.Context, dsn string) error {
	// The writer has exactly one connection that is never closed, so the pragma holds for
	// every commit. Were the connection ever reopened, SQLite's own checkpointing would simply
	// resume on it.
	if _, err := db.w.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 0`); err != nil {
		return fmt.Errorf("configure checkpoints: %w", err)
	}
	// A log that was reset is cut back to this size, so the disk a flood took is given back.
	sizeLimit := fmt.Sprintf(`PRAGMA journal_size_limit = %d`, db.opt.WALLimit/4)
	if _, err := db.w.ExecContext(ctx, sizeLimit); err != nil {
		return fmt.Errorf("configure checkpoints: %w", err)
	}
	if err := db.w.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&db.pageSize); err != nil {
		return fmt.Errorf("configure checkpoints: %w", err)
	}
	ck, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return fmt.Errorf("open checkpointer: %w", err)
	}
	ck.SetMaxOpenConns(1)
	ck.SetConnMaxIdleTime(0)
	ck.SetConnMaxLifetime(0)
	// A checkpoint that pauses writes waits at most a second for readers to move on (an
	// export can hold its snapshot for long); it is tried again at the next round.
	if _, err := ck.ExecContext(ctx, sizeLimit+`; PRAGMA busy_timeout = 1000`); err != nil {
		ck.Close()
		return fmt.Errorf("configure checkpoints: %w", err)
	}
	db.ck, db.ckWake = ck, make(chan struct{}, 1)
	db.ckStop, db.ckDone = make(chan struct{}), make(chan struct{})
	go db.runCheckpointer()
	return nil
}

// wakeCheckpointer tells the checkpointer that commits happened; it never blocks.
func (db *DB) wakeCheckpointer() {
	select {
	case db.ckWake <- struct{}{}:
	default:
	}
}

// runCheckpointer checkpoints after commits, at most every checkpointEvery, until Close stops
// it, and then once more so little is left in the WAL for the next start.
func (db *DB) runCheckpointer() {
	defer close(db.ckDone)
	ctx := context.Background()
	defer db.checkpoint(ctx, "TRUNCATE") // the last one: the log is emptied and cut to nothing
	pause := time.NewTimer(0)
	defer pause.Stop()
	var lastFrames int64 // the log's size at the last pass: smaller now means it started over
	for {
		select {
		case <-db.ckWake:
		case <-db.ckStop:
			return
		}

		// Past the limit, a flood outruns the passive checkpoints: pause writes (the ingest
		// writer waits within its busy timeout) while the log is copied back and truncated.
		frames := db.checkpoint(ctx, "PASSIVE")
		if frames > 0 {
			db.ckTail.Store(true)
		}
		if frames < lastFrames {
			db.walRestarts.Add(1)
		}
		lastFrames = frames
		if frames*db.pageSize > db.opt.WALLimit {
			db.log.Warn("write-ahead log over its limit: copying it back with writes paused",
				"wal_bytes", frames*db.pageSize, "limit_bytes", db.opt.WALLimit)
			db.checkpoint(ctx, "TRUNCATE")
			db.walTruncations.Add(1)
			lastFrames = 0
		}
		pause.Reset(checkpointEvery)
		select {
		case <-pause.C:
		case <-db.ckStop:
			return
		}
	}
}

// tailCheckpoint runs on the ingest writer, between batches, after the checkpointer copied the
// log: it copies the frames committed while that pass ran (a few dozen, where the pass copied
// thousands), so that no frame is left unbackfilled and the writer's next transaction starts
// the log over from its beginning. Without it the writer commits during every pass, the log is
// never wholly copied when a transaction begins, and it grows until WALLimit forces a TRUNCATE:
// every commit then appends to the file (block allocation on each sync) instead of overwriting
// blocks already allocated, which costs a lone sender about a tenth of its rate.
func (db *DB) tailCheckpoint(ctx context.Context) {
	if !db.ckTail.Swap(false) {
		return
	}
	// PASSIVE never waits: should the checkpointer be at work again, this one gives up.
	if _, err := db.w.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
		db.log.Debug("catch up the write-ahead log", "error", err)
	}
}

// checkpoint runs one checkpoint and returns how many frames the log holds (0 on failure).
func (db *DB) checkpoint(ctx context.Context, mode string) int64 {
	var busy, logFrames, done int64
	err := db.ck.QueryRowContext(ctx, `PRAGMA wal_checkpoint(`+mode+`)`).Scan(&busy, &logFrames, &done)
	if err != nil {
		db.log.Warn("checkpoint the write-ahead log", "mode", mode, "error", err)
		return 0
	}
	db.log.Debug("checkpoint", "mode", mode, "wal_frames", logFrames, "copied", done)
	return logFrames
}

// migrate applies the embedded migrations with goose and logs what it did.
func (db *DB) migrate(ctx context.Context) error {
	fsys, err := fsSub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db.w, fsys)
	if err != nil {
		return fmt.Errorf("prepare migrations: %w", err)
	}
	from, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	if len(res) > 0 {
		db.log.Info("migrations applied", "from", from, "to", res[len(res)-1].Source.Version)
	}
	return nil
}

// Close stops the ingest writer after it has committed every queued delivery, then closes the
// database.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		close(db.jobs)
		<-db.stopped
		if db.ck != nil {
			close(db.ckStop)
			<-db.ckDone
			db.ck.Close()
		}
	})
	// The readers close first: the last connection to close removes the log, and only the
	// writer can.
	err := db.r.Close()
	if db.w != nil { // nil when opened read-only
		db.closeStmts()
		if werr := db.w.Close(); err == nil {
			err = werr
		}
	}
	return err
}

// Ping checks that the database answers and can take a write lock: what /readyz reports.
func (db *DB) Ping(ctx context.Context) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", unavailable(err))
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE settings SET name = name WHERE 0`); err != nil {
		return fmt.Errorf("write check: %w", unavailable(err))
	}
	return nil
}

// IntegrityCheck runs SQLite's integrity_check and returns its verdict ("ok" when sound).
func (db *DB) IntegrityCheck(ctx context.Context) (string, error) {
	var s string
	if err := db.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&s); err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	return s, nil
}

// micros converts a time to the stored form: Unix microseconds, UTC.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros converts a stored time back to a UTC time.Time.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// unavailable marks errors that mean "could not write at all" (disk full, read-only, I/O) as
// ErrUnavailable, so the web layer answers 503 and the sender retries.
func unavailable(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrFull, sqlite3.ErrReadonly, sqlite3.ErrIoErr, sqlite3.ErrCantOpen,
			sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrCorrupt, sqlite3.ErrNotADB:
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// conflict translates constraint failures into ErrConflict.
func conflict(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) && se.Code == sqlite3.ErrConstraint {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

// FailCommits makes every COMMIT on the writer fail (on) or succeed again (off). SQLite's
// commit hook turns each COMMIT into a rollback that reports an error, as a disk that fills up
// just as the WAL is written would: every statement of the transaction succeeded, then the
// commit did not. Fault-injection tests use it to prove that such a batch is answered 503 and
// leaves nothing behind.
func (db *DB) FailCommits(ctx context.Context, on bool) error {
	// The writer has one connection that is never closed, so the hook stays on it; taking the
	// connection waits for the transaction in flight, if any.
	c, err := db.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("fail commits: %w", err)
	}
	defer c.Close()
	return c.Raw(func(dc any) error {
		conn, ok := dc.(*sqlite3.SQLiteConn)
		if !ok {
			return fmt.Errorf("fail commits: unexpected driver connection %T", dc)
		}
		if !on {
			conn.RegisterCommitHook(nil)
			return nil
		}
		conn.RegisterCommitHook(func() int { return 1 }) // non-zero: roll back instead
		return nil
	})
}

// SetQueryOnly switches the writer to refuse every write (SQLite's query_only pragma), as a
// full or read-only disk would. Operators can use it to freeze a database for inspection; tests
// use it to prove that a failed commit is never acknowledged.
func (db *DB) SetQueryOnly(on bool) error {
	v := "OFF"
	if on {
		v = "ON"
	}
	if _, err := db.w.Exec(`PRAGMA query_only = ` + v); err != nil {
		return fmt.Errorf("set query_only: %w", err)
	}
	return nil
}
