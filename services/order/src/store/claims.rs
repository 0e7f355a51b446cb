//! Idempotency claims: one row per (user, key), written before the saga touches any stock.

use std::time::Duration;

use agora_platform::storage::is_unique_violation;
use sqlx::Row;

use super::{Store, StoreError, micros, now_micros, retrying};
use crate::domain::OrderId;

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: run the saga under the given order id.
    Won,
    /// Another call holds the key (live): its request fingerprint and order id.
    Held {
        /// The fingerprint of the request that claimed the key.
        fingerprint: String,
        /// The order id it runs (or ran) under.
        order_id: String,
    },
}

/// A claim whose saga may have died before storing its order.
#[derive(Debug, Clone)]
pub struct StaleClaim {
    /// The claiming user.
    pub user_id: String,
    /// The key.
    pub key: String,
    /// The order id its reservation is keyed by.
    pub order_id: String,
}

impl Store {
    /// Claims `key` for `user_id` under `order_id`, unless a live claim holds it. An expired
    /// claim is replaced: keys are remembered for the retention period only.
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
    ) -> Result<Claim, StoreError> {
        retrying(|| async move {
            let now = now_micros();
            let mut tx = self.db.begin_write().await?;
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2 AND expires_at <= $3",
            )
            .bind(user_id)
            .bind(key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys
                 (user_id, idem_key, request_hash, order_id, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(user_id)
            .bind(key)
            .bind(fingerprint)
            .bind(order_id.as_str())
            .bind(now)
            .bind(now.saturating_add(micros(retention)))
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {
                    tx.commit().await?;
                    Ok(Claim::Won)
                }
                Err(error) if is_unique_violation(&error) => {
                    // PostgreSQL aborts the transaction at the violation: read outside it.
                    tx.rollback().await?;
                    match self.claim_of(user_id, key).await? {
                        Some(held) => Ok(held),
                        // Released in between: the next attempt may win.
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
    pub async fn claim_of(&self, user_id: &str, key: &str) -> Result<Option<Claim>, StoreError> {
        let row = sqlx::query(
            "SELECT request_hash, order_id FROM idempotency_keys
             WHERE user_id = $1 AND idem_key = $2 AND expires_at > $3",
        )
        .bind(user_id)
        .bind(key)
        .bind(now_micros())
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|row| {
            Ok(Claim::Held {
                fingerprint: row.try_get("request_hash")?,
                order_id: row.try_get("order_id")?,
            })
        })
        .transpose()
    }

    /// Drops the claim of a saga that stored nothing, so a retry with the same key starts anew.
    ///
    /// # Errors
    /// The database failed.
    pub async fn drop_claim(
        &self,
        user_id: &str,
        key: &str,
        order_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2 AND order_id = $3",
        )
        .bind(user_id)
        .bind(key)
        .bind(order_id)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Marks a claim abandoned: its saga stopped without knowing whether its reservation
    /// landed, so a retry may take the claim over (see [`Store::take_over`]).
    ///
    /// # Errors
    /// The database failed.
    pub async fn abandon_claim(
        &self,
        user_id: &str,
        key: &str,
        order_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET abandoned = 1
             WHERE user_id = $1 AND idem_key = $2 AND order_id = $3",
        )
        .bind(user_id)
        .bind(key)
        .bind(order_id)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Takes over an abandoned claim; returns whether this call got it (one caller does).
    ///
    /// # Errors
    /// The database failed.
    pub async fn take_over(
        &self,
        user_id: &str,
        key: &str,
        order_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE idempotency_keys SET abandoned = 0
             WHERE user_id = $1 AND idem_key = $2 AND order_id = $3 AND abandoned = 1",
        )
        .bind(user_id)
        .bind(key)
        .bind(order_id)
        .execute(self.db.pool())
        .await?
        .rows_affected()
            == 1)
    }

    /// Claims created before `before` whose order was never stored.
    ///
    /// # Errors
    /// The database failed.
    pub async fn stale_claims(&self, before: i64) -> Result<Vec<StaleClaim>, StoreError> {
        let rows = sqlx::query(
            "SELECT k.user_id, k.idem_key, k.order_id FROM idempotency_keys k
             WHERE k.created_at < $1
               AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = k.order_id)
             LIMIT 100",
        )
        .bind(before)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StaleClaim {
                    user_id: row.try_get("user_id")?,
                    key: row.try_get("idem_key")?,
                    order_id: row.try_get("order_id")?,
                })
            })
            .collect()
    }

    /// Forgets keys past their retention.
    ///
    /// # Errors
    /// The database failed.
    pub async fn purge_expired_keys(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM idempotency_keys WHERE expires_at <= $1
               AND EXISTS (SELECT 1 FROM orders o WHERE o.id = idempotency_keys.order_id)",
        )
        .bind(now_micros())
        .execute(self.db.pool())
        .await?
        .rows_affected())
    }
}
