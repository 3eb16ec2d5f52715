-- Tape recovery (issue 13, seed 000 FIG. 6A/6B): an operator marks a
-- primary tape destroyed and its segments are rewritten from their copies
-- onto new tapes of its pool. A destroyed tape is never mounted again and
-- has left its slot; its segments' rows move to the new tapes, so what
-- still points at it is only history.
ALTER TABLE tapes DROP CONSTRAINT tapes_location_check;
ALTER TABLE tapes
    ADD CONSTRAINT tapes_location_check CHECK (location IN ('library', 'exported', 'destroyed'));
