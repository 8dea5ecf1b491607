package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// SecretState is where a secret is in its life: active, retiring (still verifying until its
// RetireAt), or revoked.
type SecretState string

// The secret states.
const (
	SecretActive   SecretState = "active"
	SecretRetiring SecretState = "retiring"
	SecretRevoked  SecretState = "revoked"
)

// SecretSource says where a secret's value lives.
type SecretSource string

// The secret sources.
const (
	// SourceStored secrets were added in plaudhook; their value is sealed in the database.
	SourceStored SecretSource = "stored"
	// SourceEnvironment secrets come from PLAUD_WEBHOOK_SECRET; their value never enters the
	// database, and they are read-only in plaudhook.
	SourceEnvironment SecretSource = "environment"
)

// DefaultRetireAfter is how long a rotated-out secret keeps verifying: Plaud retries a delivery
// for about 26 hours, so a retry of something signed just before the rotation still verifies.
const DefaultRetireAfter = 26 * time.Hour

// Secret is a signing secret of an endpoint, without its value.
type Secret struct {
	ID            int64
	EndpointID    int64
	Label         string
	Fingerprint   string // first 8 hex digits of SHA-256 of the value
	Source        SecretSource
	State         SecretState
	RetireAt      time.Time // when a retiring secret stops verifying; zero otherwise
	RevokedAt     time.Time // zero unless revoked
	CreatedAt     time.Time
	CreatedBy     string
	LastMatchedAt time.Time // zero when it never verified a delivery
	MatchCount    int64
	KeyID         string // master key that sealed the value ("" for environment secrets)
}

// Usable reports whether the secret verifies deliveries at time t: active, or retiring and not
// yet past its RetireAt.
func (s Secret) Usable(t time.Time) bool {
	return s.State == SecretActive || (s.State == SecretRetiring && t.Before(s.RetireAt))
}

// Status names the secret's state at time t as the UI shows it: "active", "retiring", "retired"
// (a retiring secret past its RetireAt, which no longer verifies) or "revoked".
func (s Secret) Status(t time.Time) string {
	if s.State == SecretRetiring && !t.Before(s.RetireAt) {
		return "retired"
	}
	return string(s.State)
}

// SecretKey is a secret with its value, for verifying and signing. It never leaves the server.
type SecretKey struct {
	Secret
	Value []byte
}

// Sealer encrypts secret values at rest (db/sealed.Keyring implements it). aad binds a value to
// its row; KeyID names the key new values are sealed with.
type Sealer interface {
	KeyID() string
	Seal(plaintext, aad []byte) (keyID string, sealed []byte, err error)
	Open(keyID string, sealed, aad []byte) ([]byte, error)
}

// errNoSealer is returned by secret writes and reads of a DB opened without Options.Sealer.
var errNoSealer = errors.New("no master key configured for stored secrets")

// NewSecret is a secret to store.
type NewSecret struct {
	EndpointID int64
	Label      string
	Value      string // cleaned by CleanSecretValue before it is stored
	CreatedBy  string // username, or "cli"
}

// EnvSecret describes a secret from the environment, without its value.
type EnvSecret struct {
	Label       string
	Fingerprint string
}

// CleanSecretValue prepares a pasted secret: surrounding whitespace (a copied newline, a stray
// space) is removed, and trimmed says so, so the UI can tell the user. Control characters inside,
// an empty value, or one over 512 bytes are refused with a ValidationError; inner spaces are
// refused too, since no signing secret contains them and they betray a bad paste.
func CleanSecretValue(raw string) (value string, trimmed bool, err error) {
	value = strings.TrimSpace(raw)
	trimmed = value != raw
	switch {
	case value == "":
		return "", trimmed, &ValidationError{Message: "the secret is empty"}
	case !utf8.ValidString(value):
		return "", trimmed, &ValidationError{Message: "the secret is not valid UTF-8"}
	case strings.ContainsFunc(value, unicode.IsControl):
		return "", trimmed, &ValidationError{Message: "the secret contains control characters " +
			"(a tab, new line or similar): nothing was saved"}
	case strings.ContainsFunc(value, unicode.IsSpace):
		return "", trimmed, &ValidationError{Message: "the secret contains spaces: nothing was " +
			"saved; paste exactly the value Plaud shows"}
	case len(value) > 512:
		return "", trimmed, &ValidationError{Message: "the secret is longer than 512 bytes"}
	}
	return value, trimmed, nil
}

