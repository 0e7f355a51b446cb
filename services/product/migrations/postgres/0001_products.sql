-- The catalog and its outbox.
-- Times are microseconds since the Unix epoch (the same type on PostgreSQL and SQLite).
-- Text that is compared or sorted uses the "C" collation (byte order), so listings sort and page
-- exactly as they do on SQLite, whatever the server's locale.

CREATE TABLE products (
    id          TEXT COLLATE "C" PRIMARY KEY,
    sku         TEXT COLLATE "C" NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    -- The name lower-cased by the service (Unicode rules), for ordering by name.
    name_key    TEXT COLLATE "C" NOT NULL,
    description TEXT NOT NULL,
    -- Name and description lower-cased by the service, for the text query.
    search_text TEXT NOT NULL,
    category    TEXT COLLATE "C" NOT NULL,
    price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
    currency    TEXT NOT NULL,
    image_url   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'archived')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
-- One index per listing order, led by status because listings show active products by default.
CREATE INDEX products_newest ON products (status, created_at, id);
CREATE INDEX products_by_price ON products (status, price_minor, id);
CREATE INDEX products_by_name ON products (status, name_key, id);
CREATE INDEX products_by_category ON products (category, status);

-- Events written with the change they describe; the relay publishes them.
CREATE TABLE outbox (
    seq          BIGSERIAL PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    event_type   TEXT NOT NULL,
    envelope     BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    published_at BIGINT
);
