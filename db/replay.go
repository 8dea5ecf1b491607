package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ReplayMode says how a stored event is sent again.
type ReplayMode string

// The replay modes.
const (
	// ModeOriginal sends the stored bytes with the original signature headers.
	ModeOriginal ReplayMode = "original"
	// ModeResign sends the stored bytes with a fresh signature.
	ModeResign ReplayMode = "resign"
	// ModeEdited sends a body edited by the user, freshly signed.
	ModeEdited ReplayMode = "edited"
)

// Valid reports whether m is one of the replay modes.
func (m ReplayMode) Valid() bool {
	return m == ModeOriginal || m == ModeResign || m == ModeEdited
}

// Target is a saved destination for replays and forwarding, without its sealed values.
type Target struct {
	ID              int64
	Name            string
	URL             string
	DefaultMode     ReplayMode // original or resign
	Scheme          string     // resign scheme: "devguide", "embedded", or "" for the delivery's own
	HasSecret       bool       // the target signs with a secret of its own
	HeaderNames     []string   // names of the extra headers sent to it, for display
	FollowRedirects bool
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// TargetInput is what CreateTarget and UpdateTarget store. Secret and Headers are sealed under
// the master key before they reach the table. On update, nil leaves the stored value as it is;
// on create, nil means none. An empty secret or header set removes the stored one.
type TargetInput struct {
	Name            string
	URL             string
	DefaultMode     ReplayMode
	Scheme          string
	FollowRedirects bool
	Secret          *string
	Headers         *http.Header
}

// TargetKeys are a target's opened values, for sending. They never leave the server.
type TargetKeys struct {
	Secret  []byte      // nil when the target has no secret
	Headers http.Header // nil when it adds no headers
}

// errNoTargetSealer is returned when a target's secret or headers are written or read by a DB
// opened without Options.Sealer.
var errNoTargetSealer = &ValidationError{
	Message: "No master key is configured, so targets cannot keep a secret or extra headers."}

// targetAAD binds a sealed target value to its row and its purpose.
func targetAAD(id int64, what string) []byte {
	return []byte("plaudhook target " + what + " " + strconv.FormatInt(id, 10))
}

const targetColumns = `id, name, url, default_mode, scheme, secret_sealed IS NOT NULL,
	header_names, follow_redirects, created_at, updated_at`

func scanTarget(s interface{ Scan(...any) error }) (Target, error) {
	var t Target
	var names string
	var created, updated int64
	err := s.Scan(&t.ID, &t.Name, &t.URL, &t.DefaultMode, &t.Scheme, &t.HasSecret, &names,
		&t.FollowRedirects, &created, &updated)
	if err != nil {
		return t, err
	}
	if names != "" {
		t.HeaderNames = strings.Split(names, ",")
	}
	t.CreatedAt, t.UpdatedAt = fromMicros(created), fromMicros(updated)
	return t, nil
}

// validateTarget checks what SQL constraints would otherwise report less clearly.
func validateTarget(in TargetInput) error {
	switch {
	case strings.TrimSpace(in.Name) == "" || len(in.Name) > 100:
		return &ValidationError{Message: "A target needs a name of at most 100 characters."}
	case in.URL == "":
		return &ValidationError{Message: "A target needs a URL."}
	case in.DefaultMode != ModeOriginal && in.DefaultMode != ModeResign:
		return &ValidationError{Message: "The default mode must be original or resign."}
	case in.Scheme != "" && in.Scheme != "devguide" && in.Scheme != "embedded":
		return &ValidationError{Message: "The scheme must be devguide or embedded."}
	}
	return nil
}

// CreateTarget stores a new target, its secret and headers sealed under the master key. It
// returns a *ValidationError for missing fields or when a secret or headers are given without a
// master key, and ErrConflict when the name is taken.
func (db *DB) CreateTarget(ctx context.Context, in TargetInput) (Target, error) {
	if err := validateTarget(in); err != nil {
		return Target{}, err
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return Target{}, fmt.Errorf("create target: %w", unavailable(err))
	}
	defer tx.Rollback()

	// Insert the row first: the sealed values are bound to its id.
	now := micros(db.now())
	var id int64
	err = tx.QueryRowContext(ctx, `
		INSERT INTO targets (name, url, default_mode, scheme, follow_redirects, created_at,
			updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		in.Name, in.URL, in.DefaultMode, in.Scheme, in.FollowRedirects, now, now).Scan(&id)
	if err != nil {
		return Target{}, fmt.Errorf("create target %q: %w", in.Name, conflict(unavailable(err)))
	}
	if err := db.sealTarget(ctx, tx, id, in); err != nil {
		return Target{}, fmt.Errorf("create target %q: %w", in.Name, err)
	}

	if err := tx.Commit(); err != nil {
		return Target{}, fmt.Errorf("create target: %w", unavailable(err))
	}
	return db.FindTargetByID(ctx, id)
}

// UpdateTarget changes target id; a nil Secret or Headers keeps the stored one. It returns
// ErrNotFound when there is no such target, ErrConflict when the new name is taken, and the
// errors of CreateTarget.
func (db *DB) UpdateTarget(ctx context.Context, id int64, in TargetInput) error {
	if err := validateTarget(in); err != nil {
		return err
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("update target %d: %w", id, unavailable(err))
	}
	defer tx.Rollback()

	res, err := tx.ExecContext(ctx, `
		UPDATE targets SET name = ?, url = ?, default_mode = ?, scheme = ?,
			follow_redirects = ?, updated_at = ?
		WHERE id = ?`,
		in.Name, in.URL, in.DefaultMode, in.Scheme, in.FollowRedirects, micros(db.now()), id)
	if err != nil {
		return fmt.Errorf("update target %d: %w", id, conflict(unavailable(err)))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("target %d: %w", id, ErrNotFound)
	}
	if err := db.sealTarget(ctx, tx, id, in); err != nil {
		return fmt.Errorf("update target %d: %w", id, err)
	}

	if err := tx.Commit(); err != nil {
		return fmt.Errorf("update target %d: %w", id, unavailable(err))
	}
	return nil
}

// sealTarget stores the secret and headers of in that are set, sealed, inside tx.
func (db *DB) sealTarget(ctx context.Context, tx *sql.Tx, id int64, in TargetInput) error {
	if in.Secret != nil {
		var sealed []byte
		keyID := ""
		if *in.Secret != "" {
			if db.opt.Sealer == nil {
				return errNoTargetSealer
			}
			var err error
			keyID, sealed, err = db.opt.Sealer.Seal([]byte(*in.Secret), targetAAD(id, "secret"))
			if err != nil {
				return fmt.Errorf("seal secret: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE targets SET secret_sealed = ?, secret_key_id = ? WHERE id = ?`,
			sealed, keyID, id); err != nil {
			return unavailable(err)
		}
	}
	if in.Headers != nil {
		var sealed []byte
		keyID := ""
		names := make([]string, 0, len(*in.Headers))
		if len(*in.Headers) > 0 {
			if db.opt.Sealer == nil {
				return errNoTargetSealer
			}
			plain, err := json.Marshal(*in.Headers)
			if err != nil {
				return fmt.Errorf("encode headers: %w", err)
			}
			keyID, sealed, err = db.opt.Sealer.Seal(plain, targetAAD(id, "headers"))
			if err != nil {
				return fmt.Errorf("seal headers: %w", err)
			}
			for k := range *in.Headers {
				names = append(names, k)
			}
			slices.Sort(names)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE targets
			SET headers_sealed = ?, headers_key_id = ?, header_names = ? WHERE id = ?`,
			sealed, keyID, strings.Join(names, ","), id); err != nil {
			return unavailable(err)
		}
	}
	return nil
}

// FindTargetKeys opens a target's secret and extra headers. It returns ErrNotFound when there
// is no such target, a *ValidationError when values are stored but no master key is configured,
// and an error wrapping the sealer's when a value does not open.
func (db *DB) FindTargetKeys(ctx context.Context, id int64) (TargetKeys, error) {
	var k TargetKeys
	var secret, headers []byte
	var secretKey, headersKey string
	err := db.r.QueryRowContext(ctx, `
		SELECT secret_sealed, secret_key_id, headers_sealed, headers_key_id
		FROM targets WHERE id = ?`, id).Scan(&secret, &secretKey, &headers, &headersKey)
	if errors.Is(err, sql.ErrNoRows) {
		return k, fmt.Errorf("target %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return k, fmt.Errorf("find target keys %d: %w", id, err)
	}
	if secret == nil && headers == nil {
		return k, nil
	}
	if db.opt.Sealer == nil {
		return k, errNoTargetSealer
	}

	// Open what is stored.
	if secret != nil {
		if k.Secret, err = db.opt.Sealer.Open(secretKey, secret, targetAAD(id, "secret")); err != nil {
			return k, fmt.Errorf("open secret of target %d: %w", id, err)
		}
	}
	if headers != nil {
		plain, err := db.opt.Sealer.Open(headersKey, headers, targetAAD(id, "headers"))
		if err != nil {
			return k, fmt.Errorf("open headers of target %d: %w", id, err)
		}
		if err := json.Unmarshal(plain, &k.Headers); err != nil {
			return k, fmt.Errorf("decode headers of target %d: %w", id, err)
		}
	}
	return k, nil
}

// ResealTargets re-encrypts every target secret and header set that is not sealed under the
// sealer's current key (after a master-key rotation) and returns how many values it changed.
// Nothing is changed when a value does not open.
func (db *DB) ResealTargets(ctx context.Context) (int, error) {
	if db.opt.Sealer == nil {
		return 0, fmt.Errorf("reseal targets: %w", errNoTargetSealer)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("reseal targets: %w", unavailable(err))
	}
	defer tx.Rollback()

	current := db.opt.Sealer.KeyID()
	n := 0
	for _, what := range []string{"secret", "headers"} {
		// Collect first: the writer has one connection, so no update while rows are open.
		rows, err := tx.QueryContext(ctx, `SELECT id, `+what+`_key_id, `+what+`_sealed
			FROM targets WHERE `+what+`_sealed IS NOT NULL AND `+what+`_key_id != ?`, current)
		if err != nil {
			return 0, fmt.Errorf("reseal targets: %w", unavailable(err))
		}
		type row struct {
			id     int64
			keyID  string
			sealed []byte
		}
		var todo []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.keyID, &r.sealed); err != nil {
				rows.Close()
				return 0, fmt.Errorf("reseal targets: %w", err)
			}
			todo = append(todo, r)
		}
		rows.Close()

		for _, r := range todo {
			plain, err := db.opt.Sealer.Open(r.keyID, r.sealed, targetAAD(r.id, what))
			if err != nil {
				return 0, fmt.Errorf("reseal target %d %s: %w", r.id, what, err)
			}
			keyID, sealed, err := db.opt.Sealer.Seal(plain, targetAAD(r.id, what))
			if err != nil {
				return 0, fmt.Errorf("reseal target %d %s: %w", r.id, what, err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE targets SET `+what+`_sealed = ?,
				`+what+`_key_id = ? WHERE id = ?`, sealed, keyID, r.id); err != nil {
				return 0, fmt.Errorf("reseal target %d: %w", r.id, unavailable(err))
			}
			n++
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("reseal targets: %w", unavailable(err))
	}
	return n, nil
}

