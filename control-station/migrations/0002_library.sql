-- The tape library (issue 3): every tape has a home slot while it is in the
-- library; an exported tape has left it (its image moved out) and can be
-- imported again. Mounted tapes keep their home slot.
ALTER TABLE tapes
    ADD COLUMN location TEXT NOT NULL DEFAULT 'library' CHECK (location IN ('library', 'exported')),
    ADD COLUMN slot INTEGER NULL UNIQUE CHECK (slot > 0);
ALTER TABLE tapes
    ADD CONSTRAINT tapes_slot_in_library CHECK ((location = 'library') = (slot IS NOT NULL)),
    ADD CONSTRAINT tapes_exported_not_in_use CHECK (location = 'library' OR NOT in_use);

-- Tapes created before slots existed get the lowest slots, oldest first.
UPDATE tapes SET slot = numbered.n
FROM (SELECT id, row_number() OVER (ORDER BY created, id) AS n FROM tapes) AS numbered
WHERE tapes.id = numbered.id;
