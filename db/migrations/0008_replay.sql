-- +goose Up
-- Replay and forwarding: saved destinations, every outbound try, automatic forwarding with a
-- durable retry queue, and bulk replay jobs. Times are INTEGER Unix microseconds, UTC.

-- A saved destination. Its own signing secret and its extra headers (an Authorization header,
-- say) are sealed like endpoint secrets (AES-256-GCM under the master key, bound to the row id;
-- *_key_id names the master key): the table never holds them in clear. header_names lists the
-- extra headers' names (never values) for display.
CREATE TABLE targets (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    url              TEXT    NOT NULL,
    default_mode     TEXT    NOT NULL DEFAULT 'original'
                     CHECK (default_mode IN ('original', 'resign')),
    scheme           TEXT    NOT NULL DEFAULT ''   -- resign scheme; '' = the delivery's own
                     CHECK (scheme IN ('', 'devguide', 'embedded')),
    secret_sealed    BLOB,                         -- NULL: no secret of its own
    secret_key_id    TEXT    NOT NULL DEFAULT '',
    headers_sealed   BLOB,                         -- NULL: no extra headers
    headers_key_id   TEXT    NOT NULL DEFAULT '',
    header_names     TEXT    NOT NULL DEFAULT '',  -- comma-separated names of the extra headers
    follow_redirects INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- One outbound request and what came back. Rows are kept when their target is deleted.
CREATE TABLE attempts (
    id                 INTEGER PRIMARY KEY,
    event_id           INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    target_id          INTEGER REFERENCES targets (id) ON DELETE SET NULL,
    target_name        TEXT    NOT NULL DEFAULT '',  -- as it was when sent; '' for a one-off URL
    url                TEXT    NOT NULL,
    mode               TEXT    NOT NULL CHECK (mode IN ('original', 'resign', 'edited')),
    scheme             TEXT    NOT NULL DEFAULT '',  -- signing scheme of resign/edited
    secret_label       TEXT    NOT NULL DEFAULT '',  -- which secret signed; never its value
    source             TEXT    NOT NULL,             -- ui, api, cli, forward, bulk
    actor              TEXT    NOT NULL,
    actor_id           INTEGER,
    bulk_job_id        INTEGER,
    forward_id         INTEGER,
    started_at         INTEGER NOT NULL,
    duration_us        INTEGER NOT NULL DEFAULT 0,
    request_headers    TEXT    NOT NULL DEFAULT '{}', -- JSON; extra target headers as names only
    request_sha256     TEXT    NOT NULL,
    request_size       INTEGER NOT NULL,
    request_body       BLOB,                           -- edited mode only: the edited bytes
    status_code        INTEGER NOT NULL DEFAULT 0,
    response_headers   TEXT    NOT NULL DEFAULT '{}',
    response_body      BLOB    NOT NULL DEFAULT x'',  -- first 64 KiB
    response_truncated INTEGER NOT NULL DEFAULT 0,
    error_kind         TEXT    NOT NULL DEFAULT '',   -- dns, connection_refused, tls, timeout, ...
    error              TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX attempts_event ON attempts (event_id, id);
CREATE INDEX attempts_bulk ON attempts (bulk_job_id, event_id) WHERE bulk_job_id IS NOT NULL;

-- Forward newly stored events to a target. event_types is a comma-separated list; '' means
-- every type. endpoint_id NULL means every endpoint.
CREATE TABLE forwarding_rules (
    id          INTEGER PRIMARY KEY,
    target_id   INTEGER NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    endpoint_id INTEGER REFERENCES endpoints (id) ON DELETE CASCADE,
    event_types TEXT    NOT NULL DEFAULT '',
    mode        TEXT    NOT NULL DEFAULT 'original' CHECK (mode IN ('original', 'resign')),
    enabled     INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL
);

-- The durable forwarding queue: one row per (rule, event). A row is pending until a try gets a
-- 2xx (delivered) or the retry schedule runs out (dead, until someone retries it).
CREATE TABLE forward_queue (
    id              INTEGER PRIMARY KEY,
    rule_id         INTEGER REFERENCES forwarding_rules (id) ON DELETE SET NULL,
    target_id       INTEGER NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    event_id        INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    mode            TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'dead')),
    tries           INTEGER NOT NULL DEFAULT 0,
    next_at         INTEGER NOT NULL,
    last_attempt_id INTEGER,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (rule_id, event_id)
);

CREATE INDEX forward_queue_due ON forward_queue (next_at) WHERE state = 'pending';
CREATE INDEX forward_queue_state ON forward_queue (state, id);

-- NOTE: forwarding is enqueued by this trigger, inside the ingest writer's group-commit
-- transaction, so an acknowledged event can never miss its forward, even if the process dies
-- right after the answer. It fires only when an event row is really inserted: a duplicate
-- delivery takes the upsert's UPDATE path and is not forwarded again. forwarding_rules is a
-- handful of rows, so this costs the ingest path one tiny indexed read per new event.
-- +goose StatementBegin
CREATE TRIGGER events_forward AFTER INSERT ON events
BEGIN
    INSERT OR IGNORE INTO forward_queue (rule_id, target_id, event_id, mode, next_at,
        created_at, updated_at)
    SELECT r.id, r.target_id, NEW.id, r.mode, NEW.first_received_at,
        NEW.first_received_at, NEW.first_received_at
    FROM forwarding_rules r
    WHERE r.enabled = 1
      AND (r.endpoint_id IS NULL OR r.endpoint_id = NEW.endpoint_id)
      AND (r.event_types = ''
           OR instr(',' || r.event_types || ',', ',' || NEW.event_type || ',') > 0);
END;
-- +goose StatementEnd

-- A bulk replay: every event matching a filter, sent at a rate limit with bounded concurrency.
-- last_event_id is the highest event id the job covers (fixed when it is created), cursor the
-- id up to which every event has been handled; a restart resumes after it.
CREATE TABLE bulk_jobs (
    id            INTEGER PRIMARY KEY,
    actor         TEXT    NOT NULL,
    actor_id      INTEGER,
    target_id     INTEGER REFERENCES targets (id) ON DELETE SET NULL,
    url           TEXT    NOT NULL,
    mode          TEXT    NOT NULL CHECK (mode IN ('original', 'resign')),
    scheme        TEXT    NOT NULL DEFAULT '',
    secret        TEXT    NOT NULL DEFAULT '',  -- which secret signs: 'target' or a label
    endpoint_id   INTEGER,
    event_type    TEXT,
    received_from INTEGER,
    received_to   INTEGER,
    rate          REAL    NOT NULL,             -- requests per second
    concurrency   INTEGER NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'running'
                  CHECK (state IN ('running', 'cancelled', 'done')),
    total         INTEGER NOT NULL,
    done          INTEGER NOT NULL DEFAULT 0,  -- events handled, failed ones included
    failed        INTEGER NOT NULL DEFAULT 0,  -- of which did not get a 2xx
    last_event_id INTEGER NOT NULL,
    cursor        INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    finished_at   INTEGER
);

CREATE INDEX bulk_jobs_state ON bulk_jobs (state, id);

-- +goose Down
DROP TABLE bulk_jobs;
DROP TRIGGER events_forward;
DROP TABLE forward_queue;
DROP TABLE forwarding_rules;
DROP TABLE attempts;
DROP TABLE targets;
