package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Token is an API token of a user. The token value itself is never stored: only its SHA-256
// (HashToken) and its first characters (Prefix), which name it in lists.
type Token struct {
	ID         int64
	UserID     int64
	Username   string // filled by queries
	Label      string
	Prefix     string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero when never used
}

// TokenPrefixLen is how many leading characters of a token are kept to recognise it.
const TokenPrefixLen = 10

const tokenColumns = `t.id, t.user_id, u.username, t.label, t.prefix, t.created_at, t.last_used_at`

func scanToken(s interface{ Scan(...any) error }) (Token, error) {
	var t Token
	var created, used int64
	err := s.Scan(&t.ID, &t.UserID, &t.Username, &t.Label, &t.Prefix, &created, &used)
	t.CreatedAt = fromMicros(created)
	if used != 0 {
		t.LastUsedAt = fromMicros(used)
	}
	return t, err
}

// CreateToken stores a new API token for userID under the hash of token. The label must be 1 to
// 100 characters; otherwise a *ValidationError comes back. ErrNotFound means no such user.
func (db *DB) CreateToken(ctx context.Context, userID int64, label, token string) (Token, error) {
	label = strings.TrimSpace(label)
	if label == "" || utf8.RuneCountInString(label) > 100 {
		return Token{}, &ValidationError{Message: "a token needs a label of 1 to 100 characters"}
	}
	if len(token) < 32 {
		return Token{}, &ValidationError{Message: "token too short"}
	}
	res, err := db.w.ExecContext(ctx, `
		INSERT INTO tokens (user_id, label, token_hash, prefix, created_at)
		SELECT id, ?, ?, ?, ? FROM users WHERE id = ?`,
		label, HashToken(token), token[:TokenPrefixLen], micros(db.now()), userID)
	if err != nil {
		return Token{}, fmt.Errorf("create token: %w", unavailable(conflict(err)))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Token{}, fmt.Errorf("create token for user %d: %w", userID, ErrNotFound)
	}
	id, _ := res.LastInsertId()
	return db.FindTokenByID(ctx, id)
}

// FindTokenByID returns one token, or ErrNotFound.
func (db *DB) FindTokenByID(ctx context.Context, id int64) (Token, error) {
	t, err := scanToken(db.r.QueryRowContext(ctx, `SELECT `+tokenColumns+`
		FROM tokens t JOIN users u ON u.id = t.user_id
		WHERE t.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("token %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("find token %d: %w", id, err)
	}
	return t, nil
}

// FindTokens returns the tokens of userID (every user's when userID is 0), newest first.
func (db *DB) FindTokens(ctx context.Context, userID int64) ([]Token, error) {
	q := `SELECT ` + tokenColumns + ` FROM tokens t JOIN users u ON u.id = t.user_id`
	var args []any
	if userID != 0 {
		q += ` WHERE t.user_id = ?`
		args = append(args, userID)
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY t.id DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("find tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("find tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find tokens: %w", err)
	}
	return out, nil
}

// FindTokenByToken returns the token a bearer value names, with its user, or ErrNotFound. The
// caller decides whether the user may act (a disabled user's tokens are found but must not
// work).
func (db *DB) FindTokenByToken(ctx context.Context, token string) (Token, User, error) {
	row := db.r.QueryRowContext(ctx, `
		SELECT `+tokenColumns+`, `+prefixed("u.", userColumns)+`
		FROM tokens t JOIN users u ON u.id = t.user_id
		WHERE t.token_hash = ?`, HashToken(token))
	var t Token
	var u User
	var created, used, ucreated, uchanged int64
	err := row.Scan(&t.ID, &t.UserID, &t.Username, &t.Label, &t.Prefix, &created, &used,
		&u.ID, &u.Username, &u.PasswordHash, &u.Role, &u.Disabled, &ucreated, &uchanged)
	if errors.Is(err, sql.ErrNoRows) {
		return t, u, fmt.Errorf("token: %w", ErrNotFound)
	}
	if err != nil {
		return t, u, fmt.Errorf("find token: %w", err)
	}
	t.CreatedAt = fromMicros(created)
	if used != 0 {
		t.LastUsedAt = fromMicros(used)
	}
	u.CreatedAt, u.PasswordChangedAt = fromMicros(ucreated), fromMicros(uchanged)
	return t, u, nil
}

// TouchToken records that a token was used.
func (db *DB) TouchToken(ctx context.Context, id int64) error {
	_, err := db.w.ExecContext(ctx, `UPDATE tokens SET last_used_at = ? WHERE id = ?`,
		micros(db.now()), id)
	if err != nil {
		return fmt.Errorf("touch token: %w", unavailable(err))
	}
	return nil
}

// DeleteToken revokes a token: it stops working at once. With userID other than 0 only that
// user's token is deleted, so a user cannot revoke someone else's. It returns the deleted token,
// or ErrNotFound when there is no such token (of that user).
func (db *DB) DeleteToken(ctx context.Context, id, userID int64) (Token, error) {
	t, err := db.FindTokenByID(ctx, id)
	if err != nil {
		return t, err
	}
	if userID != 0 && t.UserID != userID {
		return Token{}, fmt.Errorf("token %d of user %d: %w", id, userID, ErrNotFound)
	}
	res, err := db.w.ExecContext(ctx, `DELETE FROM tokens WHERE id = ?`, id)
	if err != nil {
		return t, fmt.Errorf("delete token %d: %w", id, unavailable(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return t, fmt.Errorf("token %d: %w", id, ErrNotFound)
	}
	return t, nil
}
