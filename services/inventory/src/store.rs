//! Inventory's SQL: stock levels and the records opened from product events. The ledger lives in
//! [`ledger`], reservations in [`reservations`].
//!
//! Every change of a level goes through one helper, `ledger::apply_movement`: a conditional
//! `UPDATE` that refuses to take `available` or `reserved` below zero (checked against the row as
//! it is when the update runs, so concurrent writers cannot both pass), followed by the ledger
//! line, and a `StockDepleted` event in the outbox when `available` reaches zero, all in the
//! caller's write transaction. CHECK constraints in the schema back this up.

use agora_platform::{
    events,
    storage::{Backend, Database, DatabaseFailure, Migrations},
};
use sqlx::{Any, Row, Transaction, any::AnyRow};

use crate::domain::{AdjustReason, MovementKind, OrderId, ProductId};

pub mod ledger;
pub mod reservations;

pub(crate) use ledger::{LineContext, Movement, apply_movement, available, insert_movement};
pub use ledger::{MovementPage, MovementRow};

/// Inventory's migrations, per backend.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &sqlx::migrate!("./migrations/postgres"),
    sqlite: &sqlx::migrate!("./migrations/sqlite"),
};

/// The producer name of inventory's events, and the name of its stream on the bus.
pub const PRODUCER: &str = agora_platform::events::Stream::Inventory.name();

pub use agora_platform::time::now_micros;

/// A product whose stock cannot cover a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// The product.
    pub product_id: ProductId,
    /// Units asked for (to reserve, or to take away).
    pub requested: i64,
    /// Units available when the request was refused.
    pub available: i64,
}

/// Store failures the service distinguishes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The product has no stock record.
    #[error("no stock record for product {0}")]
    UnknownProduct(ProductId),
    /// One or more products cannot cover the request; nothing was changed.
    #[error("insufficient stock")]
    InsufficientStock(Vec<Shortage>),
    /// The change would put more than the maximum on hand.
    #[error("product {0} would hold more than the maximum stock")]
    StockLimit(ProductId),
    /// The order has no reservation.
    #[error("order {0} has no reservation")]
    NoReservation(OrderId),
    /// The order's reservation exists with other lines.
    #[error("order {0} has a reservation with other lines")]
    ReservationConflict(OrderId),
    /// The reservation was released; it cannot be committed.
    #[error("the reservation of order {0} was released")]
    ReservationReleased(OrderId),
    /// The reservation expired; it cannot be committed.
    #[error("the reservation of order {0} expired")]
    ReservationExpired(OrderId),
    /// A stored row breaks the rules (a bug, or a hand-edited database).
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl DatabaseFailure for StoreError {
    fn database_error(&self) -> Option<&sqlx::Error> {
        match self {
            Self::Database(error) => Some(error),
            _ => None,
        }
    }
}

/// A product's stock level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// The product.
    pub product_id: ProductId,
    /// Units physically in stock.
    pub on_hand: i64,
    /// Units that can be ordered.
    pub available: i64,
    /// Units held by pending reservations.
    pub reserved: i64,
    /// When the level last changed.
    pub updated_at: i64,
}

/// Inventory's database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

const LEVEL_COLUMNS: &str = "product_id, on_hand, available, reserved, updated_at";

