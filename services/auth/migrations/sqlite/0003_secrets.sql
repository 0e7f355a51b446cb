-- Secrets auth generates for itself when configuration gives none, e.g. the HMAC key of device
-- tokens. Inserted once with ON CONFLICT DO NOTHING and read back, so every replica uses the
-- first one written.
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
