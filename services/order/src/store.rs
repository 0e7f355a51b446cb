//! Order's SQL: orders and the outbox events written with them; idempotency claims live in
//! [`claims`].

use agora_contracts::agora::{events::v1::OrderPlaced, order::v1 as pb};
use agora_platform::{
    events,
    storage::{Database, DatabaseFailure, Migrations, retry_transient},
};
use prost::Message;
use sqlx::{Row, any::AnyRow};

use crate::{domain::Status, watch::Hub, wire};

pub mod claims;

pub use claims::{Claim, Held, Hold};

/// Order's migrations, per backend.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &sqlx::migrate!("./migrations/postgres"),
    sqlite: &sqlx::migrate!("./migrations/sqlite"),
};

/// The producer name of order's events, and the name of its stream on the bus.
pub const PRODUCER: &str = agora_platform::events::Stream::Order.name();

pub use agora_platform::time::now_micros;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A stored row breaks the rules.
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
            Self::Corrupt(_) => None,
        }
    }
}

/// A stored order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRow {
    /// The order's id.
    pub id: String,
    /// Who placed it.
    pub user_id: String,
    /// Its status.
    pub status: Status,
    /// The lines and address (the other fields unset).
    pub body: pb::Order,
    /// The currency of the lines and total.
    pub currency_code: String,
    /// The total in minor units.
    pub total_minor: i64,
    /// Why it was cancelled.
    pub cancel_reason: String,
    /// Why it failed.
    pub failure_reason: String,
    /// When it was placed (µs).
    pub created_at: i64,
    /// When its status last changed (µs).
    pub updated_at: i64,
    /// Goes up by one with every change of the row (1 when placed): which state is newer.
    pub version: i64,
}

const ORDER_COLUMNS: &str = "id, user_id, status, currency_code, total_minor, body, \
     cancel_reason, failure_reason, created_at, updated_at, version";

fn order(row: &AnyRow) -> Result<OrderRow, StoreError> {
    let id: String = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    let body: Vec<u8> = row.try_get("body")?;
    Ok(OrderRow {
        status: Status::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("order {id} has status {status:?}")))?,
        body: pb::Order::decode(body.as_slice())
            .map_err(|_| StoreError::Corrupt(format!("order {id} has an unreadable body")))?,
        user_id: row.try_get("user_id")?,
        currency_code: row.try_get("currency_code")?,
        total_minor: row.try_get("total_minor")?,
        cancel_reason: row.try_get("cancel_reason")?,
        failure_reason: row.try_get("failure_reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
        id,
    })
}

/// A page position: the (created_at, id) of the last order returned.
pub type Cursor = (i64, String);

/// One order from `db`.
///
/// # Errors
/// The database failed.
pub async fn read(db: &Database, id: &str) -> Result<Option<OrderRow>, StoreError> {
    let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(order).transpose()
}

/// Order's database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
    /// Told of every committed change of an order, so watches see it without reading.
    hub: Hub,
}

impl Store {
    /// Wraps a migrated database; every change of an order is announced on `hub`.
    pub fn new(db: Database, hub: Hub) -> Self {
        Self { db, hub }
    }

