-- Delete and retention (issue 14, seed 002 FIG. 14/16). A deleted ABS
-- keeps its row (its id is never reused, lineage stays readable) in state
-- 'deleted' with when and by whom; its segments, copies and metadata
-- places are released. A tape none of whose data is wanted any more is
-- 'emptied' at that time and returns to scratch once its pool's retention
-- (days) has passed; it is relabelled when next mounted for writing
-- ('reuses' counts how often).
ALTER TABLE abs DROP CONSTRAINT abs_state_check;
ALTER TABLE abs
    ADD CONSTRAINT abs_state_check CHECK (state IN ('running', 'complete', 'failed', 'deleted')),
    ADD COLUMN deleted    TIMESTAMPTZ NULL,
    ADD COLUMN deleted_by TEXT NULL;
ALTER TABLE abs
    ADD CONSTRAINT abs_deleted CHECK ((state = 'deleted') = (deleted IS NOT NULL AND deleted_by IS NOT NULL));

ALTER TABLE pools
    ADD COLUMN retain_days INTEGER NOT NULL DEFAULT 0 CHECK (retain_days BETWEEN 0 AND 36500);

ALTER TABLE tapes
    ADD COLUMN emptied TIMESTAMPTZ NULL,
    ADD COLUMN reuses  INTEGER NOT NULL DEFAULT 0 CHECK (reuses >= 0);
ALTER TABLE tapes ADD CONSTRAINT tapes_emptied_not_scratch CHECK (emptied IS NULL OR state <> 'scratch');
