-- Operators' notifications (issue 16): what needs a person, shown in the
-- web console until acknowledged and delivered to the webhook
-- (--notify-url). `key` makes each one exactly once while it is open (not
-- yet acknowledged): a channel enters error once; a tape needed again and
-- again, or a drive left idle, is one notification until an operator
-- acknowledges it.
--
-- A channel entering error raises its notification here, in the same
-- transaction as the transition, whatever code path recorded it; the
-- station raises the others. Every new transition and every notification
-- raised or acknowledged is announced on channel `dmc_live` (delivered at
-- commit), which the station follows to push the console live.

CREATE TABLE notifications (
    id              BIGSERIAL PRIMARY KEY,
    key             TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('channel_error', 'tape_needed', 'drive_idle', 'version_refused')),
    subject         TEXT NOT NULL,
    message         TEXT NOT NULL,
    channel_id      BIGINT NULL REFERENCES channels (id) ON DELETE SET NULL,
    raised          TIMESTAMPTZ NOT NULL DEFAULT now(),
    acknowledged_by TEXT NULL,
    acknowledged    TIMESTAMPTZ NULL,
    -- Webhook delivery: when it was accepted, how many tries, the last
    -- failure.
    delivered       TIMESTAMPTZ NULL,
    attempts        INT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      TEXT NULL,
    CHECK ((acknowledged_by IS NULL) = (acknowledged IS NULL))
);

CREATE UNIQUE INDEX notifications_open_key ON notifications (key) WHERE acknowledged IS NULL;
CREATE INDEX notifications_undelivered ON notifications (id) WHERE delivered IS NULL;

CREATE FUNCTION dmc_channel_transition_live() RETURNS trigger AS $$
BEGIN
    IF NEW.to_state = 'error' AND NEW.from_state IS DISTINCT FROM 'error' THEN
        INSERT INTO notifications (key, kind, subject, message, channel_id)
        VALUES ('channel_error:' || NEW.channel_id, 'channel_error', 'channel ' || NEW.channel_id,
                NEW.reason, NEW.channel_id)
        ON CONFLICT (key) WHERE acknowledged IS NULL DO NOTHING;
    END IF;
    PERFORM pg_notify('dmc_live', 'transition:' || NEW.id);
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER channel_transition_live AFTER INSERT ON channel_transitions
    FOR EACH ROW EXECUTE FUNCTION dmc_channel_transition_live();

CREATE FUNCTION dmc_notification_live() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('dmc_live', 'notification:' || NEW.id);
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER notification_raised_live AFTER INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION dmc_notification_live();

CREATE TRIGGER notification_acknowledged_live AFTER UPDATE OF acknowledged ON notifications
    FOR EACH ROW WHEN (OLD.acknowledged IS DISTINCT FROM NEW.acknowledged)
    EXECUTE FUNCTION dmc_notification_live();
