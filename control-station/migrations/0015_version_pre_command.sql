-- A version set's pre command (issue 15, seed 004 FIG. 6): run by the agent
-- of `pre_host` before the version's point in time is taken (e.g. to
-- quiesce a database); a failure fails the version before anything is
-- copied. Empty: none.
ALTER TABLE version_sets
    ADD COLUMN pre_host TEXT,
    ADD COLUMN pre_command TEXT NOT NULL DEFAULT '',
    ADD COLUMN hook_timeout_seconds INTEGER NOT NULL DEFAULT 300 CHECK (hook_timeout_seconds >= 1);