// FindTargetKeyIDs lists the master key ids that target values are sealed under, so start-up
// can refuse a configuration that lacks one of them.
func (db *DB) FindTargetKeyIDs(ctx context.Context) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, `
		SELECT secret_key_id FROM targets WHERE secret_sealed IS NOT NULL
		UNION
		SELECT headers_key_id FROM targets WHERE headers_sealed IS NOT NULL
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("find target key ids: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("find target key ids: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// DeleteTarget removes a target and its forwarding rules; attempts keep its name. It returns
// ErrNotFound when there is no such target.
func (db *DB) DeleteTarget(ctx context.Context, id int64) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM targets WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete target %d: %w", id, unavailable(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("target %d: %w", id, ErrNotFound)
	}
	return nil
}

// FindTargetByID returns one target, or ErrNotFound.
func (db *DB) FindTargetByID(ctx context.Context, id int64) (Target, error) {
	return db.findTarget(ctx, `id = ?`, id)
}

// FindTargetByName returns the target named name (case-insensitively), or ErrNotFound.
func (db *DB) FindTargetByName(ctx context.Context, name string) (Target, error) {
	return db.findTarget(ctx, `name = ?`, name)
}

func (db *DB) findTarget(ctx context.Context, where string, arg any) (Target, error) {
	row := db.r.QueryRowContext(ctx, `SELECT `+targetColumns+` FROM targets WHERE `+where, arg)
	t, err := scanTarget(row)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("target %v: %w", arg, ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("find target %v: %w", arg, err)
	}
	return t, nil
}

// FindTargets returns every target, by name.
func (db *DB) FindTargets(ctx context.Context) ([]Target, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+targetColumns+` FROM targets ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("find targets: %w", err)
	}
	defer rows.Close()
	var out []Target
	for rows.Next() {
		t, err := scanTarget(rows)
		if err != nil {
			return nil, fmt.Errorf("find targets: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find targets: %w", err)
	}
	return out, nil
}

