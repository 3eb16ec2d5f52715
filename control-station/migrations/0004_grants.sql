-- Who may do what: a client certificate alone grants nothing. Operators
-- give a client rights per primary node, optionally per object of it.
CREATE TABLE grants (
    id           BIGSERIAL PRIMARY KEY,
    client       TEXT NOT NULL,
    primary_node TEXT NOT NULL,
    -- NULL: every object of the node, and its volumes as restore targets.
    object_name  TEXT,
    may_backup   BOOLEAN NOT NULL,
    may_restore  BOOLEAN NOT NULL,
    granted_by   TEXT NOT NULL,
    granted_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (may_backup OR may_restore)
);
CREATE UNIQUE INDEX grants_scope ON grants (client, primary_node, COALESCE(object_name, ''));
