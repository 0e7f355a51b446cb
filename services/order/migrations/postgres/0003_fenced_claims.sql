-- Fenced claims. Every holder of a claim (the first call, a retry that took it over, recovery)
-- holds one generation of it, `fence`, and changes the claim only by a conditional update on the
-- generation it holds, so whoever loses a race does nothing. A holder's `lease_until` says until
-- when it may still be working; past it the claim may be taken over. `placed` is set in the
-- transaction that stores the claim's order, and a placed claim is never taken over.
ALTER TABLE idempotency_keys ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
ALTER TABLE idempotency_keys ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE idempotency_keys ADD COLUMN placed INTEGER NOT NULL DEFAULT 0;
UPDATE idempotency_keys SET placed = 1
 WHERE EXISTS (SELECT 1 FROM orders o WHERE o.id = idempotency_keys.order_id);
ALTER TABLE idempotency_keys DROP COLUMN abandoned;
CREATE INDEX idempotency_keys_unplaced ON idempotency_keys (lease_until) WHERE placed = 0;
