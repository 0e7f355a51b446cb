//! Auth's rules, without I/O: what an email, a password and a role are. Requests are parsed into
//! these types at the boundary (each method's request into its value in
//! [`crate::wire::requests`]), so the rest of the service never sees unchecked input.

use std::fmt;

/// A normalised email address: trimmed, lower-cased, plausibly deliverable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

/// Why an email was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Empty after trimming.
    #[error("is required")]
    Empty,
    /// Longer than RFC 5321 allows.
    #[error("must be at most 254 characters")]
    TooLong,
    /// Not `local@domain.tld`.
    #[error("is not an email address")]
    Malformed,
}

impl Email {
    /// Normalises and checks an email address.
    ///
    /// # Errors
    /// The address is empty, too long or malformed.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(EmailError::Empty);
        }
        if email.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = email.split_once('@').ok_or(EmailError::Malformed)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(email))
        } else {
            Err(EmailError::Malformed)
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The most characters a password may have, on every method that takes one: argon2 would hash
/// megabytes (a hash's cost grows with its input), but nobody types more than this.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Whether `raw` has more than [`MAX_PASSWORD_CHARS`] characters, without counting past what
/// decides it: a string of more bytes than that many characters can take is too long at once.
fn too_long(raw: &str) -> bool {
    raw.len() > MAX_PASSWORD_CHARS * char::MAX.len_utf8()
        || raw.chars().count() > MAX_PASSWORD_CHARS
}

/// A password that meets the policy. It is never logged or printed.
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Fewer than 8 characters.
    #[error("must be at least 8 characters")]
    TooShort,
    /// Empty, where a password is presented to sign in.
    #[error("is required")]
    Missing,
    /// More than [`MAX_PASSWORD_CHARS`] characters.
    #[error("must be at most 128 characters")]
    TooLong,
    /// Letters only, or digits only.
    #[error("must mix letters with digits or symbols")]
    TooSimple,
    /// The email address itself.
    #[error("must not be the email address")]
    IsEmail,
}

impl Password {
    /// Checks a new password against the policy.
    ///
    /// # Errors
    /// The password breaks a rule of the policy.
    pub fn parse(raw: &str, email: Option<&Email>) -> Result<Self, PasswordError> {
        if too_long(raw) {
            return Err(PasswordError::TooLong);
        }
        if raw.chars().count() < 8 {
            return Err(PasswordError::TooShort);
        }
        if raw.chars().all(char::is_alphabetic) || raw.chars().all(|c| c.is_ascii_digit()) {
            return Err(PasswordError::TooSimple);
        }
        if email.is_some_and(|email| raw.trim().to_lowercase() == email.as_str()) {
            return Err(PasswordError::IsEmail);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A password presented to sign in. It is not held to the policy (an account keeps signing in
/// with the password it was made with if the rules change), only bounded like every password,
/// so that no request makes the service hash more than [`MAX_PASSWORD_CHARS`] characters.
pub struct PresentedPassword(String);

impl fmt::Debug for PresentedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresentedPassword(..)")
    }
}

impl PresentedPassword {
    /// Takes a password presented to sign in.
    ///
    /// # Errors
    /// The password is empty or longer than [`MAX_PASSWORD_CHARS`].
    pub fn parse(raw: String) -> Result<Self, PasswordError> {
        if raw.is_empty() {
            return Err(PasswordError::Missing);
        }
        if too_long(&raw) {
            return Err(PasswordError::TooLong);
        }
        Ok(Self(raw))
    }

    /// The password, for verifying.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A role an account may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Administrator.
    Admin,
}

impl Role {
    /// The name carried in tokens and stored.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => agora_platform::access::ROLE_ADMIN,
        }
    }

    /// Reads a stored role name; unknown names are ignored by callers.
    pub fn from_name(name: &str) -> Option<Self> {
        (name == agora_platform::access::ROLE_ADMIN).then_some(Role::Admin)
    }
}

/// Roles as stored: comma-separated names.
pub fn roles_to_column(roles: &[Role]) -> String {
    let mut names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

/// Roles from their stored form.
pub fn roles_from_column(column: &str) -> Vec<Role> {
    column.split(',').filter_map(Role::from_name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        let email = Email::parse("  Ada.Lovelace@Example.COM ").expect("valid");
        assert_eq!(email.as_str(), "ada.lovelace@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for raw in [
            "plain",
            "@example.com",
            "ada@",
            "ada@localhost",
            "ada@exa mple.com",
            "ada..l@example.com",
            "ada@-example.com",
            "a@b@example.com",
        ] {
            assert_eq!(Email::parse(raw), Err(EmailError::Malformed), "{raw}");
        }
        assert_eq!(Email::parse("   "), Err(EmailError::Empty));
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
    }

    #[test]
    fn the_password_policy_names_the_rule_that_failed() {
        let email = Email::parse("ada@example.com").expect("valid");
        let check = |raw: &str| Password::parse(raw, Some(&email)).err();
        assert_eq!(check("short1!"), Some(PasswordError::TooShort));
        assert_eq!(check(&"x1".repeat(65)), Some(PasswordError::TooLong));
        assert_eq!(check("onlyletters"), Some(PasswordError::TooSimple));
        assert_eq!(check("1234567890"), Some(PasswordError::TooSimple));
        assert_eq!(check("ADA@example.com"), Some(PasswordError::IsEmail));
        assert_eq!(check("correct horse 7"), None);
        assert_eq!(check("pässwörd-ß1"), None, "non-ASCII counts by character");
    }

    #[test]
    fn a_presented_password_is_bounded_like_a_new_one_but_not_held_to_the_policy() {
        let check = |raw: &str| PresentedPassword::parse(raw.to_owned()).err();
        assert_eq!(check(""), Some(PasswordError::Missing));
        assert_eq!(
            check("short"),
            None,
            "an old password signs in as it was made"
        );
        assert_eq!(check(&"x".repeat(MAX_PASSWORD_CHARS)), None);
        assert_eq!(
            check(&"x".repeat(MAX_PASSWORD_CHARS + 1)),
            Some(PasswordError::TooLong)
        );
        assert_eq!(
            check(&"ß".repeat(MAX_PASSWORD_CHARS)),
            None,
            "the bound counts characters, not bytes"
        );
        let megabytes = "x1".repeat(2 * 1024 * 1024);
        assert_eq!(check(&megabytes), Some(PasswordError::TooLong));
        assert_eq!(
            Password::parse(&megabytes, None).err(),
            Some(PasswordError::TooLong),
            "a new password has the same bound"
        );
    }

    #[test]
    fn roles_round_trip_through_their_column() {
        assert_eq!(roles_to_column(&[Role::Admin, Role::Admin]), "admin");
        assert_eq!(roles_from_column("admin"), vec![Role::Admin]);
        assert_eq!(roles_from_column(""), Vec::<Role>::new());
        assert_eq!(roles_from_column("admin,unknown"), vec![Role::Admin]);
    }
}
