//! The one error type of auth's handlers: every way a call fails once its request has parsed.
//! `crate::wire` turns each into the status the contract promises.

use crate::{hashing::HashError, store::StoreError, throttle::Throttled};

/// A failure of an auth call after its request parsed (field violations are answered by the
/// request's `TryFrom`, before anything runs).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store refused (a taken email) or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A password could not be hashed or verified.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// A token could not be signed or the keys could not be rotated.
    #[error("the signing keys failed")]
    Keys(#[source] anyhow::Error),
    /// Too many failed sign-ins or registrations: retry later.
    #[error(transparent)]
    Throttled(#[from] Throttled),
    /// No account has this email, or its password is another; the same answer for both.
    #[error("wrong email or password")]
    WrongCredentials,
    /// No service client has this id, or its secret is another.
    #[error("unknown client or wrong secret")]
    UnknownClient,
    /// A refresh token was presented a second time; its session is now revoked.
    #[error("this refresh token was already used; the session has been revoked")]
    RefreshReused,
    /// A refresh token that is unknown, expired, or of a revoked session.
    #[error("invalid or expired refresh token")]
    RefreshInvalid,
    /// The named resource does not exist (or is not the caller's).
    #[error("{resource} not found")]
    NotFound {
        /// The resource type: `user` or `session`.
        resource: &'static str,
        /// Its id as the caller gave it.
        id: String,
    },
    /// The signing key comes from configuration, so it cannot be rotated here.
    #[error("the signing key comes from configuration; rotate it there")]
    KeysFromConfiguration,
}
