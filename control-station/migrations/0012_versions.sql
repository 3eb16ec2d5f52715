-- Copy versions (seed 004, issue 15): volume pools of source and target
-- volumes, version sets that copy a source pool onto target pools in
-- rotation keeping N versions, and the records of each version: the
-- pre-pairing record of a future version, the copy record a version is
-- made from, the replication record of a version made; each with its
-- (source, target) pairs.

CREATE TABLE vpools (
    name    TEXT PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    kind    TEXT NOT NULL CHECK (kind IN ('source', 'target')),
    created TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A volume is in at most one volume pool; `position` keeps the order the
-- volumes were given in (the order a target scan goes through).
CREATE TABLE vpool_volumes (
    vpool     TEXT NOT NULL REFERENCES vpools (name) ON DELETE CASCADE,
    volume_id BIGINT NOT NULL UNIQUE REFERENCES volumes (id),
    position  BIGSERIAL NOT NULL,
    added     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (vpool, volume_id)
);

CREATE TABLE version_sets (
    name       TEXT PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    source     TEXT NOT NULL REFERENCES vpools (name),
    keep       INTEGER NOT NULL CHECK (keep >= 1),
    defined_by TEXT NOT NULL,
    created    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The target pools of a set, in rotation order; a target pool serves one set.
CREATE TABLE version_set_targets (
    set_name TEXT NOT NULL REFERENCES version_sets (name) ON DELETE CASCADE,
    position INTEGER NOT NULL CHECK (position >= 0),
    vpool    TEXT NOT NULL UNIQUE REFERENCES vpools (name),
    PRIMARY KEY (set_name, position)
);

CREATE TABLE version_records (
    id            BIGSERIAL PRIMARY KEY,
    set_name      TEXT NOT NULL REFERENCES version_sets (name) ON DELETE CASCADE,
    number        BIGINT NOT NULL CHECK (number >= 1),
    kind          TEXT NOT NULL CHECK (kind IN ('pre_pairing', 'copy', 'replication')),
    target_vpool  TEXT NOT NULL REFERENCES vpools (name),
    state         TEXT NOT NULL CHECK (state IN ('ready', 'refused', 'running', 'complete', 'failed', 'retired')),
    -- Why refused or failed; what changed against the pre-copy record.
    reason        TEXT NOT NULL DEFAULT '',
    point_in_time TIMESTAMPTZ,
    bytes_copied  BIGINT NOT NULL DEFAULT 0 CHECK (bytes_copied >= 0),
    created       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (set_name, number, kind)
);

CREATE TABLE version_record_pairs (
    record_id        BIGINT NOT NULL REFERENCES version_records (id) ON DELETE CASCADE,
    position         INTEGER NOT NULL CHECK (position >= 0),
    source_volume_id BIGINT NOT NULL REFERENCES volumes (id),
    target_volume_id BIGINT NOT NULL REFERENCES volumes (id),
    PRIMARY KEY (record_id, position),
    UNIQUE (record_id, source_volume_id),
    UNIQUE (record_id, target_volume_id)
);
