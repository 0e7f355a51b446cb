-- Profiles, one per account, created from auth's UserRegistered events; and the table of events
-- already applied, which makes the consumer idempotent (see agora_platform::events).
-- Times are microseconds since the Unix epoch (the same type on PostgreSQL and SQLite).

CREATE TABLE profiles (
    user_id          TEXT PRIMARY KEY,
    email            TEXT NOT NULL,
    display_name     TEXT NOT NULL DEFAULT '',
    -- The saved addresses as a JSON array, in the user's order: always read and replaced whole.
    addresses        TEXT NOT NULL DEFAULT '[]',
    language         TEXT NOT NULL DEFAULT '',
    currency_code    TEXT NOT NULL DEFAULT '',
    -- 0 or 1: an integer reads back alike through sqlx's Any driver on both backends.
    marketing_emails INTEGER NOT NULL DEFAULT 0,
    -- The account's registration time: the order of ListUsers (newest first).
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
-- Keyset pagination of ListUsers walks this index backwards.
CREATE INDEX profiles_by_creation ON profiles (created_at, user_id);
-- The email prefix filter (LIKE 'prefix%'): SQLite's LIKE is case-insensitive by default, so
-- only a NOCASE index can serve it.
CREATE INDEX profiles_by_email ON profiles (email COLLATE NOCASE);

CREATE TABLE processed_events (
    consumer     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    processed_at INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
