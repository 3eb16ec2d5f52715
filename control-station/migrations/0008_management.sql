-- Self-describing backups (issue 14, seed 002): the cluster has a UUID,
-- made once (at first start); every ABS has its own UUID, kept by every
-- catalog its tapes go to, and remembers who asked for it and the label
-- text they gave. The management record written with each ABS on tape
-- carries them.
CREATE TABLE cluster (
    singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    id        TEXT NOT NULL CHECK (id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
    created   TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO cluster (id) VALUES (gen_random_uuid()::text);

ALTER TABLE abs ADD COLUMN uuid TEXT NULL;
UPDATE abs SET uuid = gen_random_uuid()::text;
ALTER TABLE abs
    ALTER COLUMN uuid SET NOT NULL,
    ALTER COLUMN uuid SET DEFAULT gen_random_uuid()::text,
    ADD CONSTRAINT abs_uuid_unique UNIQUE (uuid),
    ADD CONSTRAINT abs_uuid_form CHECK (uuid ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$');
ALTER TABLE abs
    ADD COLUMN client TEXT NOT NULL DEFAULT '',
    ADD COLUMN label  TEXT NOT NULL DEFAULT '' CHECK (length(label) <= 1024);
