//! The one error type of inventory's handlers. Each failure a caller can see is a variant here;
//! `wire` turns every one into its gRPC status in one place.

use agora_platform::error::FieldViolations;

use crate::{domain::ProductId, store::StoreError};

/// Why a call of the inventory service failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request broke one or more field rules; every broken rule is listed, so a caller fixes
    /// its request in one round trip.
    #[error("invalid request")]
    InvalidRequest(FieldViolations),
    /// The product has no stock record (yet: records are opened from product events).
    #[error("no stock record for product {0}")]
    NoStock(ProductId),
    /// The store refused the change or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<FieldViolations> for ServiceError {
    fn from(violations: FieldViolations) -> Self {
        Self::InvalidRequest(violations)
    }
}