// Fingerprint is a secret's short public name: the first 8 hex digits of SHA-256 of its value,
// so `printf %s "$SECRET" | sha256sum | cut -c1-8` finds the same.
func Fingerprint(value []byte) string {
	sum := sha256.Sum256(value)
	return hex.EncodeToString(sum[:4])
}

// cleanLabel validates a secret's label.
func cleanLabel(label string) (string, error) {
	label = strings.TrimSpace(label)
	if label == "" || utf8.RuneCountInString(label) > 60 || strings.ContainsFunc(label, unicode.IsControl) {
		return "", &ValidationError{Message: "label: 1 to 60 characters, no control characters"}
	}
	return label, nil
}

// secretAAD binds a sealed value to its row: a value copied into another row does not open.
func secretAAD(id int64) []byte { return []byte("plaudhook secret " + strconv.FormatInt(id, 10)) }

const secretColumns = `id, endpoint_id, label, fingerprint, source, state, retire_at, revoked_at,
	created_at, created_by, last_matched_at, match_count, key_id`

func scanSecret(s interface{ Scan(...any) error }, extra ...any) (Secret, error) {
	var x Secret
	var retire, revoked, matched sql.NullInt64
	var created int64
	err := s.Scan(append([]any{&x.ID, &x.EndpointID, &x.Label, &x.Fingerprint, &x.Source,
		&x.State, &retire, &revoked, &created, &x.CreatedBy, &matched, &x.MatchCount,
		&x.KeyID}, extra...)...)
	x.CreatedAt = fromMicros(created)
	if retire.Valid {
		x.RetireAt = fromMicros(retire.Int64)
	}
	if revoked.Valid {
		x.RevokedAt = fromMicros(revoked.Int64)
	}
	if matched.Valid {
		x.LastMatchedAt = fromMicros(matched.Int64)
	}
	return x, err
}

// CreateSecret seals and stores a new active secret. It returns a ValidationError for a bad label
// or value, a label already in use on the endpoint, or a value the endpoint already has, and
// ErrNotFound for an unknown endpoint.
func (db *DB) CreateSecret(ctx context.Context, in NewSecret) (Secret, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return Secret{}, fmt.Errorf("create secret: %w", unavailable(err))
	}
	defer tx.Rollback()

	s, err := db.insertSecret(ctx, tx, in)
	if err != nil {
		return s, fmt.Errorf("create secret: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return s, fmt.Errorf("create secret: %w", unavailable(err))
	}
	db.secretsChanged()
	return s, nil
}

