-- Events auth publishes (UserRegistered), written in the transaction of the change and sent by
-- the relay; see agora_platform::events.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    envelope BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    published_at BIGINT
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
