-- The control station's catalog: registry of primary nodes, movers, pairs and
-- drives; tapes; logical objects and their abstract block sets (ABS) with
-- their maps (one row per extent, never per block); segments on tape; and
-- channels with every state transition recorded.
--
-- Integers that are u32 in the wire/tape format (segment seq, tape file
-- number, CRC32C) are BIGINT with a range check; byte counts are BIGINT >= 0.

-- Registry ------------------------------------------------------------------

CREATE TABLE primary_nodes (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE CHECK (name <> ''),
    registered_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE volumes (
    id              BIGSERIAL PRIMARY KEY,
    primary_node_id BIGINT NOT NULL REFERENCES primary_nodes (id) ON DELETE CASCADE,
    name            TEXT NOT NULL CHECK (name <> ''),
    block_size      BIGINT NOT NULL CHECK (block_size BETWEEN 1 AND 4294967295),
    track_size      BIGINT NOT NULL CHECK (track_size BETWEEN 1 AND 4294967295),
    size_bytes      BIGINT NOT NULL CHECK (size_bytes >= 0),
    UNIQUE (primary_node_id, name),
    CHECK (track_size % block_size = 0)
);

CREATE TABLE movers (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE CHECK (name <> ''),
    role          TEXT NOT NULL CHECK (role IN ('front-end', 'back-end', 'both')),
    address       TEXT NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen     TIMESTAMPTZ NOT NULL DEFAULT now(),
    state         TEXT NOT NULL DEFAULT 'online' CHECK (state IN ('online', 'offline', 'draining'))
);

CREATE TABLE mover_pairs (
    id      BIGSERIAL PRIMARY KEY,
    fe_id   BIGINT NOT NULL REFERENCES movers (id),
    be_id   BIGINT NOT NULL REFERENCES movers (id),
    created TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (fe_id, be_id)
);
CREATE INDEX mover_pairs_be ON mover_pairs (be_id);

CREATE TABLE drives (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE CHECK (name <> ''),
    be_mover_id BIGINT NOT NULL REFERENCES movers (id),
    created     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX drives_be ON drives (be_mover_id);

-- Tapes ---------------------------------------------------------------------

-- Labels are allocated from this sequence: prefix + zero-padded number.
CREATE SEQUENCE tape_label_seq START 1;

-- state: scratch (empty), filling (has data, room left), full.
-- in_use: reserved by a channel (tape_for_writing) or mounted; a tape is
-- handed to one channel at a time. mounted_in is the drive holding it (one
-- tape per drive, one drive per tape: the single source of truth for both
-- directions).
CREATE TABLE tapes (
    id            BIGSERIAL PRIMARY KEY,
    label         TEXT NOT NULL UNIQUE CHECK (label ~ '^[A-Z0-9][A-Z0-9_-]{0,5}$'),
    pool          TEXT NOT NULL CHECK (pool <> ''),
    state         TEXT NOT NULL DEFAULT 'scratch' CHECK (state IN ('scratch', 'filling', 'full')),
    path          TEXT NOT NULL,
    bytes_written BIGINT NOT NULL DEFAULT 0 CHECK (bytes_written >= 0),
    files_written INTEGER NOT NULL DEFAULT 0 CHECK (files_written >= 0),
    media_set     BIGINT NULL CHECK (media_set >= 0),
    media_set_seq INTEGER NULL CHECK (media_set_seq >= 0),
    in_use        BOOLEAN NOT NULL DEFAULT false,
    mounted_in    BIGINT NULL UNIQUE REFERENCES drives (id),
    created       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (mounted_in IS NULL OR in_use),
    CHECK ((media_set IS NULL) = (media_set_seq IS NULL))
);
CREATE INDEX tapes_for_writing ON tapes (pool, state, created, id) WHERE NOT in_use AND state <> 'full';
CREATE UNIQUE INDEX tapes_media_set ON tapes (media_set, media_set_seq) WHERE media_set IS NOT NULL;

-- Logical objects and ABS ---------------------------------------------------

CREATE TABLE logical_objects (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT NOT NULL CHECK (name <> ''),
    primary_node_id BIGINT NOT NULL REFERENCES primary_nodes (id),
    size_bytes      BIGINT NOT NULL CHECK (size_bytes >= 0),
    created         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (primary_node_id, name)
);

CREATE TABLE abs (
    id               BIGSERIAL PRIMARY KEY,
    object_id        BIGINT NOT NULL REFERENCES logical_objects (id),
    kind             TEXT NOT NULL CHECK (kind IN ('full', 'differential')),
    base_abs_id      BIGINT NULL REFERENCES abs (id),
    state            TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'complete', 'failed')),
    reason           TEXT NULL,
    object_size      BIGINT NOT NULL CHECK (object_size >= 0),
    data_bytes       BIGINT NOT NULL DEFAULT 0 CHECK (data_bytes >= 0),
    track_count      BIGINT NOT NULL DEFAULT 0 CHECK (track_count >= 0),
    segment_count    BIGINT NOT NULL DEFAULT 0 CHECK (segment_count BETWEEN 0 AND 4294967295),
    metadata_tape_id BIGINT NULL REFERENCES tapes (id),
    metadata_file    BIGINT NULL CHECK (metadata_file BETWEEN 0 AND 4294967295),
    created          TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed        TIMESTAMPTZ NULL,
    CHECK ((kind = 'full') = (base_abs_id IS NULL)),
    CHECK ((state = 'running') = (completed IS NULL)),
    CHECK (state <> 'failed' OR reason IS NOT NULL),
    CHECK ((metadata_tape_id IS NULL) = (metadata_file IS NULL))
);
CREATE INDEX abs_object ON abs (object_id, created);
CREATE INDEX abs_base ON abs (base_abs_id) WHERE base_abs_id IS NOT NULL;
CREATE UNIQUE INDEX abs_metadata_place ON abs (metadata_tape_id, metadata_file) WHERE metadata_tape_id IS NOT NULL;

