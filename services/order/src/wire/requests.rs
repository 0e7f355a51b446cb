//! The requests whose checks are plumbing (ids, filters, page and resume tokens), each parsed
//! once into the value its handler works with. CreateOrder, which carries the order's rules, is
//! parsed in [`crate::domain`].

use agora_contracts::agora::order::v1 as pb;
use agora_platform::{access::Principal, error::FieldViolations, paging};

use super::parse_resume_token;
use crate::{
    domain::{self, OrderId, Status as OrderStatus},
    error::ServiceError,
    store::{Cursor, OrderRow},
};

/// Why a page token is refused: the same words for every way it can be wrong.
const TOKEN_REFUSED: &str = "is malformed or was issued for other filters";

impl TryFrom<pb::GetOrderRequest> for OrderId {
    type Error = ServiceError;

    /// The id of the order to read.
    fn try_from(request: pb::GetOrderRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let id = violations.take("order_id", OrderId::parse(&request.order_id));
        id.ok_or_else(|| violations.into())
    }
}

/// A CancelOrder request: which order, and why (possibly empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelOrder {
    /// The order to cancel.
    pub id: OrderId,
    /// The caller's reason, at most [`domain::MAX_REASON_LEN`] characters.
    pub reason: String,
}

impl TryFrom<pb::CancelOrderRequest> for CancelOrder {
    type Error = ServiceError;

    /// Parses a CancelOrder request, collecting every violation.
    fn try_from(request: pb::CancelOrderRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let reason = violations.take("reason", domain::parse_reason(&request.reason));
        let id = violations.take("order_id", OrderId::parse(&request.order_id));
        let (Some(id), Some(reason)) = (id, reason) else {
            return Err(violations.into());
        };
        Ok(Self { id, reason })
    }
}

/// A WatchOrder request: which order, and the newest state the client already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOrder {
    /// The order to watch.
    pub id: OrderId,
    /// The version named by the resume token; 0 when the client has seen nothing.
    pub seen: i64,
}

impl TryFrom<pb::WatchOrderRequest> for WatchOrder {
    type Error = ServiceError;

    /// Parses a WatchOrder request, collecting every violation.
    fn try_from(request: pb::WatchOrderRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let id = violations.take("order_id", OrderId::parse(&request.order_id));
        let seen = match request.resume_token.as_str() {
            "" => Some(0),
            token => {
                let seen = parse_resume_token(token);
                if seen.is_none() {
                    violations.add("resume_token", "is not a token this service issued");
                }
                seen
            }
        };
        let (Some(id), Some(seen)) = (id, seen) else {
            return Err(violations.into());
        };
        Ok(Self { id, seen })
    }
}

/// A ListOrders request as one caller may make it: whose orders, in which status, from where,
/// how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOrders {
    /// Whose orders: one user's, or everyone's (`None`, admins only).
    pub user: Option<String>,
    /// Only orders in this status, or in any (`None`).
    pub status: Option<OrderStatus>,
    /// Where the page starts: after this order, or at the newest (`None`).
    pub after: Option<Cursor>,
    /// How many orders the page holds at most.
    pub size: usize,
}

impl TryFrom<(&Principal, pb::ListOrdersRequest)> for ListOrders {
    type Error = ServiceError;

    /// Parses the ListOrders request of a caller: an empty `user_id` is the caller, `-` is
    /// everyone; the page token must have been issued for the same filters. Collects every
    /// violation; then refuses a caller who is not an admin the orders of others.
    fn try_from(
        (caller, request): (&Principal, pb::ListOrdersRequest),
    ) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let size = violations.take("page_size", paging::page_size(request.page_size));
        // `None`: not a valid filter. A token is then checked as if for everyone's orders.
        let user: Option<Option<String>> = match request.user_id.as_str() {
            "" => Some(Some(caller.subject.clone())),
            "-" => Some(None),
            other => match uuid::Uuid::parse_str(other) {
                Ok(id) => Some(Some(id.to_string())),
                Err(_) => {
                    violations.add("user_id", "must be a user id, \"-\" or empty");
                    None
                }
            },
        };
        let status = match pb::OrderStatus::try_from(request.status) {
            Ok(status) => Some(super::status_filter(status)),
            Err(_) => {
                violations.add("status", "unknown status");
                None
            }
        };
        // A token is bound to the status filter, so it cannot be judged without one.
        let after = status.and_then(|status| {
            let user = user.clone().flatten();
            parse_token(&request.page_token, user.as_deref(), status)
                .map_err(|problem| violations.add("page_token", problem))
                .ok()
        });
        let (Some(size), Some(user), Some(status), Some(after)) = (size, user, status, after)
        else {
            return Err(violations.into());
        };
        if user.as_deref() != Some(caller.subject.as_str()) && !caller.is_admin() {
            return Err(ServiceError::OthersOrders);
        }
        Ok(Self {
            user,
            status,
            after,
            size,
        })
    }
}

impl ListOrders {
    /// How many rows to read: one more than the page tells whether another page follows.
    pub fn rows_to_read(&self) -> usize {
        self.size + 1
    }

    /// The answer for the rows read (at most [`ListOrders::rows_to_read`]): the page, and the
    /// token of the next one when more rows were found.
    pub fn answer(&self, mut rows: Vec<OrderRow>) -> pb::ListOrdersResponse {
        let more = rows.len() > self.size;
        rows.truncate(self.size);
        let next_page_token = match rows.last() {
            Some(last) if more => page_token(last, self.user.as_deref(), self.status),
            _ => String::new(),
        };
        pb::ListOrdersResponse {
            orders: rows.iter().map(pb::Order::from).collect(),
            next_page_token,
        }
    }
}

/// Reads a ListOrders page token, bound to the listing's user and status filters: `None` for
/// the first page.
fn parse_token(
    token: &str,
    user: Option<&str>,
    status: Option<OrderStatus>,
) -> Result<Option<Cursor>, &'static str> {
    let cursor: Option<Cursor> =
        paging::decode_token(token, &(user, status.map(OrderStatus::as_str)))
            .map_err(|_| TOKEN_REFUSED)?;
    match cursor {
        Some((created, id)) => {
            let id = OrderId::parse(&id).map_err(|_| TOKEN_REFUSED)?;
            Ok(Some((created, id.to_string())))
        }
        None => Ok(None),
    }
}

/// The token of the page after `last`, bound like [`parse_token`] reads it.
fn page_token(last: &OrderRow, user: Option<&str>, status: Option<OrderStatus>) -> String {
    paging::encode_token(
        &(last.created_at, &last.id),
        &(user, status.map(OrderStatus::as_str)),
    )
}

#[cfg(test)]
mod tests;
