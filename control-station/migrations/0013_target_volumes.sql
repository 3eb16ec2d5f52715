-- Target volumes (copy versions, seed 004): a volume a node serves with a
-- management region is of kind 'target' (FIG. 5 step 508: only those take
-- a version), and its node reports what version its region holds.
ALTER TABLE volumes
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'data' CHECK (kind IN ('data', 'target')),
    ADD COLUMN holds_set TEXT,
    ADD COLUMN holds_version BIGINT CHECK (holds_version >= 1),
    ADD COLUMN holds_source TEXT,
    ADD COLUMN holds_point_in_time TIMESTAMPTZ,
    -- Why its region (or a slot of it) could not be read, at the last registration.
    ADD COLUMN region_damaged TEXT;
