//! Reservations: reserve all lines or none, commit, release, and expire.
//!
//! Lock order, the same in every transaction, so PostgreSQL never deadlocks: first the
//! reservation's row (inserted, or read `FOR UPDATE`), then the stock rows of its lines sorted by
//! product id ([`Lines`] keeps them sorted). On SQLite every write transaction holds the database
//! (`BEGIN IMMEDIATE`), which serialises them outright.

use std::time::Duration;

use agora_platform::time::span_micros;
use sqlx::{Any, Row, Transaction};

use super::{
    LineContext, Movement, PRODUCER, Shortage, Store, StoreError, apply_movement, available,
};
use crate::domain::{Line, Lines, MovementKind, OrderId, ProductId, ReservationState};

/// A reservation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRow {
    /// The order it belongs to.
    pub order_id: OrderId,
    /// What it holds, sorted by product id.
    pub lines: Lines,
    /// Its stored state (see [`ReservationState::effective`] for what callers are told).
    pub state: ReservationState,
    /// When it expires (or expired) unless committed or released.
    pub expires_at: i64,
}

/// Pending reservations the sweeper expires in one round at most.
pub const SWEEP_BATCH: i64 = 100;

impl Store {
    /// Reserves every line for `order_id`, or nothing. A second call for the same order with the
    /// same lines returns the existing reservation unchanged.
    ///
    /// # Errors
    /// A product has no record; some lines are short (every short line is listed); the order has
    /// a reservation with other lines; or the database failed.
    pub async fn reserve(
        &self,
        order_id: &OrderId,
        lines: &Lines,
        ttl: Duration,
        actor: &str,
    ) -> Result<ReservationRow, StoreError> {
        self.write(|mut tx, now| async move {
            let expires_at = now.saturating_add(span_micros(ttl));
            // The reservation's row first: on PostgreSQL a concurrent call for the same order
            // waits here for the first to finish, then finds its reservation.
            let inserted = sqlx::query(
                "INSERT INTO reservations (order_id, state, expires_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT (order_id) DO NOTHING",
            )
            .bind(order_id.as_str())
            .bind(ReservationState::Pending.name())
            .bind(expires_at)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !inserted {
                let existing = self.load(&mut tx, order_id, false).await?;
                tx.rollback().await?;
                let existing = existing.ok_or_else(|| {
                    StoreError::Corrupt(format!("reservation {order_id} vanished"))
                })?;
                return if existing.lines == *lines {
                    Ok(existing)
                } else {
                    Err(StoreError::ReservationConflict(order_id.clone()))
                };
            }

            let context = LineContext {
                order_id: order_id.as_str(),
                actor,
                ..LineContext::default()
            };
            let kind = MovementKind::Reserved;
            let mut failed = false;
            let mut missing: Option<ProductId> = None;
            let mut shortages = Vec::new();
            for line in lines.as_slice() {
                let Line {
                    product_id,
                    quantity,
                } = line;
                if !failed {
                    let movement = Movement::new(product_id, kind, *quantity, context);
                    if apply_movement(&mut tx, movement, now).await?.is_some() {
                        continue;
                    }
                    failed = true;
                    // This line was refused: report it whatever its level reads now.
                    match available(&mut tx, product_id).await? {
                        None => missing = missing.or(Some(product_id.clone())),
                        Some(available) => shortages.push(shortage(line, available)),
                    }
                    continue;
                }
                // The reservation fails anyway; keep looking only to name every short line.
                match available(&mut tx, product_id).await? {
                    None => missing = missing.or(Some(product_id.clone())),
                    Some(available) if available < *quantity => {
                        shortages.push(shortage(line, available));
                    }
                    Some(_) => {}
                }
            }
            if failed {
                tx.rollback().await?;
                return Err(match missing {
                    Some(product_id) => StoreError::UnknownProduct(product_id),
                    None => StoreError::InsufficientStock(shortages),
                });
            }
            for line in lines.as_slice() {
                sqlx::query(
                    "INSERT INTO reservation_lines (order_id, product_id, quantity)
                     VALUES ($1, $2, $3)",
                )
                .bind(order_id.as_str())
                .bind(line.product_id.as_str())
                .bind(line.quantity)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(ReservationRow {
                order_id: order_id.clone(),
                lines: lines.clone(),
                state: ReservationState::Pending,
                expires_at,
            })
        })
        .await
    }

    /// Commits the pending reservation of an order: its units leave `reserved` and `on_hand`.
    /// Committing a committed reservation changes nothing.
    ///
    /// # Errors
    /// No reservation; it was released or expired; or the database failed.
    pub async fn commit(
        &self,
        order_id: &OrderId,
        actor: &str,
    ) -> Result<ReservationRow, StoreError> {
        self.change_reservation(order_id, |mut tx, mut found, now| async move {
            let settled = match found.state.effective(found.expires_at, now) {
                ReservationState::Pending => None,
                // Already sold: a retried commit succeeds and changes nothing.
                ReservationState::Committed => Some(Ok(found.clone())),
                ReservationState::Released => {
                    Some(Err(StoreError::ReservationReleased(order_id.clone())))
                }
                ReservationState::Expired => {
                    Some(Err(StoreError::ReservationExpired(order_id.clone())))
                }
            };
            if let Some(answer) = settled {
                tx.rollback().await?;
                return answer;
            }
            let context = LineContext {
                order_id: order_id.as_str(),
                actor,
                ..LineContext::default()
            };
            move_lines(&mut tx, &found, MovementKind::Committed, context, now).await?;
            set_state(&mut tx, order_id, ReservationState::Committed, now).await?;
            tx.commit().await?;
            found.state = ReservationState::Committed;
            Ok(found)
        })
        .await
    }

    /// Releases the reservation of an order: a pending one gives its units back to `available`
    /// (one past its time is expired instead, as the sweeper would); a committed one puts its
    /// sold units back on hand only when `return_committed` (its order was cancelled), and is
    /// otherwise left as it is, so a late compensation never un-sells an order. Releasing a
    /// released or expired reservation changes nothing.
    ///
    /// # Errors
    /// No reservation, or the database failed.
    pub async fn release(
        &self,
        order_id: &OrderId,
        reason: &str,
        return_committed: bool,
        actor: &str,
    ) -> Result<ReservationRow, StoreError> {
        self.change_reservation(order_id, |mut tx, mut found, now| async move {
            let (kind, next, note) = match found.state {
                ReservationState::Pending if found.expires_at > now => {
                    (MovementKind::Released, ReservationState::Released, reason)
                }
                ReservationState::Pending => (MovementKind::Expired, ReservationState::Expired, ""),
                ReservationState::Committed if return_committed => {
                    (MovementKind::Returned, ReservationState::Released, reason)
                }
                ReservationState::Committed
                | ReservationState::Released
                | ReservationState::Expired => {
                    tx.rollback().await?;
                    return Ok(found);
                }
            };
            let context = LineContext {
                order_id: order_id.as_str(),
                note,
                actor,
                ..LineContext::default()
            };
            move_lines(&mut tx, &found, kind, context, now).await?;
            set_state(&mut tx, order_id, next, now).await?;
            tx.commit().await?;
            found.state = next;
            Ok(found)
        })
        .await
    }

    /// Orders whose pending reservation is due to expire at `now`, oldest expiry first.
    ///
    /// # Errors
    /// The database failed.
    pub async fn due_reservations(&self, now: i64) -> Result<Vec<OrderId>, StoreError> {
        let rows = sqlx::query(
            "SELECT order_id FROM reservations WHERE state = $1 AND expires_at <= $2
             ORDER BY expires_at LIMIT $3",
        )
        .bind(ReservationState::Pending.name())
        .bind(now)
        .bind(SWEEP_BATCH)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("order_id")?;
                OrderId::parse(&id)
                    .map_err(|_| StoreError::Corrupt(format!("reservation with order id {id:?}")))
            })
            .collect()
    }

    /// Expires the reservation of an order if it is still pending and past its time, giving its
    /// units back. Returns whether it did: several sweepers may race for one reservation, and
    /// only the first (under the row lock) finds it pending.
    ///
    /// # Errors
    /// The database failed.
    pub async fn expire(&self, order_id: &OrderId) -> Result<bool, StoreError> {
        self.write(|mut tx, now| async move {
            let found = self.load(&mut tx, order_id, true).await?;
            let Some(found) = found.filter(|found| {
                found.state == ReservationState::Pending && found.expires_at <= now
            }) else {
                tx.rollback().await?;
                return Ok(false);
            };
            let context = LineContext {
                order_id: order_id.as_str(),
                actor: PRODUCER,
                ..LineContext::default()
            };
            move_lines(&mut tx, &found, MovementKind::Expired, context, now).await?;
            set_state(&mut tx, order_id, ReservationState::Expired, now).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Runs `change` on the reservation of an order, read with its row locked, in a write
    /// transaction tried again when it fails transiently; `change` is given the transaction, to
    /// commit or roll back, the reservation, and the time now.
    ///
    /// # Errors
    /// No reservation, or `change` failed.
    async fn change_reservation<T, F, Fut>(
        &self,
        order_id: &OrderId,
        change: F,
    ) -> Result<T, StoreError>
    where
        F: Fn(Transaction<'static, Any>, ReservationRow, i64) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let change = &change;
        self.write(|mut tx, now| async move {
            let Some(found) = self.load(&mut tx, order_id, true).await? else {
                tx.rollback().await?;
                return Err(StoreError::NoReservation(order_id.clone()));
            };
            change(tx, found, now).await
        })
        .await
    }

    /// The reservation of an order inside `tx`, its row locked when `lock` (PostgreSQL).
    async fn load(
        &self,
        tx: &mut Transaction<'static, Any>,
        order_id: &OrderId,
        lock: bool,
    ) -> Result<Option<ReservationRow>, StoreError> {
        let lock = if lock { self.lock_clause() } else { "" };
        let row = sqlx::query(&format!(
            "SELECT state, expires_at FROM reservations WHERE order_id = $1{lock}"
        ))
        .bind(order_id.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let state: String = row.try_get("state")?;
        let state = ReservationState::from_name(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("reservation state {state:?}")))?;
        let rows =
            sqlx::query("SELECT product_id, quantity FROM reservation_lines WHERE order_id = $1")
                .bind(order_id.as_str())
                .fetch_all(&mut **tx)
                .await?;
        let lines = rows
            .iter()
            .map(|row| {
                let product_id: String = row.try_get("product_id")?;
                Ok(Line {
                    product_id: ProductId::parse(&product_id).map_err(|_| {
                        StoreError::Corrupt(format!("reservation line for {product_id:?}"))
                    })?,
                    quantity: row.try_get("quantity")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(ReservationRow {
            order_id: order_id.clone(),
            lines: Lines::from_stored(lines),
            state,
            expires_at: row.try_get("expires_at")?,
        }))
    }
}

fn shortage(line: &Line, available: i64) -> Shortage {
    Shortage {
        product_id: line.product_id.clone(),
        requested: line.quantity,
        available,
    }
}

/// Applies a movement of `kind` for every line of a reservation.
async fn move_lines(
    tx: &mut Transaction<'static, Any>,
    reservation: &ReservationRow,
    kind: MovementKind,
    context: LineContext<'_>,
    now: i64,
) -> Result<(), StoreError> {
    for line in reservation.lines.as_slice() {
        let movement = Movement::new(&line.product_id, kind, line.quantity, context);
        if apply_movement(tx, movement, now).await?.is_none() {
            // Units held by a reservation are always there to commit or give back; only
            // returning sold units can hit the ceiling of units on hand.
            return Err(if kind == MovementKind::Returned {
                StoreError::StockLimit(line.product_id.clone())
            } else {
                StoreError::Corrupt(format!(
                    "stock of {} cannot take the {} movement of order {}",
                    line.product_id,
                    kind.name(),
                    reservation.order_id
                ))
            });
        }
    }
    Ok(())
}

async fn set_state(
    tx: &mut Transaction<'static, Any>,
    order_id: &OrderId,
    state: ReservationState,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE reservations SET state = $1, updated_at = $2 WHERE order_id = $3")
        .bind(state.name())
        .bind(now)
        .bind(order_id.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
