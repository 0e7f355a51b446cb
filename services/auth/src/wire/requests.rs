//! The requests of auth's methods as domain values. Each is parsed once, at the boundary, and
//! every field violation is collected, so one INVALID_ARGUMENT lists every problem; past its
//! `TryFrom`, a handler holds only checked values.

use std::fmt;

use agora_contracts::agora::auth::v1 as pb;
use agora_platform::error::{ApiError, FieldViolations};
use secrecy::{ExposeSecret, SecretString};

use crate::domain::{Email, Password, PresentedPassword, Role};
use crate::wire;

/// An account's email and a password, as a Register or a Login request names them.
#[derive(Debug)]
pub struct Account<P> {
    /// The normalised email.
    pub email: Email,
    /// The password: held to the policy and checked against the email for a new account, only
    /// bounded when presented.
    pub password: P,
}

/// A Register request: a new account's email and a password that meets the policy.
pub type NewAccount = Account<Password>;

/// A Login request: an email and a presented password, bounded but not held to the policy.
pub type Credentials = Account<PresentedPassword>;

impl TryFrom<pb::RegisterRequest> for NewAccount {
    type Error = ApiError;

    fn try_from(request: pb::RegisterRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let email = violations.take("email", Email::parse(&request.email));
        let password = violations.take(
            "password",
            Password::parse(&request.password, email.as_ref()),
        );
        let (Some(email), Some(password)) = (email, password) else {
            return Err(violations.into_error());
        };
        Ok(Self { email, password })
    }
}

impl TryFrom<pb::LoginRequest> for Credentials {
    type Error = ApiError;

    fn try_from(request: pb::LoginRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        // Bounded before anything else: no lookup, no throttle count, no hash of megabytes.
        let password = violations.take("password", PresentedPassword::parse(request.password));
        let email = violations.take("email", Email::parse(&request.email));
        let (Some(email), Some(password)) = (email, password) else {
            return Err(violations.into_error());
        };
        Ok(Self { email, password })
    }
}

/// A refresh token presented to Refresh or Logout. It is never logged or printed.
pub struct RefreshToken(String);

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(..)")
    }
}

impl RefreshToken {
    /// A non-empty token, or the violation of `refresh_token`.
    fn parse(raw: String) -> Result<Self, ApiError> {
        if raw.is_empty() {
            return Err(ApiError::invalid_field("refresh_token", "is required"));
        }
        Ok(Self(raw))
    }

    /// The token, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<pb::RefreshRequest> for RefreshToken {
    type Error = ApiError;

    fn try_from(request: pb::RefreshRequest) -> Result<Self, Self::Error> {
        Self::parse(request.refresh_token)
    }
}

impl TryFrom<pb::LogoutRequest> for RefreshToken {
    type Error = ApiError;

    fn try_from(request: pb::LogoutRequest) -> Result<Self, Self::Error> {
        Self::parse(request.refresh_token)
    }
}

/// An IssueServiceToken request: a client id and its secret, both present. The secret is
/// never printed.
#[derive(Debug)]
pub struct ClientCredentials {
    /// The client's id, as configured in `auth.service_clients`.
    pub client_id: String,
    /// The secret presented.
    client_secret: SecretString,
}

impl ClientCredentials {
    /// The secret presented, for comparing with the configured one.
    pub fn secret(&self) -> &str {
        self.client_secret.expose_secret()
    }
}

impl TryFrom<pb::IssueServiceTokenRequest> for ClientCredentials {
    type Error = ApiError;

    fn try_from(request: pb::IssueServiceTokenRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        if request.client_id.is_empty() {
            violations.add("client_id", "is required");
        }
        if request.client_secret.is_empty() {
            violations.add("client_secret", "is required");
        }
        violations.finish()?;
        Ok(Self {
            client_id: request.client_id,
            client_secret: request.client_secret.into(),
        })
    }
}

/// A SetUserRoles request: whose roles, and the known roles they become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChange {
    /// The account, as a canonical UUID.
    pub user_id: String,
    /// Its roles from now on, as asked (repeats included).
    pub roles: Vec<Role>,
}

impl TryFrom<pb::SetUserRolesRequest> for RoleChange {
    type Error = ApiError;

    fn try_from(request: pb::SetUserRolesRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let user_id = uuid("user_id", &request.user_id, &mut violations);
        let mut roles = Vec::new();
        for (i, role) in request.roles.iter().enumerate() {
            match wire::role(*role) {
                Some(role) => roles.push(role),
                None => violations.add(format!("roles[{i}]"), "must be a known role"),
            }
        }
        match user_id {
            Some(user_id) if violations.is_empty() => Ok(Self { user_id, roles }),
            _ => Err(violations.into_error()),
        }
    }
}

/// A RevokeSession request: the id of one of the caller's sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToRevoke {
    /// The session, as a canonical UUID.
    pub session_id: String,
}

impl TryFrom<pb::RevokeSessionRequest> for SessionToRevoke {
    type Error = ApiError;

    fn try_from(request: pb::RevokeSessionRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let Some(session_id) = uuid("session_id", &request.session_id, &mut violations) else {
            return Err(violations.into_error());
        };
        Ok(Self { session_id })
    }
}

/// The id in `raw` in its canonical form, or a violation of `field`.
fn uuid(field: &str, raw: &str, violations: &mut FieldViolations) -> Option<String> {
    match uuid::Uuid::parse_str(raw) {
        Ok(id) => Some(id.hyphenated().to_string()),
        Err(_) => {
            violations.add(field, "must be a UUID");
            None
        }
    }
}

#[cfg(test)]
mod tests;