// Attempt is one outbound request made for a stored event, and what came back.
type Attempt struct {
	ID          int64
	EventID     int64
	TargetID    int64  // 0 for a one-off URL or a deleted target
	TargetName  string // the target's name when sent; "" for a one-off URL
	URL         string
	Mode        ReplayMode
	Scheme      string // signing scheme of a resign or edited attempt
	SecretLabel string // the secret that signed it; never its value
	Source      string // "ui", "api", "cli", "forward" or "bulk"
	Actor       string // username, or "system" / "cli"
	ActorID     int64
	BulkJobID   int64
	ForwardID   int64
	StartedAt   time.Time
	Duration    time.Duration
	// RequestHeader is what was sent. A target's extra header values are never stored: their
	// values read "(hidden)".
	RequestHeader http.Header
	RequestSHA256 string // of the body sent
	RequestSize   int64
	RequestBody   []byte // the body sent, kept for edited attempts only
	StatusCode    int    // 0 when no answer arrived
	// ResponseHeader and ResponseBody are the target's answer; the body is cut at 64 KiB.
	ResponseHeader    http.Header
	ResponseBody      []byte
	ResponseTruncated bool
	ErrorKind         string // "", "dns", "connection_refused", "tls", "timeout", "refused_by_policy", ...
	Error             string // a short message for ErrorKind
}

