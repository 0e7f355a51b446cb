//! Proto <-> domain for the order service: stored orders as the contract's messages and events,
//! statuses, resume tokens, the requests that are plumbing (in `requests`), and the one mapping
//! of a [`ServiceError`] to the status the contract promises.

use agora_contracts::agora::{
    common::v1::Money,
    events::v1::{OrderCancelled, OrderPlaced, OrderPlacedLine},
    order::v1 as pb,
};
use agora_platform::{
    context::current_request_id,
    error::{ApiError, ERROR_DOMAIN},
    time::timestamp,
};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    domain::{Status as OrderStatus, money::MoneyError},
    error::ServiceError,
    store::OrderRow,
};

mod requests;

pub use requests::{CancelOrder, ListOrders, WatchOrder};

pub mod place;

pub use place::{LineRequest, PlaceOrder, fingerprint};

impl From<&OrderRow> for pb::Order {
    /// The order as the contract shows it.
    fn from(row: &OrderRow) -> Self {
        pb::Order {
            id: row.id.clone(),
            user_id: row.user_id.clone(),
            status: pb::OrderStatus::from(row.status) as i32,
            lines: row.body.lines.clone(),
            total: Some(total(row)),
            shipping_address: row.body.shipping_address.clone(),
            cancel_reason: row.cancel_reason.clone(),
            failure_reason: row.failure_reason.clone(),
            create_time: Some(timestamp(row.created_at)),
            update_time: Some(timestamp(row.updated_at)),
        }
    }
}

/// An order's total as the contract's money.
fn total(row: &OrderRow) -> Money {
    Money {
        currency_code: row.currency_code.clone(),
        amount_minor: row.total_minor,
    }
}

impl From<OrderStatus> for pb::OrderStatus {
    /// The contract's value of a status.
    fn from(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Pending => pb::OrderStatus::Pending,
            OrderStatus::Confirmed => pb::OrderStatus::Confirmed,
            OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
            OrderStatus::Failed => pb::OrderStatus::Failed,
        }
    }
}

/// A status filter from the contract's value: `None` for UNSPECIFIED (any status).
pub fn status_filter(status: pb::OrderStatus) -> Option<OrderStatus> {
    match status {
        pb::OrderStatus::Unspecified => None,
        pb::OrderStatus::Pending => Some(OrderStatus::Pending),
        pb::OrderStatus::Confirmed => Some(OrderStatus::Confirmed),
        pb::OrderStatus::Cancelled => Some(OrderStatus::Cancelled),
        pb::OrderStatus::Failed => Some(OrderStatus::Failed),
    }
}

impl From<&OrderRow> for OrderPlaced {
    /// The OrderPlaced event of a stored order.
    fn from(row: &OrderRow) -> Self {
        OrderPlaced {
            order_id: row.id.clone(),
            user_id: row.user_id.clone(),
            lines: row
                .body
                .lines
                .iter()
                .map(|l| OrderPlacedLine {
                    product_id: l.product_id.clone(),
                    quantity: l.quantity,
                })
                .collect(),
            total: Some(total(row)),
            place_time: Some(timestamp(row.created_at)),
        }
    }
}

/// The OrderCancelled event of `order`, cancelled for `reason` at `at` (µs).
pub fn cancelled_event(order: &OrderRow, reason: &str, at: i64) -> OrderCancelled {
    OrderCancelled {
        order_id: order.id.clone(),
        user_id: order.user_id.clone(),
        reason: reason.to_owned(),
        cancel_time: Some(timestamp(at)),
    }
}

impl From<&OrderRow> for pb::WatchOrderResponse {
    /// One message of a WatchOrder stream: the order's state and the token that resumes after it.
    fn from(row: &OrderRow) -> Self {
        pb::WatchOrderResponse {
            order: Some(pb::Order::from(row)),
            resume_token: resume_token(row.version),
        }
    }
}

/// The resume token of a state: its version in base 10. Clients treat it as opaque.
pub fn resume_token(version: i64) -> String {
    version.to_string()
}

/// The version a resume token names; `None` for a token this service did not issue.
pub fn parse_resume_token(token: &str) -> Option<i64> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

impl From<ServiceError> for Status {
    /// The status the contract promises for each failure; internal ones are logged with their
    /// chain and answered INTERNAL with the request id only.
    fn from(error: ServiceError) -> Self {
        let message = error.to_string();
        match error {
            ServiceError::InvalidRequest(violations) => violations.into_error().into(),
            ServiceError::NotFound(id) => ApiError::NotFound {
                resource: "order",
                id,
            }
            .into(),
            ServiceError::OthersOrders => ApiError::PermissionDenied(message).into(),
            ServiceError::WatchCap(refused) => refused.into(),
            ServiceError::KeyInProgress => Status::aborted(message),
            ServiceError::KeyReused => refused("IDEMPOTENCY_KEY_REUSED", message),
            ServiceError::ProductsUnavailable(ids) => {
                unavailable(message, ids, "unknown or archived")
            }
            ServiceError::OutOfStock(short) => {
                precondition("OUT_OF_STOCK", message, "STOCK", &short)
            }
            ServiceError::NoStockRecord(ids) => unavailable(message, ids, "has no stock record"),
            ServiceError::Money(MoneyError::TooLarge) => ApiError::invalid_field(
                "lines",
                "the order's total is too large: order fewer units or split the order",
            )
            .into(),
            ServiceError::Money(MoneyError::MixedCurrencies) => {
                refused("MIXED_CURRENCIES", message)
            }
            ServiceError::OrderFailed => refused("ORDER_FAILED", message),
            ServiceError::Unreachable(_) | ServiceError::Abandoned => Status::unavailable(message),
            ServiceError::Store(error) => ApiError::internal(error).into(),
            ServiceError::Internal(error) => ApiError::internal(error).into(),
        }
    }
}

/// FAILED_PRECONDITION with its reason.
fn refused(reason: &'static str, message: String) -> Status {
    ApiError::FailedPrecondition { reason, message }.into()
}

/// FAILED_PRECONDITION `PRODUCT_UNAVAILABLE`, naming each of `ids` as a product for the same
/// reason `why`.
fn unavailable(message: String, ids: Vec<String>, why: &str) -> Status {
    let products: Vec<(String, String)> = ids.into_iter().map(|id| (id, why.to_owned())).collect();
    precondition("PRODUCT_UNAVAILABLE", message, "PRODUCT", &products)
}

/// FAILED_PRECONDITION with its reason and one `google.rpc.PreconditionFailure` violation per
/// product (kind, product id, why), so clients can point at the lines to fix.
fn precondition(
    reason: &'static str,
    message: String,
    kind: &str,
    products: &[(String, String)],
) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, []);
    for (product_id, description) in products {
        details.add_precondition_failure_violation(kind, product_id, description);
    }
    if let Some(request_id) = current_request_id() {
        details.set_request_info(request_id, "");
    }
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

#[cfg(test)]
mod tests;