    /// The hub watches subscribe to.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Stores a new PENDING order and its OrderPlaced event in one transaction, and marks its
    /// claim placed, provided `hold` still holds the claim. Returns whether it did: a holder
    /// that lost its claim (taken over after its lease ran out) stores nothing.
    ///
    /// # Errors
    /// The database failed.
    pub async fn insert(&self, order: &OrderRow, hold: &Hold) -> Result<bool, StoreError> {
        self.db
            .write(|mut tx| async move {
                // The claim first: on PostgreSQL this locks it, so a take-over waits for this
                // transaction and then finds the claim placed.
                let mark = format!(
                    "UPDATE idempotency_keys SET placed = 1 WHERE {}",
                    claims::HELD_BY
                );
                let held = claims::bind_hold(sqlx::query(&mark), hold)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if !held || order.id != hold.order_id.as_str() {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query(&format!(
                    "INSERT INTO orders ({ORDER_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ))
                .bind(&order.id)
                .bind(&order.user_id)
                .bind(order.status.as_str())
                .bind(&order.currency_code)
                .bind(order.total_minor)
                .bind(order.body.encode_to_vec())
                .bind(&order.cancel_reason)
                .bind(&order.failure_reason)
                .bind(order.created_at)
                .bind(order.updated_at)
                .bind(order.version)
                .execute(&mut *tx)
                .await?;
                events::enqueue(&mut tx, PRODUCER, &order.id, &OrderPlaced::from(order)).await?;
                tx.commit().await?;
                Ok(true)
            })
            .await
    }

    /// One order.
    ///
    /// # Errors
    /// The database failed.
    pub async fn get(&self, id: &str) -> Result<Option<OrderRow>, StoreError> {
        read(&self.db, id).await
    }

    /// Moves an order from one of `from` to `to` (with a failure reason for FAILED). Returns
    /// whether it moved; an order in another status is left alone. A move is announced to
    /// watchers once committed.
    ///
    /// # Errors
    /// The database failed.
    pub async fn transition(
        &self,
        id: &str,
        from: &[Status],
        to: Status,
        failure_reason: &str,
    ) -> Result<bool, StoreError> {
        let from_list: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let sql = format!(
            "UPDATE orders SET status = $1, failure_reason = $2, updated_at = $3,
             version = version + 1
             WHERE id = $4 AND status IN ({}) RETURNING version",
            from_list.join(", ")
        );
        let version: Option<i64> = retry_transient(|| {
            let sql = sql.clone();
            async move {
                sqlx::query_scalar::<_, i64>(&sql)
                    .bind(to.as_str())
                    .bind(failure_reason)
                    .bind(now_micros())
                    .bind(id)
                    .fetch_optional(self.db.pool())
                    .await
            }
        })
        .await?;
        if let Some(version) = version {
            self.hub.changed(id, version);
        }
        Ok(version.is_some())
    }

    /// Marks a PENDING or CONFIRMED order cancelled, with its OrderCancelled event, in one
    /// transaction. Returns whether it changed; a change is announced to watchers once
    /// committed.
    ///
    /// # Errors
    /// The database failed.
    pub async fn cancel(&self, order: &OrderRow, reason: &str) -> Result<bool, StoreError> {
        let version = self
            .db
            .write(|mut tx| async move {
                let now = now_micros();
                let version: Option<i64> = sqlx::query_scalar::<_, i64>(
                    "UPDATE orders SET status = 'cancelled', cancel_reason = $1, updated_at = $2,
                     version = version + 1
                     WHERE id = $3 AND status IN ('pending', 'confirmed') RETURNING version",
                )
                .bind(reason)
                .bind(now)
                .bind(&order.id)
                .fetch_optional(&mut *tx)
                .await?;
                if version.is_some() {
                    let event = wire::cancelled_event(order, reason, now);
                    events::enqueue(&mut tx, PRODUCER, &order.id, &event).await?;
                }
                tx.commit().await?;
                Ok::<_, StoreError>(version)
            })
            .await?;
        if let Some(version) = version {
            self.hub.changed(&order.id, version);
        }
        Ok(version.is_some())
    }

    /// Orders newest first: of `user_id` (or everyone), in `status` (or any), after `after`.
    ///
    /// # Errors
    /// The database failed.
    pub async fn list(
        &self,
        user_id: Option<&str>,
        status: Option<Status>,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<OrderRow>, StoreError> {
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if user_id.is_some() {
            conditions.push(format!("user_id = {}", next()));
        }
        if status.is_some() {
            conditions.push(format!("status = {}", next()));
        }
        if after.is_some() {
            let (a, b, c) = (next(), next(), next());
            conditions.push(format!(
                "(created_at < {a} OR (created_at = {b} AND id < {c}))"
            ));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders {filter} ORDER BY created_at DESC, id DESC LIMIT {limit}"
        );
        let mut query = sqlx::query(&sql);
        if let Some(user_id) = user_id {
            query = query.bind(user_id);
        }
        if let Some(status) = status {
            query = query.bind(status.as_str());
        }
        if let Some((created, id)) = after {
            query = query.bind(*created).bind(*created).bind(id.as_str());
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        rows.iter().map(order).collect()
    }

    /// PENDING orders last changed before `before`: sagas that did not finish.
    ///
    /// # Errors
    /// The database failed.
    pub async fn stuck(&self, before: i64) -> Result<Vec<OrderRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE status = 'pending' AND updated_at < $1
             ORDER BY updated_at LIMIT 100"
        ))
        .bind(before)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(order).collect()
    }
}
