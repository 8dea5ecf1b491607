-- +goose Up
-- Recordings and transcripts, normalised from stored events after they were acknowledged. The
-- raw event stays the source of truth: everything here can be rebuilt with `plaudhook reindex`.
-- Times are INTEGER Unix microseconds (UTC); segment offsets are INTEGER milliseconds.

-- One recording: what Plaud's file id and transcription ids refer to. Its status, title and
-- times are recomputed from all its events on every change, so the order in which events
-- arrive never matters.
CREATE TABLE recordings (
    id               INTEGER PRIMARY KEY,
    file_id          TEXT    NOT NULL DEFAULT '',
    transcription_id TEXT    NOT NULL DEFAULT '',
    title            TEXT    NOT NULL DEFAULT '',
    status           TEXT    NOT NULL DEFAULT '',
    uploaded_at      INTEGER NOT NULL,           -- first synced/recorded event, else first event
    last_event_at    INTEGER NOT NULL,           -- latest occurrence among its events
    has_transcript   INTEGER NOT NULL DEFAULT 0, -- a completed transcript exists
    created_at       INTEGER NOT NULL
);

CREATE INDEX recordings_recent ON recordings (last_event_at, id);

CREATE TABLE transcripts (
    id               INTEGER PRIMARY KEY,
    recording_id     INTEGER NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    source_key       TEXT    NOT NULL UNIQUE,    -- "transcription:<id>", else "event:<id>"
    event_id         INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE, -- content source
    first_event_id   INTEGER NOT NULL,           -- the event that created it
    transcription_id TEXT    NOT NULL DEFAULT '',
    status           TEXT    NOT NULL,           -- completed, failed, processing
    language         TEXT    NOT NULL DEFAULT '',
    duration_ms      INTEGER NOT NULL DEFAULT 0,
    text             TEXT    NOT NULL DEFAULT '',
    error_code       TEXT    NOT NULL DEFAULT '',
    error_message    TEXT    NOT NULL DEFAULT '',
    missing          TEXT    NOT NULL DEFAULT '[]', -- JSON array: what the payload lacked
    speakers         TEXT    NOT NULL DEFAULT '[]', -- JSON array: labels, first appearance first
    segment_count    INTEGER NOT NULL DEFAULT 0,
    content_hash     TEXT    NOT NULL,           -- unchanged content is never rewritten
    occurred_at      INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE INDEX transcripts_list ON transcripts (occurred_at, id);
CREATE INDEX transcripts_recording ON transcripts (recording_id);
CREATE INDEX transcripts_event ON transcripts (event_id);

-- What one event says about a recording: the timeline. Ids are kept here so that a later event
-- naming the same file or transcription finds its recording.
CREATE TABLE recording_events (
    event_id         INTEGER PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    recording_id     INTEGER NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    transcript_id    INTEGER REFERENCES transcripts (id) ON DELETE SET NULL,
    file_id          TEXT    NOT NULL DEFAULT '',
    transcription_id TEXT    NOT NULL DEFAULT '',
    title            TEXT    NOT NULL DEFAULT '',
    status           TEXT    NOT NULL DEFAULT '', -- recording status this event implies, '' none
    uploaded         INTEGER NOT NULL DEFAULT 0,  -- the event says the audio exists
    occurred_at      INTEGER NOT NULL,
    received_at      INTEGER NOT NULL
);

CREATE INDEX recording_events_recording ON recording_events (recording_id, occurred_at);
CREATE INDEX recording_events_file ON recording_events (file_id);
CREATE INDEX recording_events_transcription ON recording_events (transcription_id);

CREATE TABLE segments (
    id            INTEGER PRIMARY KEY,
    transcript_id INTEGER NOT NULL REFERENCES transcripts (id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,              -- position in the payload's array
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    speaker       TEXT    NOT NULL DEFAULT '',   -- the original label, never renamed
    text          TEXT    NOT NULL,
    UNIQUE (transcript_id, idx)
);

-- Full-text index over segment text. The trigram tokenizer finds any substring of three or
-- more characters, which is what CJK needs: unicode61 treats a run of Japanese or Chinese
-- without spaces as one token and misses words inside it (measured in db/transcript_test.go,
-- TestTokenizerCJK). Shorter terms fall back to LIKE.
CREATE VIRTUAL TABLE segments_fts USING fts5 (
    text,
    content = 'segments',
    content_rowid = 'id',
    tokenize = 'trigram'
);

-- +goose StatementBegin
CREATE TRIGGER segments_fts_insert AFTER INSERT ON segments BEGIN
    INSERT INTO segments_fts (rowid, text) VALUES (new.id, new.text);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER segments_fts_delete AFTER DELETE ON segments BEGIN
    INSERT INTO segments_fts (segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER segments_fts_update AFTER UPDATE OF text ON segments BEGIN
    INSERT INTO segments_fts (segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO segments_fts (rowid, text) VALUES (new.id, new.text);
END;
-- +goose StatementEnd

-- Speaker names the team gave; the original label stays in segments.speaker.
CREATE TABLE speaker_names (
    transcript_id INTEGER NOT NULL REFERENCES transcripts (id) ON DELETE CASCADE,
    label         TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    renamed_by    TEXT    NOT NULL,
    renamed_by_id INTEGER,
    renamed_at    INTEGER NOT NULL,
    PRIMARY KEY (transcript_id, label)
);

-- Per-user privacy for shared screens: blur transcript text until clicked.
ALTER TABLE users ADD COLUMN blur_transcripts INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE users DROP COLUMN blur_transcripts;
DROP TABLE speaker_names;
DROP TABLE segments_fts;
DROP TABLE segments;
DROP TABLE recording_events;
DROP TABLE transcripts;
DROP TABLE recordings;
