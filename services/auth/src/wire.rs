//! Between auth's domain and the wire: proto values as domain values and back, and every
//! [`ServiceError`] as the status the contract promises (codes, messages, reasons, details).

use std::time::Duration;

use agora_contracts::agora::auth::v1 as pb;
use agora_platform::{error::ApiError, time::timestamp};
use tonic::Status;

use crate::{
    domain::Role,
    error::ServiceError,
    store::{NewRefresh, SessionRow, StoreError},
    throttle::Throttled,
};

pub mod requests;

pub use requests::{
    ClientCredentials, Credentials, NewAccount, RefreshToken, RoleChange, SessionToRevoke,
};

/// A role from the wire; `None` for UNSPECIFIED and unknown values.
pub fn role(raw: i32) -> Option<Role> {
    match pb::Role::try_from(raw).ok()? {
        pb::Role::Admin => Some(Role::Admin),
        pb::Role::Unspecified => None,
    }
}

/// The wire value of a role.
pub fn role_value(role: Role) -> i32 {
    match role {
        Role::Admin => pb::Role::Admin as i32,
    }
}

/// The roles an account holds, as SetUserRoles answers them: each once, in order.
pub fn roles(mut roles: Vec<Role>) -> Vec<i32> {
    roles.sort();
    roles.dedup();
    roles.into_iter().map(role_value).collect()
}

/// An open session.
pub fn session(row: SessionRow) -> pb::Session {
    pb::Session {
        session_id: row.id,
        create_time: Some(timestamp(row.created_at)),
        last_refresh_time: Some(timestamp(row.last_refresh_at)),
        expire_time: Some(timestamp(row.expires_at)),
    }
}

/// The tokens of a sign-in or refresh: a signed access token expiring at `access_exp` (Unix
/// seconds) after `access_ttl`, and a refresh token with what the store keeps of it.
pub fn tokens(
    access: String,
    access_exp: i64,
    access_ttl: Duration,
    refresh: String,
    record: &NewRefresh,
) -> pb::Tokens {
    pb::Tokens {
        access_token: access,
        token_type: "Bearer".into(),
        access_token_expire_time: Some(timestamp(access_exp * 1_000_000)),
        expires_in: i64::try_from(access_ttl.as_secs()).unwrap_or(i64::MAX),
        refresh_token: refresh,
        refresh_token_expire_time: Some(timestamp(record.expires_at)),
    }
}

/// A service token expiring at `exp` (Unix seconds).
pub fn service_token(token: String, exp: i64) -> pb::IssueServiceTokenResponse {
    pb::IssueServiceTokenResponse {
        access_token: token,
        expire_time: Some(timestamp(exp * 1_000_000)),
    }
}

impl From<Throttled> for ApiError {
    fn from(throttled: Throttled) -> Self {
        let (reason, retry_after) = match throttled {
            Throttled::Logins { retry_after } => ("LOGIN_THROTTLED", retry_after),
            Throttled::Registrations { retry_after } => ("REGISTRATIONS_THROTTLED", retry_after),
        };
        ApiError::ResourceExhausted {
            reason,
            message: throttled.to_string(),
            retry_after,
        }
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        let message = error.to_string();
        let error = match error {
            ServiceError::Store(StoreError::EmailTaken) => ApiError::AlreadyExists {
                reason: "EMAIL_TAKEN",
                message: "an account with this email exists already".into(),
            },
            // Logged with their chain and answered INTERNAL with the request id only.
            ServiceError::Store(StoreError::Database(error)) => ApiError::internal(error),
            ServiceError::Hash(error) => ApiError::internal(error),
            ServiceError::Keys(error) => ApiError::internal(error),
            ServiceError::Throttled(throttled) => throttled.into(),
            // The same answer whether the email exists or not.
            ServiceError::WrongCredentials
            | ServiceError::UnknownClient
            | ServiceError::RefreshReused
            | ServiceError::RefreshInvalid => ApiError::Unauthenticated(message),
            ServiceError::NotFound { resource, id } => ApiError::NotFound { resource, id },
            ServiceError::KeysFromConfiguration => ApiError::FailedPrecondition {
                reason: "KEYS_FROM_CONFIGURATION",
                message,
            },
        };
        error.into()
    }
}

#[cfg(test)]
mod tests;
