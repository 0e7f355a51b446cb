//! Between the domain and the wire: every Protobuf <-> domain mapping of the service (store
//! results as their messages, wire enums and durations as domain values), and the one mapping of
//! [`ServiceError`] to gRPC statuses with the `google.rpc` details the contract promises.

use std::{collections::HashMap, time::Duration};

use agora_contracts::agora::inventory::v1 as pb;
use agora_platform::{
    context::current_request_id,
    error::{ApiError, ERROR_DOMAIN},
};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    domain::{AdjustReason, MovementKind, PageToken, ProductId, ReservationState},
    error::ServiceError,
    store::{Level, MovementPage, MovementRow, Shortage, StoreError, reservations::ReservationRow},
};
pub use agora_platform::time::timestamp;

pub mod requests;

pub use requests::{Adjustment, MovementsQuery, NewReservation, Release, StockBatch, TtlPolicy};

/// The ErrorInfo reason of a reservation or adjustment that stock cannot cover.
pub const INSUFFICIENT_STOCK: &str = "INSUFFICIENT_STOCK";

/// A stock level.
pub fn stock_level(level: &Level) -> pb::StockLevel {
    pb::StockLevel {
        product_id: level.product_id.to_string(),
        on_hand: level.on_hand,
        available: level.available,
        reserved: level.reserved,
        update_time: Some(timestamp(level.updated_at)),
    }
}

fn movement_kind(kind: MovementKind) -> pb::MovementKind {
    match kind {
        MovementKind::Opened => pb::MovementKind::Opened,
        MovementKind::Adjusted => pb::MovementKind::Adjusted,
        MovementKind::Reserved => pb::MovementKind::Reserved,
        MovementKind::Committed => pb::MovementKind::Committed,
        MovementKind::Released => pb::MovementKind::Released,
        MovementKind::Expired => pb::MovementKind::Expired,
        MovementKind::Returned => pb::MovementKind::Returned,
    }
}

/// The wire value of an adjustment reason.
pub fn adjustment_reason(reason: AdjustReason) -> pb::AdjustmentReason {
    match reason {
        AdjustReason::Restock => pb::AdjustmentReason::Restock,
        AdjustReason::Correction => pb::AdjustmentReason::Correction,
        AdjustReason::Damage => pb::AdjustmentReason::Damage,
        AdjustReason::Return => pb::AdjustmentReason::Return,
    }
}

/// An adjustment reason from the wire; `None` for UNSPECIFIED and unknown values.
pub fn parse_adjustment_reason(raw: i32) -> Option<AdjustReason> {
    match pb::AdjustmentReason::try_from(raw).ok()? {
        pb::AdjustmentReason::Unspecified => None,
        pb::AdjustmentReason::Restock => Some(AdjustReason::Restock),
        pb::AdjustmentReason::Correction => Some(AdjustReason::Correction),
        pb::AdjustmentReason::Damage => Some(AdjustReason::Damage),
        pb::AdjustmentReason::Return => Some(AdjustReason::Return),
    }
}

/// A ledger line.
pub fn movement(row: &MovementRow) -> pb::Movement {
    pb::Movement {
        movement_id: row.movement_id.clone(),
        product_id: row.product_id.to_string(),
        kind: movement_kind(row.kind) as i32,
        on_hand_delta: row.deltas.on_hand,
        available_delta: row.deltas.available,
        reserved_delta: row.deltas.reserved,
        order_id: row.order_id.clone(),
        reason: row
            .reason
            .map_or(pb::AdjustmentReason::Unspecified, adjustment_reason) as i32,
        note: row.note.clone(),
        create_time: Some(timestamp(row.created_at)),
    }
}

/// A reservation as callers see it at `now` (a pending one past its time reads as expired).
pub fn reservation(row: &ReservationRow, now: i64) -> pb::Reservation {
    let state = match row.state.effective(row.expires_at, now) {
        ReservationState::Pending => pb::ReservationState::Pending,
        ReservationState::Committed => pb::ReservationState::Committed,
        ReservationState::Released => pb::ReservationState::Released,
        ReservationState::Expired => pb::ReservationState::Expired,
    };
    pb::Reservation {
        order_id: row.order_id.to_string(),
        lines: row
            .lines
            .as_slice()
            .iter()
            .map(|line| pb::ReservationLine {
                product_id: line.product_id.to_string(),
                quantity: line.quantity,
            })
            .collect(),
        state: state as i32,
        expire_time: Some(timestamp(row.expires_at)),
    }
}

