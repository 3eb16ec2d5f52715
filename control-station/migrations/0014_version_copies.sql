-- Making copy versions (seed 004 FIG. 6, issue 15): what each pair of a
-- made version captured and copied. `map_id`/`epoch`: the source volume's
-- change map and the epoch its snapshot captured (the next version onto
-- the same target copies only the tracks changed since); `bytes_copied`;
-- `base_version`: the version the target held whose unchanged tracks it
-- kept (0: copied whole). `source_bytes`: the bytes of the sources.
ALTER TABLE version_record_pairs
    ADD COLUMN map_id BIGINT,
    ADD COLUMN epoch BIGINT CHECK (epoch >= 0),
    ADD COLUMN bytes_copied BIGINT NOT NULL DEFAULT 0 CHECK (bytes_copied >= 0),
    ADD COLUMN base_version BIGINT NOT NULL DEFAULT 0 CHECK (base_version >= 0);

ALTER TABLE version_records
    ADD COLUMN source_bytes BIGINT NOT NULL DEFAULT 0 CHECK (source_bytes >= 0);

-- A backup made from a version's target volumes instead of the production
-- volumes (seed 003's backup from a copy): the version it read ("SET@V").
-- Its point in time is the version's.
ALTER TABLE abs ADD COLUMN from_version TEXT;
