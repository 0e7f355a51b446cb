//! Each request of the contract, parsed once into the domain values its handler works with.
//! Every field is checked and every violation collected, so one INVALID_ARGUMENT lists them all;
//! a value that comes out of these conversions is valid, and nothing downstream checks it again.

use std::{fmt::Display, time::Duration};

use agora_contracts::agora::inventory::v1 as pb;
use agora_platform::{batch, error::FieldViolations};

use crate::domain::{
    AdjustReason, Lines, MAX_BATCH, OrderId, PageToken, ProductId, adjustment_delta, note,
    page_size, reservation_ttl,
};
use crate::{error::ServiceError, wire};

/// Parses the one field of a request that has only one to check.
fn single<T, E: Display>(field: &str, result: Result<T, E>) -> Result<T, ServiceError> {
    let mut violations = FieldViolations::default();
    violations
        .take(field, result)
        .ok_or_else(|| violations.into())
}

impl TryFrom<pb::GetStockRequest> for ProductId {
    type Error = ServiceError;

    fn try_from(request: pb::GetStockRequest) -> Result<Self, Self::Error> {
        single("product_id", ProductId::parse(&request.product_id))
    }
}

impl TryFrom<pb::CommitReservationRequest> for OrderId {
    type Error = ServiceError;

    fn try_from(request: pb::CommitReservationRequest) -> Result<Self, Self::Error> {
        single("order_id", OrderId::parse(&request.order_id))
    }
}

/// The products of a BatchGetStock: 1 to [`MAX_BATCH`], each once, in the order first named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockBatch {
    /// The products, without repeats.
    pub product_ids: Vec<ProductId>,
}

impl TryFrom<pb::BatchGetStockRequest> for StockBatch {
    type Error = ServiceError;

    fn try_from(request: pb::BatchGetStockRequest) -> Result<Self, Self::Error> {
        // A repeated id is answered once, at its first position.
        let ids = batch::parse_ids("product", &request.product_ids, MAX_BATCH, ProductId::parse)?;
        Ok(Self {
            product_ids: ids.into_iter().map(|(id, _)| id).collect(),
        })
    }
}

/// An admin's change of a product's units on hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    /// The product.
    pub product_id: ProductId,
    /// Units added (positive) or taken away (negative); never zero.
    pub delta: i64,
    /// Why.
    pub reason: AdjustReason,
    /// Free text for the ledger, trimmed.
    pub note: String,
}

impl TryFrom<pb::AdjustStockRequest> for Adjustment {
    type Error = ServiceError;

    fn try_from(request: pb::AdjustStockRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let product_id = violations.take("product_id", ProductId::parse(&request.product_id));
        let delta = violations.take("delta", adjustment_delta(request.delta));
        let reason = wire::parse_adjustment_reason(request.reason);
        if reason.is_none() {
            violations.add(
                "reason",
                "must be one of RESTOCK, CORRECTION, DAMAGE, RETURN",
            );
        }
        let note = violations.take("note", note(&request.note));
        match (product_id, delta, reason, note) {
            (Some(product_id), Some(delta), Some(reason), Some(note)) if violations.is_empty() => {
                Ok(Self {
                    product_id,
                    delta,
                    reason,
                    note,
                })
            }
            _ => Err(violations.into()),
        }
    }
}

/// One page of a product's ledger to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementsQuery {
    /// The product.
    pub product_id: ProductId,
    /// Movements per page, within the platform's bounds.
    pub page_size: usize,
    /// Where the page starts; `None` for the newest movements.
    pub token: Option<PageToken>,
}

impl TryFrom<pb::ListMovementsRequest> for MovementsQuery {
    type Error = ServiceError;

    fn try_from(request: pb::ListMovementsRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let product_id = violations.take("product_id", ProductId::parse(&request.product_id));
        let page_size = violations.take("page_size", page_size(request.page_size));
        // A token is bound to its product, so it can only be read once the product id is known.
        let token = product_id.as_ref().and_then(|product_id| {
            violations.take(
                "page_token",
                PageToken::decode(product_id, &request.page_token),
            )
        });
        match (product_id, page_size, token) {
            (Some(product_id), Some(page_size), Some(token)) if violations.is_empty() => Ok(Self {
                product_id,
                page_size,
                token,
            }),
            _ => Err(violations.into()),
        }
    }
}

/// How long reservations may hold, from the service's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPolicy {
    /// The TTL of a reservation that asks for none.
    pub default: Duration,
    /// The longest TTL a reservation may ask for.
    pub max: Duration,
}

/// A reservation to make: all its lines or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReservation {
    /// The order, which keys the reservation.
    pub order_id: OrderId,
    /// What to hold, sorted by product id.
    pub lines: Lines,
    /// How long to hold it.
    pub ttl: Duration,
}

/// A Reserve request is read under the service's TTL policy, since the longest TTL allowed and
/// the TTL of a request that names none are settings.
impl TryFrom<(pb::ReserveRequest, TtlPolicy)> for NewReservation {
    type Error = ServiceError;

    fn try_from((request, policy): (pb::ReserveRequest, TtlPolicy)) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let order_id = violations.take("order_id", OrderId::parse(&request.order_id));
        let lines = match Lines::parse(
            request
                .lines
                .iter()
                .map(|line| (line.product_id.as_str(), line.quantity)),
        ) {
            Ok(lines) => Some(lines),
            Err(found) => {
                for (field, description) in found {
                    violations.add(field, description);
                }
                None
            }
        };
        let ttl = violations.take(
            "ttl",
            reservation_ttl(wire::requested_ttl(request.ttl), policy.default, policy.max),
        );
        match (order_id, lines, ttl) {
            (Some(order_id), Some(lines), Some(ttl)) if violations.is_empty() => Ok(Self {
                order_id,
                lines,
                ttl,
            }),
            _ => Err(violations.into()),
        }
    }
}

/// A reservation to give back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The order whose reservation it is.
    pub order_id: OrderId,
    /// Why, for the ledger, trimmed.
    pub reason: String,
    /// Whether a committed reservation's units come back on hand too (a cancelled order).
    pub return_committed: bool,
}

impl TryFrom<pb::ReleaseReservationRequest> for Release {
    type Error = ServiceError;

    fn try_from(request: pb::ReleaseReservationRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let order_id = violations.take("order_id", OrderId::parse(&request.order_id));
        let reason = violations.take("reason", note(&request.reason));
        match (order_id, reason) {
            (Some(order_id), Some(reason)) if violations.is_empty() => Ok(Self {
                order_id,
                reason,
                return_committed: request.return_committed,
            }),
            _ => Err(violations.into()),
        }
    }
}

#[cfg(test)]
mod tests;
