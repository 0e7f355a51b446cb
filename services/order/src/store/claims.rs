//! Idempotency claims: one row per (user, key), written before the saga touches any stock.
//!
//! A claim is held by one caller at a time, and every holder holds one generation of it, its
//! `fence`. The first call holds generation 0; a retry or recovery that takes a claim over moves
//! it to the next generation, with one conditional update on the generation it saw, so of two
//! callers racing for a claim exactly one wins and the other does nothing. Every later change a
//! holder makes (storing the order, giving the claim up, dropping it) is conditional on its own
//! generation, so a holder that lost its claim (a saga that was slow, not dead) can change
//! nothing any more.
//!
//! A holder works under a lease (`lease_until`): past it, its claim may be taken over. Storing
//! the order marks the claim `placed` in the same transaction, and a placed claim is never taken
//! over: its order exists and its reservation belongs to that order.

use std::time::Duration;

use agora_platform::{storage::is_unique_violation, time::span_micros};
use sqlx::{Row, any::AnyRow};

use super::{Store, StoreError, now_micros};
use crate::domain::OrderId;

/// One generation of a claim, held by this caller: the only one allowed to change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The claiming user.
    pub user_id: String,
    /// The idempotency key.
    pub key: String,
    /// The order id this generation runs its saga under.
    pub order_id: OrderId,
    /// The generation held.
    pub fence: i64,
}

/// A claim as another caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The claiming user.
    pub user_id: String,
    /// The idempotency key.
    pub key: String,
    /// The fingerprint of the request that claimed the key.
    pub fingerprint: String,
    /// The order id its current generation runs (or ran) under.
    pub order_id: String,
    /// Its current generation.
    pub fence: i64,
    /// Until when its holder may still be working (µs).
    pub lease_until: i64,
    /// Whether its order is stored.
    pub placed: bool,
}

impl Held {
    /// Whether its holder's lease ran out at `now`, so the claim may be taken over.
    pub fn lapsed(&self, now: i64) -> bool {
        !self.placed && self.lease_until <= now
    }
}

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: run the saga under the hold's order id.
    Won(Hold),
    /// Another caller holds (or held) the key.
    Held(Held),
}

/// The claim `hold` holds, as long as it holds it (binds $1 to $4: user, key, order id, fence).
pub(super) const HELD_BY: &str =
    "user_id = $1 AND idem_key = $2 AND order_id = $3 AND fence = $4 AND placed = 0";

const CLAIM_COLUMNS: &str = "user_id, idem_key, request_hash, order_id, fence, lease_until, placed";

/// Binds $1 to $4 of [`HELD_BY`].
pub(super) fn bind_hold<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    hold: &'q Hold,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(&hold.user_id)
        .bind(&hold.key)
        .bind(hold.order_id.as_str())
        .bind(hold.fence)
}

fn held(row: &AnyRow) -> Result<Held, StoreError> {
    let placed: i32 = row.try_get("placed")?;
    Ok(Held {
        user_id: row.try_get("user_id")?,
        key: row.try_get("idem_key")?,
        fingerprint: row.try_get("request_hash")?,
        order_id: row.try_get("order_id")?,
        fence: row.try_get("fence")?,
        lease_until: row.try_get("lease_until")?,
        placed: placed != 0,
    })
}

impl Store {
    /// Claims `key` for `user_id` under `order_id` with a lease of `lease`, unless a claim holds
    /// it. An expired claim is replaced: keys are remembered for the retention period only.
    ///
    /// # Errors
    /// The database failed.
    pub async fn claim(
        &self,
        user_id: &str,
        key: &str,
        fingerprint: &str,
        order_id: &OrderId,
        retention: Duration,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        self.db
            .write(|mut tx| async move {
                let now = now_micros();
                sqlx::query(
                    "DELETE FROM idempotency_keys
                     WHERE user_id = $1 AND idem_key = $2 AND expires_at <= $3",
                )
                .bind(user_id)
                .bind(key)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let inserted = sqlx::query(
                    "INSERT INTO idempotency_keys
                     (user_id, idem_key, request_hash, order_id, created_at, expires_at, fence,
                      lease_until, placed)
                     VALUES ($1, $2, $3, $4, $5, $6, 0, $7, 0)",
                )
                .bind(user_id)
                .bind(key)
                .bind(fingerprint)
                .bind(order_id.as_str())
                .bind(now)
                .bind(now.saturating_add(span_micros(retention)))
                .bind(now.saturating_add(span_micros(lease)))
                .execute(&mut *tx)
                .await;
                match inserted {
                    Ok(_) => {
                        tx.commit().await?;
                        Ok(Claim::Won(Hold {
                            user_id: user_id.to_owned(),
                            key: key.to_owned(),
                            order_id: order_id.clone(),
                            fence: 0,
                        }))
                    }
                    Err(error) if is_unique_violation(&error) => {
                        // PostgreSQL aborts the transaction at the violation: read outside it.
                        tx.rollback().await?;
                        match self.claim_of(user_id, key).await? {
                            Some(held) => Ok(Claim::Held(held)),
                            // Dropped in between: the next attempt may win.
                            None => Err(StoreError::Database(error)),
                        }
                    }
                    Err(error) => Err(error.into()),
                }
            })
            .await
    }

