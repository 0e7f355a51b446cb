//! The order service's one error type: every way a call can fail, in the service's own terms.
//! [`crate::wire`] turns each into the status the contract promises (codes, reasons, details),
//! in one place, so a handler only writes `?`.

use agora_platform::error::{ApiError, FieldViolations};

use crate::{domain::money::MoneyError, store::StoreError};

/// Why an order call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request has fields that are wrong; every one found is listed.
    #[error("the request has invalid fields")]
    InvalidRequest(FieldViolations),
    /// No order with this id that the caller may see (not theirs reads the same, so ids
    /// cannot be probed).
    #[error("order {0} not found")]
    NotFound(String),
    /// A caller who is not an admin asked for the orders of another user.
    #[error("only admins may list the orders of other users")]
    OthersOrders,
    /// The caps on open watches refused one more (built by [`crate::watch::Slots`]).
    #[error(transparent)]
    WatchCap(ApiError),
    /// Another call with the same idempotency key is still running.
    #[error("a call with this idempotency key is still in progress; retry shortly")]
    KeyInProgress,
    /// The idempotency key was used for a request with different contents.
    #[error("this idempotency key was already used for a different request")]
    KeyReused,
    /// Products that are unknown to the product service or archived, by id.
    #[error("unknown or archived products: {}", .0.join(", "))]
    ProductsUnavailable(Vec<String>),
    /// Inventory has too little stock: (product id, what it said) for each short line.
    #[error("not enough stock for the order")]
    OutOfStock(Vec<(String, String)>),
    /// Inventory has no stock record for a product (its id, when inventory named it).
    #[error("a product cannot be ordered")]
    NoStockRecord(Vec<String>),
    /// The order's money cannot be computed.
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// A FAILED order cannot be cancelled.
    #[error("the order failed; there is nothing to cancel")]
    OrderFailed,
    /// An upstream (named) could not be reached; nothing was stored.
    #[error("the {0} service cannot be reached; nothing was stored, retry with the same key")]
    Unreachable(&'static str),
    /// A saga was abandoned after its reservation, as a crash would (a test hook).
    #[error("the saga was abandoned after its reservation")]
    Abandoned,
    /// The database failed or holds a row that breaks the rules.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or an unexpected answer; logged with its chain, never sent.
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<FieldViolations> for ServiceError {
    fn from(violations: FieldViolations) -> Self {
        Self::InvalidRequest(violations)
    }
}

impl ServiceError {
    /// An internal error from a message, for states the code rules out.
    pub fn internal(message: &'static str) -> Self {
        Self::Internal(anyhow::Error::msg(message))
    }
}
