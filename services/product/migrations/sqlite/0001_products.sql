-- The catalog and its outbox.
-- Times are microseconds since the Unix epoch (the same type on PostgreSQL and SQLite).
-- SQLite compares text byte by byte, as the PostgreSQL schema asks with COLLATE "C".

CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    sku         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    -- The name lower-cased by the service (Unicode rules), for ordering by name.
    name_key    TEXT NOT NULL,
    description TEXT NOT NULL,
    -- Name and description lower-cased by the service, for the text query.
    search_text TEXT NOT NULL,
    category    TEXT NOT NULL,
    price_minor INTEGER NOT NULL CHECK (price_minor >= 0),
    currency    TEXT NOT NULL,
    image_url   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'archived')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
-- One index per listing order, led by status because listings show active products by default.
CREATE INDEX products_newest ON products (status, created_at, id);
CREATE INDEX products_by_price ON products (status, price_minor, id);
CREATE INDEX products_by_name ON products (status, name_key, id);
CREATE INDEX products_by_category ON products (category, status);

-- Events written with the change they describe; the relay publishes them.
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL UNIQUE,
    event_type   TEXT NOT NULL,
    envelope     BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    published_at INTEGER
);
