//! Every way a user service call fails, as one type. Handlers and request parsing return it,
//! and its single conversion to a `tonic::Status` (in [`crate::wire`]) decides what the client
//! sees, so no handler builds a status of its own.

use agora_platform::error::FieldViolations;

use crate::store::StoreError;

/// A failed user service call.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request breaks the contract: every field violation it has, answered together.
    #[error("the request has invalid fields: {0:?}")]
    InvalidArgument(FieldViolations),
    /// The signed-in caller has no profile, or not yet: right after registration the event that
    /// creates it may still be on its way, and the contract tells the client to retry.
    #[error("no profile for user {user_id}")]
    NoProfile {
        /// The caller's id, from the token.
        user_id: String,
    },
    /// An administrator asked for a user who has no profile.
    #[error("no user {user_id}")]
    NoUser {
        /// The id asked for, normalised.
        user_id: String,
    },
    /// The store failed; the chain is logged, never sent.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<FieldViolations> for ServiceError {
    fn from(violations: FieldViolations) -> Self {
        Self::InvalidArgument(violations)
    }
}
