//! Between the store and the wire: store results as their Protobuf messages, and store failures
//! as gRPC statuses with the `google.rpc` details the contract promises.

use agora_contracts::agora::inventory::v1 as pb;
use agora_platform::{
    context::current_request_id,
    error::{ApiError, ERROR_DOMAIN},
};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    domain::{AdjustReason, MovementKind, ReservationState},
    store::{Level, MovementRow, Shortage, StoreError, reservations::ReservationRow},
};
pub use agora_platform::time::timestamp;

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

impl From<StoreError> for Status {
    fn from(error: StoreError) -> Self {
        let error = match error {
            StoreError::InsufficientStock(shortages) => return insufficient_stock(&shortages),
            StoreError::UnknownProduct(product_id) => ApiError::NotFound {
                resource: "stock",
                id: product_id.to_string(),
            },
            StoreError::StockLimit(_) => ApiError::FailedPrecondition {
                reason: "STOCK_LIMIT",
                message: error.to_string(),
            },
            StoreError::NoReservation(order_id) => ApiError::NotFound {
                resource: "reservation",
                id: order_id.to_string(),
            },
            StoreError::ReservationConflict(_) => ApiError::AlreadyExists {
                reason: "RESERVATION_EXISTS",
                message: error.to_string(),
            },
            StoreError::ReservationReleased(_) => ApiError::FailedPrecondition {
                reason: "RESERVATION_RELEASED",
                message: error.to_string(),
            },
            StoreError::ReservationExpired(_) => ApiError::FailedPrecondition {
                reason: "RESERVATION_EXPIRED",
                message: error.to_string(),
            },
            StoreError::Corrupt(_) | StoreError::Database(_) => ApiError::internal(error),
        };
        error.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ProductId;

    #[test]
    fn a_shortage_names_every_short_product_with_what_was_asked_and_what_is_left() {
        let product = |raw: &str| ProductId::parse(raw).expect("a UUID");
        let status = Status::from(StoreError::InsufficientStock(vec![
            Shortage {
                product_id: product("0190a0b0-0000-7000-8000-00000000000a"),
                requested: 3,
                available: 1,
            },
            Shortage {
                product_id: product("0190a0b0-0000-7000-8000-00000000000b"),
                requested: 2,
                available: 0,
            },
        ]));
        assert_eq!(status.code(), Code::FailedPrecondition);
        let details = status.get_error_details();
        assert_eq!(
            details.error_info().map(|info| info.reason.as_str()),
            Some(INSUFFICIENT_STOCK)
        );
        let violations = &details
            .precondition_failure()
            .expect("a PreconditionFailure")
            .violations;
        assert_eq!(violations.len(), 2);
        assert_eq!(violations[0].r#type, "STOCK");
        assert_eq!(
            violations[0].subject,
            "0190a0b0-0000-7000-8000-00000000000a"
        );
        assert_eq!(violations[0].description, "requested 3 units, 1 available");
    }

    #[test]
    fn timestamps_keep_their_microseconds() {
        let ts = timestamp(1_700_000_000_123_456);
        assert_eq!((ts.seconds, ts.nanos), (1_700_000_000, 123_456_000));
    }
}