// RotateSecret stores a new active secret and, in the same transaction, starts every other
// active stored secret of the endpoint retiring: they keep verifying for retireAfter
// (DefaultRetireAfter when zero), then stop. Environment secrets are left alone. It returns the
// new secret and the ones it retired; errors as CreateSecret.
func (db *DB) RotateSecret(ctx context.Context, in NewSecret, retireAfter time.Duration) (Secret, []Secret, error) {
	if retireAfter <= 0 {
		retireAfter = DefaultRetireAfter
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return Secret{}, nil, fmt.Errorf("rotate secret: %w", unavailable(err))
	}
	defer tx.Rollback()

	// Retire the active ones first, then add the new one.
	rows, err := tx.QueryContext(ctx, `
		UPDATE secrets SET state = 'retiring', retire_at = ?
		WHERE endpoint_id = ? AND source = 'stored' AND state = 'active'
		RETURNING `+secretColumns,
		micros(db.now().Add(retireAfter)), in.EndpointID)
	if err != nil {
		return Secret{}, nil, fmt.Errorf("rotate secret: %w", unavailable(err))
	}
	var retired []Secret
	for rows.Next() {
		s, err := scanSecret(rows)
		if err != nil {
			rows.Close()
			return Secret{}, nil, fmt.Errorf("rotate secret: %w", err)
		}
		retired = append(retired, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Secret{}, nil, fmt.Errorf("rotate secret: %w", err)
	}
	s, err := db.insertSecret(ctx, tx, in)
	if err != nil {
		return s, nil, fmt.Errorf("rotate secret: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return s, nil, fmt.Errorf("rotate secret: %w", unavailable(err))
	}
	db.secretsChanged()
	return s, retired, nil
}

// insertSecret validates and stores one secret inside tx: the row first, to learn its id, then
// the value sealed with that id as additional data.
func (db *DB) insertSecret(ctx context.Context, tx *sql.Tx, in NewSecret) (Secret, error) {
	if db.opt.Sealer == nil {
		return Secret{}, errNoSealer
	}
	label, err := cleanLabel(in.Label)
	if err != nil {
		return Secret{}, err
	}
	value, _, err := CleanSecretValue(in.Value)
	if err != nil {
		return Secret{}, err
	}
	if _, err := findEndpoint(ctx, tx, `id = ?`, in.EndpointID); err != nil {
		return Secret{}, err
	}

	// Refuse a label in use and a value the endpoint already has (by fingerprint).
	fp := Fingerprint([]byte(value))
	var clash string
	err = tx.QueryRowContext(ctx, `
		SELECT label FROM secrets
		WHERE endpoint_id = ? AND state != 'revoked' AND (label = ? OR fingerprint = ?)
		ORDER BY label = ? DESC LIMIT 1`, in.EndpointID, label, fp, label).Scan(&clash)
	switch {
	case err == nil && clash == label:
		return Secret{}, &ValidationError{Message: fmt.Sprintf(
			"the label %q is already in use on this endpoint", label)}
	case err == nil:
		return Secret{}, &ValidationError{Message: fmt.Sprintf(
			"this endpoint already has this secret, as %q", clash)}
	case !errors.Is(err, sql.ErrNoRows):
		return Secret{}, unavailable(err)
	}

	now := db.now().UTC()
	s := Secret{EndpointID: in.EndpointID, Label: label, Fingerprint: fp, Source: SourceStored,
		State: SecretActive, CreatedAt: now, CreatedBy: in.CreatedBy}
	err = tx.QueryRowContext(ctx, `
		INSERT INTO secrets (endpoint_id, label, fingerprint, source, state, created_at, created_by)
		VALUES (?, ?, ?, 'stored', 'active', ?, ?)
		RETURNING id`, in.EndpointID, label, fp, micros(now), in.CreatedBy).Scan(&s.ID)
	if err != nil {
		return s, unavailable(conflict(err))
	}
	keyID, sealed, err := db.opt.Sealer.Seal([]byte(value), secretAAD(s.ID))
	if err != nil {
		return s, err
	}
	s.KeyID = keyID
	if _, err := tx.ExecContext(ctx, `UPDATE secrets SET ciphertext = ?, key_id = ? WHERE id = ?`,
		sealed, keyID, s.ID); err != nil {
		return s, unavailable(err)
	}
	return s, nil
}

// RevokeSecret revokes a stored secret at once: it no longer verifies anything. It returns
// ErrNotFound, or a ValidationError for an environment secret or one already revoked.
func (db *DB) RevokeSecret(ctx context.Context, id int64) (Secret, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return Secret{}, fmt.Errorf("revoke secret %d: %w", id, unavailable(err))
	}
	defer tx.Rollback()

	s, err := findSecret(ctx, tx, id)
	if err != nil {
		return s, err
	}
	switch {
	case s.Source == SourceEnvironment:
		return s, &ValidationError{Message: "this secret comes from the environment: remove it " +
			"from PLAUD_WEBHOOK_SECRET and restart plaudhook"}
	case s.State == SecretRevoked:
		return s, &ValidationError{Message: "this secret is already revoked"}
	}
	s.State, s.RevokedAt = SecretRevoked, db.now().UTC()
	if _, err := tx.ExecContext(ctx, `UPDATE secrets SET state = 'revoked', revoked_at = ?
		WHERE id = ?`, micros(s.RevokedAt), id); err != nil {
		return s, fmt.Errorf("revoke secret %d: %w", id, unavailable(err))
	}
	if err := tx.Commit(); err != nil {
		return s, fmt.Errorf("revoke secret %d: %w", id, unavailable(err))
	}
	db.secretsChanged()
	return s, nil
}

// FindSecretByID returns a secret without its value, or ErrNotFound.
func (db *DB) FindSecretByID(ctx context.Context, id int64) (Secret, error) {
	return findSecret(ctx, db.r, id)
}

func findSecret(ctx context.Context, q querier, id int64) (Secret, error) {
	s, err := scanSecret(q.QueryRowContext(ctx, `SELECT `+secretColumns+` FROM secrets
		WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("secret %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return s, fmt.Errorf("find secret %d: %w", id, err)
	}
	return s, nil
}

// FindSecrets returns an endpoint's secrets without their values, in every state: environment
// ones first, in configuration order, then stored ones, the newest first.
func (db *DB) FindSecrets(ctx context.Context, endpointID int64) ([]Secret, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+secretColumns+` FROM secrets
		WHERE endpoint_id = ?
		ORDER BY source = 'stored', CASE source WHEN 'environment' THEN id ELSE -id END`,
		endpointID)
	if err != nil {
		return nil, fmt.Errorf("find secrets: %w", err)
	}
	defer rows.Close()
	var out []Secret
	for rows.Next() {
		s, err := scanSecret(rows)
		if err != nil {
			return nil, fmt.Errorf("find secrets: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find secrets: %w", err)
	}
	return out, nil
}

// FindSecretKeys returns the stored secrets of an endpoint with their values opened, in every
// state (the caller decides which ones verify), newest first. Environment secrets are not
// included: their values live in the configuration only. A value that does not open is an error.
func (db *DB) FindSecretKeys(ctx context.Context, endpointID int64) ([]SecretKey, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+secretColumns+`, ciphertext FROM secrets
		WHERE endpoint_id = ? AND source = 'stored'
		ORDER BY id DESC`, endpointID)
	if err != nil {
		return nil, fmt.Errorf("find secret keys: %w", err)
	}
	defer rows.Close()
	var out []SecretKey
	for rows.Next() {
		var sealed []byte
		s, err := scanSecret(rows, &sealed)
		if err != nil {
			return nil, fmt.Errorf("find secret keys: %w", err)
		}
		if db.opt.Sealer == nil {
			return nil, fmt.Errorf("find secret keys: %w", errNoSealer)
		}
		value, err := db.opt.Sealer.Open(s.KeyID, sealed, secretAAD(s.ID))
		if err != nil {
			return nil, fmt.Errorf("find secret keys: secret %d: %w", s.ID, err)
		}
		out = append(out, SecretKey{Secret: s, Value: value})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find secret keys: %w", err)
	}
	return out, nil
}

// SecretsGeneration changes whenever this process changes a secret or an endpoint, so a cache of
// secrets or endpoint slugs can tell it is stale without a query. Changes made by another
// process (the CLI) are not seen: such caches also expire by age.
func (db *DB) SecretsGeneration() int64 { return db.secretsGen.Load() }

func (db *DB) secretsChanged() { db.secretsGen.Add(1) }
