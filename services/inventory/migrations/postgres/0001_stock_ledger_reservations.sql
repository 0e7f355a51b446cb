-- Stock levels, their append-only ledger, reservations for orders, and the event tables.
-- Times are microseconds since the Unix epoch (the same type on PostgreSQL and SQLite).

-- One row per product. The CHECKs are the last line of defence behind the conditional updates
-- of the store: no bug and no race can commit a negative or inconsistent level.
CREATE TABLE stock (
    product_id  TEXT PRIMARY KEY,
    on_hand     BIGINT NOT NULL DEFAULT 0,
    available   BIGINT NOT NULL DEFAULT 0,
    reserved    BIGINT NOT NULL DEFAULT 0,
    -- Set when the product service archived the product; informational only.
    archived_at BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT stock_available_not_negative CHECK (available >= 0),
    CONSTRAINT stock_reserved_not_negative CHECK (reserved >= 0),
    CONSTRAINT stock_on_hand_is_available_plus_reserved CHECK (on_hand = available + reserved)
);

-- The ledger: one line per change of a level, written in the transaction of the change. `seq`
-- orders the lines (and keys the pages of ListMovements).
CREATE TABLE movements (
    seq             BIGSERIAL PRIMARY KEY,
    movement_id     TEXT NOT NULL UNIQUE,
    product_id      TEXT NOT NULL REFERENCES stock (product_id),
    -- opened, adjusted, reserved, committed, released, expired, returned.
    kind            TEXT NOT NULL,
    on_hand_delta   BIGINT NOT NULL,
    available_delta BIGINT NOT NULL,
    reserved_delta  BIGINT NOT NULL,
    order_id        TEXT NOT NULL DEFAULT '',
    -- restock, correction, damage, return; empty unless kind = adjusted.
    reason          TEXT NOT NULL DEFAULT '',
    note            TEXT NOT NULL DEFAULT '',
    -- Who caused the line: the admin's user id, the calling service's client id, or the
    -- service itself for openings and expiries. Kept for audits; not part of the contract.
    actor           TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    CONSTRAINT movements_deltas_balance CHECK (on_hand_delta = available_delta + reserved_delta)
);
CREATE INDEX movements_by_product ON movements (product_id, seq);

-- Append-only means append-only: even a stray UPDATE or DELETE is refused.
CREATE FUNCTION movements_are_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the stock ledger is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER movements_no_update BEFORE UPDATE OR DELETE ON movements
    FOR EACH ROW EXECUTE FUNCTION movements_are_append_only();

-- One reservation per order, and its lines.
CREATE TABLE reservations (
    order_id   TEXT PRIMARY KEY,
    state      TEXT NOT NULL
        CONSTRAINT reservations_known_state
        CHECK (state IN ('pending', 'committed', 'released', 'expired')),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- What the sweeper scans: pending reservations by expiry.
CREATE INDEX reservations_pending_by_expiry ON reservations (expires_at) WHERE state = 'pending';

CREATE TABLE reservation_lines (
    order_id   TEXT NOT NULL REFERENCES reservations (order_id),
    product_id TEXT NOT NULL REFERENCES stock (product_id),
    quantity   BIGINT NOT NULL CONSTRAINT reservation_lines_positive CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);

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
