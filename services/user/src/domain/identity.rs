//! Who a profile belongs to: the user ids requests name, and the registrations that create
//! profiles.

/// Why a user id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    /// Empty (after trimming).
    #[error("is required")]
    Required,
    /// Not a UUID.
    #[error("must be a UUID")]
    NotUuid,
}

/// A user id as the store keeps it: a hyphenated lower-case UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    /// Trims a user id and checks it is a UUID, in any of its spellings.
    ///
    /// # Errors
    /// Empty, or not a UUID.
    pub fn parse(raw: &str) -> Result<Self, UserIdError> {
        let raw = raw.trim();
        match uuid::Uuid::parse_str(raw) {
            Ok(id) => Ok(Self(id.hyphenated().to_string())),
            Err(_) if raw.is_empty() => Err(UserIdError::Required),
            Err(_) => Err(UserIdError::NotUuid),
        }
    }

    /// The id, hyphenated and lower case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a registration event cannot become a profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The user id is not a UUID.
    #[error("user_id is not a UUID")]
    UserId,
    /// The email is empty.
    #[error("email is empty")]
    Email,
}

/// A registered account, as the profile it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The account's id, as a hyphenated lower-case UUID.
    pub user_id: String,
    /// The account's email, trimmed and lower-cased (auth sends it so; this keeps it so).
    pub email: String,
    /// When the account was registered, in microseconds since the epoch.
    pub registered_at: i64,
}

impl Registration {
    /// Checks what a `UserRegistered` event says.
    ///
    /// # Errors
    /// The user id is not a UUID, or the email is empty.
    pub fn parse(
        user_id: &str,
        email: &str,
        registered_at: i64,
    ) -> Result<Self, RegistrationError> {
        let user_id = uuid::Uuid::parse_str(user_id)
            .map_err(|_| RegistrationError::UserId)?
            .hyphenated()
            .to_string();
        let email = email.trim().to_lowercase();
        if email.is_empty() {
            return Err(RegistrationError::Email);
        }
        Ok(Self {
            user_id,
            email,
            registered_at,
        })
    }
}
