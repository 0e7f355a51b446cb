-- Orders, the idempotency keys that place them, and the event tables.
-- Times are microseconds since the Unix epoch (the same type on PostgreSQL and SQLite).

-- One row per order. `body` holds the parts that never change after placement (lines with the
-- names and prices read from the product service, and the shipping address) as the Protobuf
-- `agora.order.v1.Order` message with only those fields set.
CREATE TABLE orders (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL,
    status         TEXT NOT NULL
        CONSTRAINT orders_known_status
        CHECK (status IN ('pending', 'confirmed', 'cancelled', 'failed')),
    currency_code  TEXT NOT NULL,
    total_minor    BIGINT NOT NULL,
    body           BYTEA NOT NULL,
    cancel_reason  TEXT NOT NULL DEFAULT '',
    failure_reason TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
-- ListOrders pages: newest first, per user or for everyone.
CREATE INDEX orders_by_user ON orders (user_id, created_at DESC, id DESC);
CREATE INDEX orders_by_time ON orders (created_at DESC, id DESC);
-- What recovery scans: orders left half-way.
CREATE INDEX orders_pending ON orders (updated_at) WHERE status = 'pending';

-- One row per (user, key): the unique key is the claim. A claim is written before any stock is
-- touched and names the order id the saga reserves under, so concurrent duplicates wait for the
-- first call instead of reserving again, and recovery can release the reservation of a claim
-- whose saga died before its order was stored.
CREATE TABLE idempotency_keys (
    user_id      TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);

-- The transactional outbox (see agora_platform::events).
CREATE TABLE outbox (
    seq          BIGSERIAL PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    event_type   TEXT NOT NULL,
    envelope     BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    published_at BIGINT
);

-- Events this service has applied, so a redelivered event is applied once.
CREATE TABLE processed_events (
    consumer     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    processed_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