fn level(row: &AnyRow) -> Result<Level, StoreError> {
    let product_id: String = row.try_get("product_id")?;
    Ok(Level {
        product_id: ProductId::parse(&product_id)
            .map_err(|_| StoreError::Corrupt(format!("stock row with id {product_id:?}")))?,
        on_hand: row.try_get("on_hand")?,
        available: row.try_get("available")?,
        reserved: row.try_get("reserved")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Wraps a migrated database.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// ` FOR UPDATE` on PostgreSQL, where a read that decides a write must lock its row; nothing
    /// on SQLite, whose write transactions hold the whole database.
    fn lock_clause(&self) -> &'static str {
        match self.db.backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// Runs `change` in a write transaction tried again when it fails transiently
    /// ([`Database::write`]), with the time of its attempt.
    async fn write<T, F, Fut>(&self, change: F) -> Result<T, StoreError>
    where
        F: Fn(Transaction<'static, Any>, i64) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let change = &change;
        self.db
            .write(|tx| async move { change(tx, now_micros()).await })
            .await
    }

    /// Runs `apply` for an event `consumer` has not applied yet, in a [`Store::write`] that
    /// remembers the event's id; a redelivered event changes nothing and is answered
    /// `redelivered`.
    async fn once<T, F, Fut>(
        &self,
        consumer: &str,
        event_id: &str,
        redelivered: T,
        apply: F,
    ) -> Result<T, StoreError>
    where
        T: Copy,
        F: Fn(Transaction<'static, Any>, i64) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let apply = &apply;
        self.write(|mut tx, now| async move {
            if !events::remember(&mut tx, consumer, event_id).await? {
                tx.rollback().await?;
                return Ok(redelivered);
            }
            apply(tx, now).await
        })
        .await
    }

    /// The stock level of one product, `None` when it has no record.
    ///
    /// # Errors
    /// The database failed.
    pub async fn level(&self, product_id: &ProductId) -> Result<Option<Level>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {LEVEL_COLUMNS} FROM stock WHERE product_id = $1"
        ))
        .bind(product_id.as_str())
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(level).transpose()
    }

    /// The stock levels of several distinct products, in no particular order; products without
    /// a record are left out.
    ///
    /// # Errors
    /// The database failed.
    pub async fn levels(&self, product_ids: &[ProductId]) -> Result<Vec<Level>, StoreError> {
        let select = format!("SELECT {LEVEL_COLUMNS} FROM stock WHERE product_id IN");
        let ids = product_ids.iter().map(ProductId::as_str);
        let rows = self.db.fetch_in(&select, ids).await?;
        rows.iter().map(level).collect()
    }

    /// Changes the units on hand (and available) of a product by `delta`, with its ledger line.
    ///
    /// # Errors
    /// The product has no record, a negative delta exceeds `available`, the result exceeds the
    /// maximum, or the database failed.
    pub async fn adjust(
        &self,
        product_id: &ProductId,
        delta: i64,
        reason: AdjustReason,
        note: &str,
        actor: &str,
    ) -> Result<Level, StoreError> {
        self.write(|mut tx, now| async move {
            let context = LineContext {
                reason: Some(reason),
                note,
                actor,
                ..LineContext::default()
            };
            let movement = Movement::new(product_id, MovementKind::Adjusted, delta, context);
            if let Some(level) = apply_movement(&mut tx, movement, now).await? {
                tx.commit().await?;
                return Ok(level);
            }
            // Refused: say why.
            let available = available(&mut tx, product_id).await?;
            tx.rollback().await?;
            Err(match available {
                None => StoreError::UnknownProduct(product_id.clone()),
                Some(available) if delta < 0 && available + delta < 0 => {
                    StoreError::InsufficientStock(vec![Shortage {
                        product_id: product_id.clone(),
                        requested: -delta,
                        available,
                    }])
                }
                Some(_) => StoreError::StockLimit(product_id.clone()),
            })
        })
        .await
    }

    /// Opens a product's stock record with zero units and its first ledger line, once: a
    /// redelivered event (same `event_id`) or a second event for the same product changes
    /// nothing. Returns whether a record was opened.
    ///
    /// # Errors
    /// The database failed.
    pub async fn open(
        &self,
        consumer: &str,
        event_id: &str,
        product_id: &ProductId,
    ) -> Result<bool, StoreError> {
        self.once(consumer, event_id, false, |mut tx, now| async move {
            let inserted = sqlx::query(
                "INSERT INTO stock (product_id, on_hand, available, reserved, created_at, updated_at)
                 VALUES ($1, 0, 0, 0, $2, $2) ON CONFLICT (product_id) DO NOTHING",
            )
            .bind(product_id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if inserted {
                let context = LineContext {
                    actor: PRODUCER,
                    ..LineContext::default()
                };
                let movement = Movement::new(product_id, MovementKind::Opened, 0, context);
                insert_movement(&mut tx, movement, now).await?;
            }
            tx.commit().await?;
            Ok(inserted)
        })
        .await
    }

    /// Marks a product's record archived (informational: levels, reservations and adjustments
    /// are unaffected). Returns whether the product had a record.
    ///
    /// # Errors
    /// The database failed.
    pub async fn archive(
        &self,
        consumer: &str,
        event_id: &str,
        product_id: &ProductId,
        archived_at: i64,
    ) -> Result<bool, StoreError> {
        self.once(consumer, event_id, true, |mut tx, _| async move {
            let updated = sqlx::query(
                "UPDATE stock SET archived_at = $1 WHERE product_id = $2 AND archived_at IS NULL",
            )
            .bind(archived_at)
            .bind(product_id.as_str())
            .execute(&mut *tx)
            .await?;
            let known = updated.rows_affected() == 1 || {
                sqlx::query("SELECT 1 AS one FROM stock WHERE product_id = $1")
                    .bind(product_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some()
            };
            tx.commit().await?;
            Ok(known)
        })
        .await
    }
}