// OK reports whether the target answered with a 2xx.
func (a Attempt) OK() bool { return a.ErrorKind == "" && a.StatusCode >= 200 && a.StatusCode < 300 }

// AttemptFilter selects attempts for FindAttempts. Zero fields are unset.
type AttemptFilter struct {
	EventID int64
	After   int64 // only ids above it, oldest first (used to resume a live stream)
	Limit   int   // at most 1,000; 0 means 100
}

const attemptColumns = `a.id, a.event_id, coalesce(a.target_id, 0), a.target_name, a.url, a.mode,
	a.scheme, a.secret_label, a.source, a.actor, coalesce(a.actor_id, 0),
	coalesce(a.bulk_job_id, 0), coalesce(a.forward_id, 0), a.started_at, a.duration_us,
	a.request_headers, a.request_sha256, a.request_size, a.request_body, a.status_code,
	a.response_headers, a.response_body, a.response_truncated, a.error_kind, a.error`

func scanAttempt(s interface{ Scan(...any) error }) (Attempt, error) {
	var a Attempt
	var started, dur int64
	var reqH, respH string
	err := s.Scan(&a.ID, &a.EventID, &a.TargetID, &a.TargetName, &a.URL, &a.Mode, &a.Scheme,
		&a.SecretLabel, &a.Source, &a.Actor, &a.ActorID, &a.BulkJobID, &a.ForwardID, &started,
		&dur, &reqH, &a.RequestSHA256, &a.RequestSize, &a.RequestBody, &a.StatusCode, &respH,
		&a.ResponseBody, &a.ResponseTruncated, &a.ErrorKind, &a.Error)
	if err != nil {
		return a, err
	}
	a.StartedAt = fromMicros(started)
	a.Duration = time.Duration(dur) * time.Microsecond
	if err := json.Unmarshal([]byte(reqH), &a.RequestHeader); err != nil {
		return a, fmt.Errorf("decode request headers of attempt %d: %w", a.ID, err)
	}
	if err := json.Unmarshal([]byte(respH), &a.ResponseHeader); err != nil {
		return a, fmt.Errorf("decode response headers of attempt %d: %w", a.ID, err)
	}
	return a, nil
}

