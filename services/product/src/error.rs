//! The one way the product service fails. Parsing, the store and the service's own refusals all
//! answer with a [`ServiceError`]; [`crate::wire`] turns it into the gRPC status the contract
//! promises.

use agora_platform::error::FieldViolations;

/// Why a product call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed: every field violation, reported at once.
    #[error("invalid request")]
    InvalidArgument(FieldViolations),
    /// Another product has this SKU.
    #[error("another product has this sku")]
    SkuTaken,
    /// No product has this id.
    #[error("product {0} not found")]
    NotFound(String),
    /// The product is archived and cannot change.
    #[error("product {0} is archived and cannot change")]
    Archived(String),
    /// Archived products were asked for by someone who is not an administrator.
    #[error("only administrators may list archived products")]
    ArchivedListingForbidden,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<FieldViolations> for ServiceError {
    fn from(violations: FieldViolations) -> Self {
        Self::InvalidArgument(violations)
    }
}