-- The volumes an ABS map refers to, by index (AbsMap::volumes), with the
-- geometry they had at backup time.
CREATE TABLE abs_volumes (
    abs_id       BIGINT NOT NULL REFERENCES abs (id) ON DELETE CASCADE,
    volume_index INTEGER NOT NULL CHECK (volume_index BETWEEN 0 AND 65535),
    name         TEXT NOT NULL CHECK (name <> ''),
    block_size   BIGINT NOT NULL CHECK (block_size BETWEEN 1 AND 4294967295),
    track_size   BIGINT NOT NULL CHECK (track_size BETWEEN 1 AND 4294967295),
    size_bytes   BIGINT NOT NULL CHECK (size_bytes >= 0),
    PRIMARY KEY (abs_id, volume_index)
);

-- The map: logical bytes [logical_offset, logical_offset + length) are at
-- byte volume_offset of volume volume_index. One row per extent.
CREATE TABLE abs_map_extents (
    abs_id         BIGINT NOT NULL REFERENCES abs (id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL CHECK (seq >= 0),
    logical_offset BIGINT NOT NULL CHECK (logical_offset >= 0),
    length         BIGINT NOT NULL CHECK (length > 0),
    volume_index   INTEGER NOT NULL,
    volume_offset  BIGINT NOT NULL CHECK (volume_offset >= 0),
    PRIMARY KEY (abs_id, seq),
    FOREIGN KEY (abs_id, volume_index) REFERENCES abs_volumes (abs_id, volume_index)
);

-- Segments: one sealed piece of an accumulation file, one tape file.
CREATE TABLE segments (
    id          BIGSERIAL PRIMARY KEY,
    abs_id      BIGINT NOT NULL REFERENCES abs (id),
    seq         BIGINT NOT NULL CHECK (seq BETWEEN 0 AND 4294967295),
    tape_id     BIGINT NOT NULL REFERENCES tapes (id),
    tape_file   BIGINT NOT NULL CHECK (tape_file BETWEEN 0 AND 4294967295),
    bytes       BIGINT NOT NULL CHECK (bytes >= 0),
    data_bytes  BIGINT NOT NULL CHECK (data_bytes >= 0),
    track_count BIGINT NOT NULL CHECK (track_count >= 0),
    crc32c      BIGINT NOT NULL CHECK (crc32c BETWEEN 0 AND 4294967295),
    written_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (abs_id, seq),
    UNIQUE (tape_id, tape_file)
);

-- Channels ------------------------------------------------------------------

CREATE TABLE channels (
    id       BIGSERIAL PRIMARY KEY,
    kind     TEXT NOT NULL CHECK (kind IN ('backup', 'restore')),
    abs_id   BIGINT NOT NULL REFERENCES abs (id),
    state    TEXT NOT NULL CHECK (state IN ('requested', 'opened', 'beginning_of_tape', 'writing', 'reading',
                                            'end_of_tape', 'closed', 'error')),
    reason   TEXT NOT NULL,
    fe_id    BIGINT NULL REFERENCES movers (id),
    be_id    BIGINT NULL REFERENCES movers (id),
    drive_id BIGINT NULL REFERENCES drives (id),
    tape_id  BIGINT NULL REFERENCES tapes (id),
    bytes    BIGINT NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    created  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (kind = 'backup' OR state <> 'writing'),
    CHECK (kind = 'restore' OR state <> 'reading')
);
CREATE INDEX channels_abs ON channels (abs_id);
CREATE INDEX channels_open_fe ON channels (fe_id) WHERE state NOT IN ('closed', 'error');
CREATE INDEX channels_open_be ON channels (be_id) WHERE state NOT IN ('closed', 'error');

CREATE TABLE channel_transitions (
    id         BIGSERIAL PRIMARY KEY,
    channel_id BIGINT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    from_state TEXT NULL,
    to_state   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    CHECK (from_state IS NULL OR from_state IN ('requested', 'opened', 'beginning_of_tape', 'writing', 'reading',
                                                 'end_of_tape')),
    CHECK (to_state IN ('requested', 'opened', 'beginning_of_tape', 'writing', 'reading', 'end_of_tape', 'closed',
                        'error'))
);
CREATE INDEX channel_transitions_channel ON channel_transitions (channel_id, id);
