-- Order versions. `version` goes up by one in every update of an order's row (its status, a
-- reason), so a WatchOrder client can say which state it has seen last (its resume token) and
-- replicas can tell a newer state from an older one. `updated_at` cannot: it is a wall clock of
-- whichever replica wrote it, and two changes may fall in one microsecond. Existing orders
-- start at 1.
ALTER TABLE orders ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
