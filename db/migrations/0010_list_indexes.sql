-- +goose Up
-- Indexes for the transcript and recording filters: each serves its list in the order it is
-- shown, so a filtered page stops after one page of rows instead of walking every transcript
-- and testing each.
CREATE INDEX transcripts_status ON transcripts (status, occurred_at, id);
CREATE INDEX transcripts_language ON transcripts (language, occurred_at, id);
-- Recordings still waiting for a transcript (the overdue flag).
CREATE INDEX recordings_waiting ON recordings (last_event_at, id)
    WHERE NOT has_transcript AND status != 'failed';

-- +goose Down
DROP INDEX recordings_waiting;
DROP INDEX transcripts_language;
DROP INDEX transcripts_status;
