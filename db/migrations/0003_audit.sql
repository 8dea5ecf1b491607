-- +goose Up
-- Who did what, and when. Rows are only ever added: triggers refuse updates and deletes.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,            -- username, or "system" / "cli"
    actor_id    INTEGER,                     -- users.id when a user acted
    action      TEXT    NOT NULL,            -- e.g. "login.failed", "secret.rotate", "replay.send"
    target      TEXT    NOT NULL DEFAULT '', -- what was acted on, e.g. "endpoint default"
    detail      TEXT    NOT NULL DEFAULT '', -- short human text; never secret values
    remote_addr TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX audit_action ON audit (action, id);
CREATE INDEX audit_actor ON audit (actor, id);

-- +goose StatementBegin
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE audit;