// CreateAttempt stores an attempt and sets its ID. It returns ErrConflict when the event does
// not exist (any more).
func (db *DB) CreateAttempt(ctx context.Context, a *Attempt) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create attempt: %w", unavailable(err))
	}
	defer tx.Rollback()
	if err := insertAttempt(ctx, tx, a); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create attempt: %w", unavailable(err))
	}
	return nil
}

// insertAttempt writes a inside tx and sets its ID.
func insertAttempt(ctx context.Context, tx *sql.Tx, a *Attempt) error {
	reqH, err := headerJSON(a.RequestHeader)
	if err != nil {
		return fmt.Errorf("create attempt: %w", err)
	}
	respH, err := headerJSON(a.ResponseHeader)
	if err != nil {
		return fmt.Errorf("create attempt: %w", err)
	}
	body := a.ResponseBody
	if body == nil {
		body = []byte{}
	}
	err = tx.QueryRowContext(ctx, `
		INSERT INTO attempts (event_id, target_id, target_name, url, mode, scheme, secret_label,
			source, actor, actor_id, bulk_job_id, forward_id, started_at, duration_us,
			request_headers, request_sha256, request_size, request_body, status_code,
			response_headers, response_body, response_truncated, error_kind, error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		a.EventID, nullID(a.TargetID), a.TargetName, a.URL, a.Mode, a.Scheme, a.SecretLabel,
		a.Source, a.Actor, nullID(a.ActorID), nullID(a.BulkJobID), nullID(a.ForwardID),
		micros(a.StartedAt), a.Duration.Microseconds(), reqH, a.RequestSHA256, a.RequestSize,
		a.RequestBody, a.StatusCode, respH, body, a.ResponseTruncated, a.ErrorKind, a.Error,
	).Scan(&a.ID)
	if err != nil {
		return fmt.Errorf("create attempt for event %d: %w", a.EventID, conflict(unavailable(err)))
	}
	return nil
}

// FindAttemptByID returns one attempt, or ErrNotFound.
func (db *DB) FindAttemptByID(ctx context.Context, id int64) (Attempt, error) {
	row := db.r.QueryRowContext(ctx, `SELECT `+attemptColumns+` FROM attempts a WHERE a.id = ?`, id)
	a, err := scanAttempt(row)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("attempt %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("find attempt %d: %w", id, err)
	}
	return a, nil
}

// FindAttempts returns the attempts matching f: newest first, or oldest first when f.After is
// set.
func (db *DB) FindAttempts(ctx context.Context, f AttemptFilter) ([]Attempt, error) {
	var where []string
	var args []any
	if f.EventID != 0 {
		where = append(where, "a.event_id = ?")
		args = append(args, f.EventID)
	}
	order := "a.id DESC"
	if f.After > 0 {
		where = append(where, "a.id > ?")
		args = append(args, f.After)
		order = "a.id ASC"
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	q := `SELECT ` + attemptColumns + ` FROM attempts a`
	if len(where) > 0 {
		q += "\n\t\tWHERE " + strings.Join(where, " AND ")
	}
	q += "\n\t\tORDER BY " + order + " LIMIT ?"
	args = append(args, f.Limit)

	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find attempts: %w", err)
	}
	defer rows.Close()
	var out []Attempt
	for rows.Next() {
		a, err := scanAttempt(rows)
		if err != nil {
			return nil, fmt.Errorf("find attempts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find attempts: %w", err)
	}
	return out, nil
}

// headerJSON encodes h for a JSON column; nil becomes {}.
func headerJSON(h http.Header) (string, error) {
	if h == nil {
		return "{}", nil
	}
	b, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("encode headers: %w", err)
	}
	return string(b), nil
}

// nullID stores 0 as NULL in a nullable reference column.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}
