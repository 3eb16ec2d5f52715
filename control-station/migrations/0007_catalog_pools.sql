-- Catalog backups (issue 13, seed 000 claim 12): a pool of kind `catalog`
-- holds the catalog's own backups (dumps of this database written to tape
-- as ABSs of the station's reserved object) and nothing else.
ALTER TABLE pools DROP CONSTRAINT pools_kind_check;
ALTER TABLE pools ADD CONSTRAINT pools_kind_check CHECK (kind IN ('primary', 'copy', 'catalog'));