/// A BatchGetStock answer: the levels found, in the order the products were asked for, and the
/// products without a record.
pub fn stock_batch(product_ids: Vec<ProductId>, levels: &[Level]) -> pb::BatchGetStockResponse {
    let mut found: HashMap<&ProductId, &Level> = levels
        .iter()
        .map(|level| (&level.product_id, level))
        .collect();
    let mut response = pb::BatchGetStockResponse::default();
    for id in product_ids {
        match found.remove(&id) {
            Some(level) => response.stock_levels.push(stock_level(level)),
            None => response.missing_product_ids.push(id.to_string()),
        }
    }
    response
}

/// A page of `product_id`'s ledger, with the token of the next page (empty on the last).
pub fn movements_page(product_id: &ProductId, page: &MovementPage) -> pb::ListMovementsResponse {
    pb::ListMovementsResponse {
        movements: page.movements.iter().map(movement).collect(),
        next_page_token: page
            .next
            .map(|next| PageToken::encode(product_id, next.before))
            .unwrap_or_default(),
    }
}

/// A reservation's TTL from the wire: `None` when none was asked for, `Err(())` for a negative
/// duration (which no `std` duration can hold).
pub fn requested_ttl(ttl: Option<prost_types::Duration>) -> Option<Result<Duration, ()>> {
    ttl.map(|ttl| Duration::try_from(ttl).map_err(|_| ()))
}

/// FAILED_PRECONDITION with reason INSUFFICIENT_STOCK and one PreconditionFailure violation per
/// short product, so the caller can tell its user which lines to change.
fn insufficient_stock(shortages: &[Shortage]) -> Status {
    let mut details = ErrorDetails::new();
    let product_ids: Vec<&str> = shortages.iter().map(|s| s.product_id.as_str()).collect();
    details.set_error_info(
        INSUFFICIENT_STOCK,
        ERROR_DOMAIN,
        [("product_ids".to_owned(), product_ids.join(","))],
    );
    for shortage in shortages {
        details.add_precondition_failure_violation(
            "STOCK",
            shortage.product_id.as_str(),
            format!(
                "requested {} units, {} available",
                shortage.requested, shortage.available
            ),
        );
    }
    if let Some(request_id) = current_request_id() {
        details.set_request_info(request_id, "");
    }
    let message = match shortages {
        [one] => format!("insufficient stock of product {}", one.product_id),
        many => format!("insufficient stock of {} products", many.len()),
    };
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

/// The one table of inventory's failures and their statuses. Internal failures are logged with
/// their chain and answered INTERNAL with the request id only.
impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        let error = match error {
            ServiceError::InvalidRequest(violations) => violations.into_error(),
            ServiceError::NoStock(product_id)
            | ServiceError::Store(StoreError::UnknownProduct(product_id)) => ApiError::NotFound {
                resource: "stock",
                id: product_id.to_string(),
            },
            ServiceError::Store(StoreError::InsufficientStock(shortages)) => {
                return insufficient_stock(&shortages);
            }
            ServiceError::Store(error @ StoreError::StockLimit(_)) => {
                ApiError::FailedPrecondition {
                    reason: "STOCK_LIMIT",
                    message: error.to_string(),
                }
            }
            ServiceError::Store(StoreError::NoReservation(order_id)) => ApiError::NotFound {
                resource: "reservation",
                id: order_id.to_string(),
            },
            ServiceError::Store(error @ StoreError::ReservationConflict(_)) => {
                ApiError::AlreadyExists {
                    reason: "RESERVATION_EXISTS",
                    message: error.to_string(),
                }
            }
            ServiceError::Store(error @ StoreError::ReservationReleased(_)) => {
                ApiError::FailedPrecondition {
                    reason: "RESERVATION_RELEASED",
                    message: error.to_string(),
                }
            }
            ServiceError::Store(error @ StoreError::ReservationExpired(_)) => {
                ApiError::FailedPrecondition {
                    reason: "RESERVATION_EXPIRED",
                    message: error.to_string(),
                }
            }
            ServiceError::Store(error @ (StoreError::Corrupt(_) | StoreError::Database(_))) => {
                ApiError::internal(error)
            }
        };
        error.into()
    }
}

#[cfg(test)]
mod tests;
