-- Tapes this catalog never wrote (issue 14, seed 002 FIG. 15): an ABS
-- imported from another cluster's tape keeps its UUID and remembers the
-- cluster that wrote it; when its id collides with one of ours it gets a
-- new id here, and `tape_abs_id` is the id its segments and metadata carry
-- on tape (what a back-end checks when it reads them). NULL: the same as
-- `id`. A copy of an ABS made tape to tape carries its source's.
ALTER TABLE abs
    ADD COLUMN tape_abs_id    BIGINT NULL CHECK (tape_abs_id > 0),
    ADD COLUMN origin_cluster TEXT NULL
        CHECK (origin_cluster ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$');
