//! The ledger: every change of a level goes through `apply_movement`, which changes the level
//! only if the change keeps every figure in range, writes the ledger line, and announces a
//! depletion, all in the caller's transaction; and the ledger read back page by page.

use agora_contracts::agora::events::v1::StockDepleted;
use agora_platform::events;
use sqlx::{Any, Row, Transaction, any::AnyRow};

use super::{LEVEL_COLUMNS, Level, PRODUCER, Store, StoreError, level};
use crate::domain::{
    AdjustReason, Deltas, MAX_ON_HAND, MovementKind, PageToken, ProductId, depleted,
};

/// A line of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementRow {
    /// Its id.
    pub movement_id: String,
    /// The product.
    pub product_id: ProductId,
    /// What happened.
    pub kind: MovementKind,
    /// How the level changed.
    pub deltas: Deltas,
    /// The order, for reservation movements; empty otherwise.
    pub order_id: String,
    /// The admin's reason, for adjustments.
    pub reason: Option<AdjustReason>,
    /// Free text.
    pub note: String,
    /// When it happened.
    pub created_at: i64,
}

/// One page of a ledger, newest first.
#[derive(Debug, Clone)]
pub struct MovementPage {
    /// The movements.
    pub movements: Vec<MovementRow>,
    /// Where the next page starts, when there is one.
    pub next: Option<PageToken>,
}

/// What a ledger line says besides its kind and deltas.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LineContext<'a> {
    pub(crate) order_id: &'a str,
    pub(crate) reason: Option<AdjustReason>,
    pub(crate) note: &'a str,
    pub(crate) actor: &'a str,
}

/// One change of a product's level, as its ledger line records it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Movement<'a> {
    pub(crate) product_id: &'a ProductId,
    pub(crate) kind: MovementKind,
    pub(crate) deltas: Deltas,
    pub(crate) context: LineContext<'a>,
}

impl<'a> Movement<'a> {
    /// A movement of `kind` over `units` of a product.
    pub(crate) fn new(
        product_id: &'a ProductId,
        kind: MovementKind,
        units: i64,
        context: LineContext<'a>,
    ) -> Self {
        Self {
            product_id,
            kind,
            deltas: kind.deltas(units),
            context,
        }
    }
}

fn movement(row: &AnyRow) -> Result<MovementRow, StoreError> {
    let product_id: String = row.try_get("product_id")?;
    let kind: String = row.try_get("kind")?;
    let reason: String = row.try_get("reason")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("movement with {what}"));
    Ok(MovementRow {
        movement_id: row.try_get("movement_id")?,
        product_id: ProductId::parse(&product_id).map_err(|_| corrupt("a malformed product"))?,
        kind: MovementKind::from_name(&kind).ok_or_else(|| corrupt("an unknown kind"))?,
        deltas: Deltas {
            on_hand: row.try_get("on_hand_delta")?,
            available: row.try_get("available_delta")?,
            reserved: row.try_get("reserved_delta")?,
        },
        order_id: row.try_get("order_id")?,
        reason: match reason.as_str() {
            "" => None,
            name => {
                Some(AdjustReason::from_name(name).ok_or_else(|| corrupt("an unknown reason"))?)
            }
        },
        note: row.try_get("note")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Applies one movement to a product's level, if the level allows it, and writes its ledger line
/// and, when `available` reaches zero, a `StockDepleted` event: all inside `tx`. Returns the new
/// level, or `None` when the product has no record or the change would take a figure below zero
/// or beyond [`MAX_ON_HAND`] (nothing was written).
pub(crate) async fn apply_movement(
    tx: &mut Transaction<'static, Any>,
    movement: Movement<'_>,
    now: i64,
) -> Result<Option<Level>, StoreError> {
    let Movement {
        product_id, deltas, ..
    } = movement;
    // The guards are evaluated against the row as it is when the update runs (after waiting for
    // its lock on PostgreSQL), so concurrent reservations cannot both take the last unit.
    let updated = sqlx::query(&format!(
        "UPDATE stock SET on_hand = on_hand + $1, available = available + $2,
                reserved = reserved + $3, updated_at = $4
         WHERE product_id = $5 AND available + $2 >= 0 AND reserved + $3 >= 0
           AND on_hand + $1 <= $6
         RETURNING {LEVEL_COLUMNS}"
    ))
    .bind(deltas.on_hand)
    .bind(deltas.available)
    .bind(deltas.reserved)
    .bind(now)
    .bind(product_id.as_str())
    .bind(MAX_ON_HAND)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(updated) = updated else {
        return Ok(None);
    };
    let level = level(&updated)?;
    insert_movement(tx, movement, now).await?;
    if depleted(deltas.available, level.available) {
        let event = StockDepleted {
            product_id: product_id.to_string(),
            deplete_time: Some(agora_platform::time::timestamp(now)),
        };
        events::enqueue(tx, PRODUCER, product_id.as_str(), &event).await?;
    }
    Ok(Some(level))
}

/// Writes the ledger line of a movement, inside `tx`.
pub(crate) async fn insert_movement(
    tx: &mut Transaction<'static, Any>,
    movement: Movement<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let Movement {
        product_id,
        kind,
        deltas,
        context,
    } = movement;
    sqlx::query(
        "INSERT INTO movements (movement_id, product_id, kind, on_hand_delta, available_delta,
                                reserved_delta, order_id, reason, note, actor, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(product_id.as_str())
    .bind(kind.name())
    .bind(deltas.on_hand)
    .bind(deltas.available)
    .bind(deltas.reserved)
    .bind(context.order_id)
    .bind(context.reason.map_or("", AdjustReason::name))
    .bind(context.note)
    .bind(context.actor)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The `available` units of a product inside `tx`, or `None` when it has no record.
pub(crate) async fn available(
    tx: &mut Transaction<'static, Any>,
    product_id: &ProductId,
) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query("SELECT available FROM stock WHERE product_id = $1")
        .bind(product_id.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|row| row.try_get("available")).transpose()
}

impl Store {
    /// One page of a product's ledger, newest first.
    ///
    /// # Errors
    /// The product has no record, or the database failed.
    pub async fn movements(
        &self,
        product_id: &ProductId,
        page_size: usize,
        after: Option<PageToken>,
    ) -> Result<MovementPage, StoreError> {
        let known = sqlx::query("SELECT 1 AS one FROM stock WHERE product_id = $1")
            .bind(product_id.as_str())
            .fetch_optional(self.db.pool())
            .await?;
        if known.is_none() {
            return Err(StoreError::UnknownProduct(product_id.clone()));
        }
        // One row more than the page tells whether another page follows.
        let limit = i64::try_from(page_size)
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        let rows = sqlx::query(
            "SELECT seq, movement_id, product_id, kind, on_hand_delta, available_delta,
                    reserved_delta, order_id, reason, note, created_at
             FROM movements WHERE product_id = $1 AND seq < $2
             ORDER BY seq DESC LIMIT $3",
        )
        .bind(product_id.as_str())
        .bind(after.map_or(i64::MAX, |token| token.before))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        let more = rows.len() > page_size;
        let page = &rows[..rows.len().min(page_size)];
        let next = match (more, page.last()) {
            (true, Some(last)) => Some(PageToken {
                before: last.try_get("seq")?,
            }),
            _ => None,
        };
        Ok(MovementPage {
            movements: page.iter().map(movement).collect::<Result<_, _>>()?,
            next,
        })
    }
}
