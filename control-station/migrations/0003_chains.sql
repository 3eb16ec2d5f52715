-- Backup chains (issue 4): every ABS has a level; a differential one
-- (cumulative: relative to the last full; incremental: relative to the last
-- backup of any kind) names its base, a synthetic full the tip of the chain
-- it was merged from. The point in time is when the primary node took the
-- snapshot (for a synthetic full: its chain tip's). The change-map position
-- each backup captured per volume is what the next differential starts from.
ALTER TABLE abs
    ADD COLUMN level TEXT NULL,
    ADD COLUMN merged_from_abs_id BIGINT NULL REFERENCES abs (id),
    ADD COLUMN point_in_time TIMESTAMPTZ NULL;
UPDATE abs SET level = CASE kind WHEN 'full' THEN 'full' ELSE 'incremental' END,
               point_in_time = created;
ALTER TABLE abs
    ALTER COLUMN level SET NOT NULL,
    ALTER COLUMN point_in_time SET NOT NULL,
    ALTER COLUMN point_in_time SET DEFAULT now(),
    ADD CONSTRAINT abs_level CHECK (level IN ('full', 'cumulative', 'incremental', 'synthetic')),
    ADD CONSTRAINT abs_level_kind CHECK ((level IN ('cumulative', 'incremental')) = (kind = 'differential')),
    ADD CONSTRAINT abs_synthetic_merged CHECK ((level = 'synthetic') = (merged_from_abs_id IS NOT NULL));
CREATE INDEX abs_chain ON abs (object_id, state, point_in_time);

-- The change map a backup's snapshot captured on each volume of its map:
-- the map's random id (a u64 stored bit for bit) and the epoch.
CREATE TABLE abs_epochs (
    abs_id       BIGINT NOT NULL REFERENCES abs (id) ON DELETE CASCADE,
    volume_index INTEGER NOT NULL,
    map_id       BIGINT NOT NULL,
    epoch        BIGINT NOT NULL CHECK (epoch BETWEEN 0 AND 4294967295),
    PRIMARY KEY (abs_id, volume_index),
    FOREIGN KEY (abs_id, volume_index) REFERENCES abs_volumes (abs_id, volume_index)
);

-- The tracks a differential ABS holds (those changed since its base), as
-- runs: which blocks changed follows from them through the map (FIG. 22).
CREATE TABLE abs_changed_runs (
    abs_id       BIGINT NOT NULL REFERENCES abs (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL CHECK (seq >= 0),
    volume_index INTEGER NOT NULL,
    first_track  BIGINT NOT NULL CHECK (first_track >= 0),
    track_count  BIGINT NOT NULL CHECK (track_count > 0),
    PRIMARY KEY (abs_id, seq),
    FOREIGN KEY (abs_id, volume_index) REFERENCES abs_volumes (abs_id, volume_index)
);