    /// The live claim of a key, if any.
    ///
    /// # Errors
    /// The database failed.
    pub async fn claim_of(&self, user_id: &str, key: &str) -> Result<Option<Held>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CLAIM_COLUMNS} FROM idempotency_keys
             WHERE user_id = $1 AND idem_key = $2 AND expires_at > $3"
        ))
        .bind(user_id)
        .bind(key)
        .bind(now_micros())
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(held).transpose()
    }

    /// Takes over a claim whose holder's lease ran out, as it was seen (`seen`): moves it to the
    /// next generation under a new lease. Returns the new hold, or `None` when someone else
    /// changed the claim since it was seen (took it over, stored its order, dropped it) or its
    /// lease is live.
    ///
    /// # Errors
    /// The database failed.
    pub async fn take_over(
        &self,
        seen: &Held,
        lease: Duration,
    ) -> Result<Option<Hold>, StoreError> {
        let Ok(order_id) = OrderId::parse(&seen.order_id) else {
            return Err(StoreError::Corrupt(format!(
                "a claim holds the malformed order id {:?}",
                seen.order_id
            )));
        };
        let now = now_micros();
        let taken = sqlx::query(
            "UPDATE idempotency_keys SET fence = fence + 1, lease_until = $1
             WHERE user_id = $2 AND idem_key = $3 AND order_id = $4 AND fence = $5
               AND placed = 0 AND lease_until <= $6",
        )
        .bind(now.saturating_add(span_micros(lease)))
        .bind(&seen.user_id)
        .bind(&seen.key)
        .bind(&seen.order_id)
        .bind(seen.fence)
        .bind(now)
        .execute(self.db.pool())
        .await?
        .rows_affected()
            == 1;
        Ok(taken.then(|| Hold {
            user_id: seen.user_id.clone(),
            key: seen.key.clone(),
            order_id,
            fence: seen.fence + 1,
        }))
    }

    /// Moves a held claim to a fresh order id (the next generation, under a new lease), once the
    /// reservation of its old order id was released. Returns the new hold, or `None` when the
    /// claim was lost meanwhile.
    ///
    /// # Errors
    /// The database failed.
    pub async fn rekey(
        &self,
        hold: &Hold,
        order_id: &OrderId,
        lease: Duration,
    ) -> Result<Option<Hold>, StoreError> {
        let move_on = format!(
            "UPDATE idempotency_keys SET order_id = $5, fence = fence + 1, lease_until = $6
             WHERE {HELD_BY}"
        );
        let moved = bind_hold(sqlx::query(&move_on), hold)
            .bind(order_id.as_str())
            .bind(now_micros().saturating_add(span_micros(lease)))
            .execute(self.db.pool())
            .await?
            .rows_affected()
            == 1;
        Ok(moved.then(|| Hold {
            order_id: order_id.clone(),
            fence: hold.fence + 1,
            ..hold.clone()
        }))
    }

    /// Drops a held claim whose saga stored nothing and holds no stock, so a retry with the same
    /// key starts anew. Returns whether it was still held (a lost claim is left to its holder).
    ///
    /// # Errors
    /// The database failed.
    pub async fn drop_claim(&self, hold: &Hold) -> Result<bool, StoreError> {
        Ok(bind_hold(
            sqlx::query(&format!("DELETE FROM idempotency_keys WHERE {HELD_BY}")),
            hold,
        )
        .execute(self.db.pool())
        .await?
        .rows_affected()
            == 1)
    }

    /// Gives a held claim up at once: its saga stopped without knowing whether its reservation
    /// landed, so the next retry (or recovery) may take it over now instead of at the end of the
    /// lease.
    ///
    /// # Errors
    /// The database failed.
    pub async fn let_go(&self, hold: &Hold) -> Result<(), StoreError> {
        bind_hold(
            sqlx::query(&format!(
                "UPDATE idempotency_keys SET lease_until = 0 WHERE {HELD_BY}"
            )),
            hold,
        )
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Claims whose order is not stored and whose holder's lease ran out by `now`: sagas that
    /// died (or gave up) before storing their order.
    ///
    /// # Errors
    /// The database failed.
    pub async fn lapsed_claims(&self, now: i64) -> Result<Vec<Held>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CLAIM_COLUMNS} FROM idempotency_keys
             WHERE placed = 0 AND lease_until <= $1
             ORDER BY lease_until LIMIT 100"
        ))
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(held).collect()
    }

    /// Forgets keys past their retention whose order is stored (a key without one is left to
    /// recovery, which releases its stock first).
    ///
    /// # Errors
    /// The database failed.
    pub async fn purge_expired_keys(&self) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1 AND placed = 1")
                .bind(now_micros())
                .execute(self.db.pool())
                .await?
                .rows_affected(),
        )
    }
}
