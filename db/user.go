package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Role is what a user may do: viewers browse, operators also replay, admins manage everything.
type Role string

// The roles, least to most privileged.
const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
	RoleAdmin    Role = "admin"
)

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool { return r == RoleViewer || r == RoleOperator || r == RoleAdmin }

// Allows reports whether a user with role r may do what needs role need.
func (r Role) Allows(need Role) bool { return r.rank() >= need.rank() }

func (r Role) rank() int {
	switch r {
	case RoleAdmin:
		return 3
	case RoleOperator:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

// User is a person who can sign in.
type User struct {
	ID                int64
	Username          string
	PasswordHash      string
	Role              Role
	Disabled          bool
	CreatedAt         time.Time
	PasswordChangedAt time.Time
}

// Session is a login session; the cookie holds a token whose hash is TokenHash.
type Session struct {
	ID         int64
	UserID     int64
	CreatedAt  time.Time
	LastSeenAt time.Time
}

const userColumns = `id, username, password_hash, role, disabled, created_at, password_changed_at`

func scanUser(s interface{ Scan(...any) error }) (User, error) {
	var u User
	var created, changed int64
	err := s.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.Role, &u.Disabled, &created, &changed)
	u.CreatedAt, u.PasswordChangedAt = fromMicros(created), fromMicros(changed)
	return u, err
}

// CountUsers returns how many users exist.
func (db *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// CreateUser stores a new user; passwordHash must already be hashed. It returns ErrConflict when
// the username is taken (case-insensitively).
func (db *DB) CreateUser(ctx context.Context, username, passwordHash string, role Role) (User, error) {
	if !role.Valid() {
		return User{}, &ValidationError{Message: fmt.Sprintf("unknown role %q", role)}
	}
	if err := ValidateUsername(username); err != nil {
		return User{}, err
	}
	now := micros(db.now())
	res, err := db.w.ExecContext(ctx, `
		INSERT INTO users (username, password_hash, role, created_at, password_changed_at)
		VALUES (?, ?, ?, ?, ?)`, username, passwordHash, string(role), now, now)
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", username, conflict(err))
	}
	id, _ := res.LastInsertId()
	return db.FindUserByID(ctx, id)
}

// FindUserByID returns one user, or ErrNotFound.
func (db *DB) FindUserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(db.r.QueryRowContext(ctx,
		`SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("find user %d: %w", id, err)
	}
	return u, nil
}

// FindUserByUsername returns one user by name (case-insensitive), or ErrNotFound.
func (db *DB) FindUserByUsername(ctx context.Context, username string) (User, error) {
	u, err := scanUser(db.r.QueryRowContext(ctx,
		`SELECT `+userColumns+` FROM users WHERE username = ?`, username))
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("find user %q: %w", username, err)
	}
	return u, nil
}

// FindUsers returns every user, by name.
func (db *DB) FindUsers(ctx context.Context) ([]User, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("find users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("find users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UpdateUserPassword sets a new password hash and ends every session of the user except
// keepSessionID (0 ends them all). It returns ErrNotFound for an unknown user.
func (db *DB) UpdateUserPassword(ctx context.Context, userID int64, hash string, keepSessionID int64) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("update password: %w", unavailable(err))
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx,
		`UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?`,
		hash, micros(db.now()), userID)
	if err != nil {
		return fmt.Errorf("update password: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("user %d: %w", userID, ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx,
		`DELETE FROM sessions WHERE user_id = ? AND id != ?`, userID, keepSessionID); err != nil {
		return fmt.Errorf("end sessions: %w", err)
	}
	return tx.Commit()
}

// UpdateUserDisabled disables or re-enables a user; disabling ends all their sessions at once
// (their API tokens stay stored but stop working while the user is disabled). Disabling the
// last enabled admin is refused with a *ValidationError; ErrNotFound means no such user.
func (db *DB) UpdateUserDisabled(ctx context.Context, userID int64, disabled bool) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("update user: %w", unavailable(err))
	}
	defer tx.Rollback()
	admins, err := countAdmins(ctx, tx)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE users SET disabled = ? WHERE id = ?`, disabled, userID)
	if err != nil {
		return fmt.Errorf("update user: %w", unavailable(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("user %d: %w", userID, ErrNotFound)
	}
	if disabled {
		if err := keepAnAdmin(ctx, tx, admins); err != nil {
			return err
		}
		if err := endSessions(ctx, tx, userID); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("update user: %w", unavailable(err))
	}
	return nil
}

// UpdateUserRole changes a user's role and ends their sessions, so the new role starts with a
// fresh sign-in (their API tokens act with the new role at once). Demoting the last enabled
// admin is refused with a *ValidationError; ErrNotFound means no such user.
func (db *DB) UpdateUserRole(ctx context.Context, userID int64, role Role) error {
	if !role.Valid() {
		return &ValidationError{Message: fmt.Sprintf("unknown role %q", role)}
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("update role: %w", unavailable(err))
	}
	defer tx.Rollback()
	admins, err := countAdmins(ctx, tx)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE users SET role = ? WHERE id = ? AND role != ?`,
		string(role), userID, string(role))
	if err != nil {
		return fmt.Errorf("update role: %w", unavailable(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// Either no such user, or the role is unchanged: nothing to do for the latter.
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE id = ?`, userID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %d: %w", userID, ErrNotFound)
		}
		return err
	}
	if err := keepAnAdmin(ctx, tx, admins); err != nil {
		return err
	}
	if err := endSessions(ctx, tx, userID); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("update role: %w", unavailable(err))
	}
	return nil
}

