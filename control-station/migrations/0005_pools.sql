-- Storage pools and copies (issue 13, seeds 000/001: copy storage pools).
--
-- A primary pool takes backups; a copy pool holds second copies of the
-- ABSs of the primary pools it is attached to. Every tape belongs to one
-- pool. A segment's primary copy stays the `segments` row (where the
-- backup wrote it); each further copy is a `segment_copies` row under the
-- same segment. An ABS has a whole copy in a copy pool when its metadata
-- was written there after every segment (`abs_copies`).

CREATE TABLE pools (
    name    TEXT PRIMARY KEY CHECK (name <> '' AND length(name) <= 64),
    kind    TEXT NOT NULL CHECK (kind IN ('primary', 'copy')),
    created TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Which primary pools a copy pool copies.
CREATE TABLE pool_copies (
    copy_pool    TEXT NOT NULL REFERENCES pools (name),
    primary_pool TEXT NOT NULL REFERENCES pools (name),
    PRIMARY KEY (copy_pool, primary_pool)
);

-- The pools tapes already name are primary pools.
INSERT INTO pools (name, kind) SELECT DISTINCT pool, 'primary' FROM tapes;
ALTER TABLE tapes ADD CONSTRAINT tapes_pool FOREIGN KEY (pool) REFERENCES pools (name);

-- The primary pool each ABS was written to: its tapes' (an ABS that never
-- reached a tape: the pool of any tape, else a pool named `default`).
ALTER TABLE abs ADD COLUMN pool TEXT NULL REFERENCES pools (name);
UPDATE abs SET pool = t.pool FROM tapes t WHERE t.id = abs.metadata_tape_id;
UPDATE abs SET pool = (SELECT t.pool FROM segments s JOIN tapes t ON t.id = s.tape_id
                       WHERE s.abs_id = abs.id ORDER BY s.seq LIMIT 1)
WHERE pool IS NULL;
INSERT INTO pools (name, kind)
SELECT 'default', 'primary' WHERE EXISTS (SELECT 1 FROM abs WHERE pool IS NULL)
ON CONFLICT (name) DO NOTHING;
UPDATE abs SET pool = 'default' WHERE pool IS NULL;
ALTER TABLE abs ALTER COLUMN pool SET NOT NULL;
CREATE INDEX abs_pool ON abs (pool, state);

-- A primary copy found unreadable or not matching its CRC is `damaged`.
ALTER TABLE segments
    ADD COLUMN status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'damaged'));

CREATE TABLE segment_copies (
    id         BIGSERIAL PRIMARY KEY,
    segment_id BIGINT NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    pool       TEXT NOT NULL REFERENCES pools (name),
    tape_id    BIGINT NOT NULL REFERENCES tapes (id),
    tape_file  BIGINT NOT NULL CHECK (tape_file BETWEEN 0 AND 4294967295),
    bytes      BIGINT NOT NULL CHECK (bytes >= 0),
    crc32c     BIGINT NOT NULL CHECK (crc32c BETWEEN 0 AND 4294967295),
    status     TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'damaged')),
    written_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tape_id, tape_file)
);
CREATE INDEX segment_copies_segment ON segment_copies (segment_id, pool);

-- An ABS's whole copy in a copy pool: where its metadata was written, after
-- its last segment. Written again (the row updated) when a damaged copy is
-- replaced.
CREATE TABLE abs_copies (
    abs_id           BIGINT NOT NULL REFERENCES abs (id),
    pool             TEXT NOT NULL REFERENCES pools (name),
    metadata_tape_id BIGINT NOT NULL REFERENCES tapes (id),
    metadata_file    BIGINT NOT NULL CHECK (metadata_file BETWEEN 0 AND 4294967295),
    copied           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (abs_id, pool),
    UNIQUE (metadata_tape_id, metadata_file)
);
