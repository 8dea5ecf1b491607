-- +goose Up
-- API tokens for scripts. The token itself is shown once when created; only its SHA-256 is
-- stored, so a copy of the database cannot be turned into a working token. prefix is the
-- token's first characters, enough to recognise it in a list and nothing more. Revoking a token
-- deletes its row (the audit log keeps the history); deleting a user deletes their tokens.
CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label        TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    prefix       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL DEFAULT 0   -- 0: never used
);

CREATE INDEX tokens_user ON tokens (user_id, id);

-- The audit page filters by actor and action prefix (indexes from 0003) and pages by id; a
-- time range is served by this one.
CREATE INDEX audit_at ON audit (at, id);

-- +goose Down
DROP INDEX audit_at;
DROP TABLE tokens;