// countAdmins counts the enabled admins.
func countAdmins(ctx context.Context, tx *sql.Tx) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx,
		`SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count admins: %w", err)
	}
	return n, nil
}

// keepAnAdmin refuses a change that takes the enabled admins from some (before) to none:
// nobody could manage users then.
func keepAnAdmin(ctx context.Context, tx *sql.Tx, before int) error {
	after, err := countAdmins(ctx, tx)
	if err != nil {
		return err
	}
	if before > 0 && after == 0 {
		return &ValidationError{Message: "at least one enabled admin must remain"}
	}
	return nil
}

// endSessions deletes every session of a user.
func endSessions(ctx context.Context, tx *sql.Tx, userID int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("end sessions: %w", unavailable(err))
	}
	return nil
}

// ValidateUsername checks a new username: 1 to 64 letters, digits or any of . _ - @.
func ValidateUsername(username string) error {
	ok := username != "" && utf8.RuneCountInString(username) <= 64
	for _, r := range username {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("._-@", r) {
			ok = false
		}
	}
	if !ok {
		return &ValidationError{
			Message: "a username is 1 to 64 letters, digits or any of . _ - @ (no spaces)"}
	}
	return nil
}

// HashToken returns the stored form of a session or API token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CreateSession stores a new session for userID under the hash of token.
func (db *DB) CreateSession(ctx context.Context, userID int64, token, remoteAddr, userAgent string) (Session, error) {
	now := db.now()
	res, err := db.w.ExecContext(ctx, `
		INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at, remote_addr, user_agent)
		VALUES (?, ?, ?, ?, ?, ?)`,
		HashToken(token), userID, micros(now), micros(now), remoteAddr, userAgent)
	if err != nil {
		return Session{}, fmt.Errorf("create session: %w", unavailable(err))
	}
	id, _ := res.LastInsertId()
	return Session{ID: id, UserID: userID, CreatedAt: now.UTC(), LastSeenAt: now.UTC()}, nil
}

// FindSessionByToken returns the session a cookie token names, with its user, or ErrNotFound.
func (db *DB) FindSessionByToken(ctx context.Context, token string) (Session, User, error) {
	var s Session
	var created, seen int64
	row := db.r.QueryRowContext(ctx, `
		SELECT s.id, s.user_id, s.created_at, s.last_seen_at, `+prefixed("u.", userColumns)+`
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = ?`, HashToken(token))
	var u User
	var ucreated, uchanged int64
	err := row.Scan(&s.ID, &s.UserID, &created, &seen, &u.ID, &u.Username, &u.PasswordHash,
		&u.Role, &u.Disabled, &ucreated, &uchanged)
	if errors.Is(err, sql.ErrNoRows) {
		return s, u, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return s, u, fmt.Errorf("find session: %w", err)
	}
	s.CreatedAt, s.LastSeenAt = fromMicros(created), fromMicros(seen)
	u.CreatedAt, u.PasswordChangedAt = fromMicros(ucreated), fromMicros(uchanged)
	return s, u, nil
}

// TouchSession records activity on a session (for the idle timeout).
func (db *DB) TouchSession(ctx context.Context, id int64) error {
	_, err := db.w.ExecContext(ctx, `UPDATE sessions SET last_seen_at = ? WHERE id = ?`,
		micros(db.now()), id)
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

// DeleteSession ends one session. Deleting a session that does not exist is not an error.
func (db *DB) DeleteSession(ctx context.Context, id int64) error {
	if _, err := db.w.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteExpiredSessions removes sessions idle since before idleBefore or created before
// createdBefore.
func (db *DB) DeleteExpiredSessions(ctx context.Context, idleBefore, createdBefore time.Time) error {
	_, err := db.w.ExecContext(ctx,
		`DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?`,
		micros(idleBefore), micros(createdBefore))
	if err != nil {
		return fmt.Errorf("delete expired sessions: %w", err)
	}
	return nil
}

// FindSetting returns a stored setting, or ErrNotFound.
func (db *DB) FindSetting(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	err := db.r.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("setting %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find setting %q: %w", name, err)
	}
	return v, nil
}

// UpdateSetting stores a setting, replacing any previous value.
func (db *DB) UpdateSetting(ctx context.Context, name string, value []byte) error {
	_, err := db.w.ExecContext(ctx, `
		INSERT INTO settings (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
	if err != nil {
		return fmt.Errorf("update setting %q: %w", name, err)
	}
	return nil
}

func prefixed(p, cols string) string {
	out := ""
	start := 0
	for i := 0; i <= len(cols); i++ {
		if i == len(cols) || cols[i] == ',' {
			c := cols[start:i]
			for len(c) > 0 && (c[0] == ' ' || c[0] == '\n' || c[0] == '\t') {
				c = c[1:]
			}
			if out != "" {
				out += ", "
			}
			out += p + c
			start = i + 1
		}
	}
	return out
}
