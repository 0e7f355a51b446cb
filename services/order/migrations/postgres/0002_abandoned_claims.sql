-- A claim whose saga gave up without knowing whether its reservation landed (inventory could
-- not be reached to reserve or to release). A retry with the same key and request takes such a
-- claim over and runs the saga again under the same order id: inventory's Reserve is
-- idempotent by order id, so a reservation that did land is found again instead of doubled.
ALTER TABLE idempotency_keys ADD COLUMN abandoned INTEGER NOT NULL DEFAULT 0;
