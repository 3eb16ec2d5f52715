-- Backup definitions (issue 14, seed 002 FIG. 5 and 10): a named backup the
-- station runs on a schedule, with shell commands the host's agent runs
-- before (pre) and after (post) it.
CREATE TABLE definitions (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    -- Who defined it, and as what: each run backs up with its rights.
    client         TEXT NOT NULL,
    client_role    TEXT NOT NULL CHECK (client_role IN ('client', 'operator')),
    -- The host whose `smapp agent` runs the hooks.
    host           TEXT NOT NULL,
    primary_node   TEXT NOT NULL,
    object_name    TEXT NOT NULL,
    -- A whole volume, or extents (three arrays of one length), never both.
    object_volume  TEXT NULL,
    extent_volumes TEXT[] NULL,
    extent_offsets BIGINT[] NULL,
    extent_lengths BIGINT[] NULL,
    level          TEXT NOT NULL CHECK (level IN ('full', 'cumulative', 'incremental')),
    label          TEXT NOT NULL,
    pool           TEXT NULL,
    -- The canonical spelling (proto::domain::Schedule).
    schedule       TEXT NOT NULL,
    pre_command    TEXT NOT NULL,
    post_command   TEXT NOT NULL,
    hook_timeout   INTEGER NOT NULL CHECK (hook_timeout > 0),
    created        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The next slot; a tick at or after it runs once and moves it past now.
    next_due       TIMESTAMPTZ NOT NULL,
    CHECK ((object_volume IS NULL) <> (extent_volumes IS NULL)),
    CHECK ((extent_volumes IS NULL) = (extent_offsets IS NULL) AND (extent_volumes IS NULL) = (extent_lengths IS NULL))
);

CREATE TABLE definition_runs (
    id            BIGSERIAL PRIMARY KEY,
    definition_id BIGINT NOT NULL REFERENCES definitions (id) ON DELETE CASCADE,
    due           TIMESTAMPTZ NOT NULL,
    started       TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished      TIMESTAMPTZ NULL,
    state         TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'succeeded', 'failed', 'skipped')),
    abs_id        BIGINT NULL REFERENCES abs (id),
    channel_id    BIGINT NULL REFERENCES channels (id),
    reason        TEXT NOT NULL DEFAULT '',
    pre_status    INTEGER NULL,
    pre_output    TEXT NOT NULL DEFAULT '',
    post_status   INTEGER NULL,
    post_output   TEXT NOT NULL DEFAULT '',
    CHECK ((state = 'running') = (finished IS NULL))
);
CREATE INDEX definition_runs_definition ON definition_runs (definition_id, id);
CREATE UNIQUE INDEX definition_runs_one_running ON definition_runs (definition_id) WHERE state = 'running';

-- The definition whose run made an ABS (its name: the ABS outlives it).
ALTER TABLE abs ADD COLUMN definition TEXT NULL;

-- A channel's history beside its state changes: a definition's hooks and
-- their output.
CREATE TABLE channel_notes (
    id         BIGSERIAL PRIMARY KEY,
    channel_id BIGINT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    actor      TEXT NOT NULL,
    text       TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX channel_notes_channel ON channel_notes (channel_id, id);
