//! ListUsers' paging rules: page sizes, the email prefix filter, and page tokens.
//!
//! Pages are cut by keyset (the last profile's `(created_at, user_id)`), not by offset, so a user
//! who registers while an admin pages through the list lands before the first page and never
//! shifts or repeats the later ones. A token also carries the filter it was issued for, so that
//! reusing it with another filter is refused instead of silently skipping profiles.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

/// The page size when the request says 0.
const DEFAULT_PAGE_SIZE: i64 = 20;
/// The largest page; larger requests are capped to it.
const MAX_PAGE_SIZE: i64 = 100;
/// The version tag of the token format, so a future format can tell old tokens apart.
const TOKEN_VERSION: &str = "v1";

/// Why a page size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must not be negative")]
pub struct PageSizeError;

/// The number of profiles a page holds: 0 means 20, and more than 100 means 100.
///
/// # Errors
/// A negative size.
pub fn page_size(raw: i32) -> Result<i64, PageSizeError> {
    match i64::from(raw) {
        size if size < 0 => Err(PageSizeError),
        0 => Ok(DEFAULT_PAGE_SIZE),
        size => Ok(size.min(MAX_PAGE_SIZE)),
    }
}

/// Why an email prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailPrefixError {
    /// Longer than any email can be.
    #[error("must be at most 254 characters")]
    TooLong,
    /// Contains a control character, which no email does.
    #[error("must not contain control characters")]
    ControlCharacters,
}

/// The email prefix filter: trimmed and lower-cased, as emails are stored; empty means no filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailPrefix(String);

impl EmailPrefix {
    /// Normalises a prefix the way emails are normalised.
    ///
    /// # Errors
    /// Too long, or it contains a control character.
    pub fn parse(raw: &str) -> Result<Self, EmailPrefixError> {
        let prefix = raw.trim().to_lowercase();
        if prefix.chars().count() > 254 {
            return Err(EmailPrefixError::TooLong);
        }
        if prefix.chars().any(char::is_control) {
            return Err(EmailPrefixError::ControlCharacters);
        }
        Ok(Self(prefix))
    }

    /// The prefix (empty: no filter).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A `LIKE` pattern matching emails that start with the prefix, with `\` as the escape
    /// character, so `_` and `%` in the prefix match themselves.
    pub fn like_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.0.len() + 1);
        for c in self.0.chars() {
            if matches!(c, '\\' | '%' | '_') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        pattern
    }
}

/// Where a page ends: the last profile it held, in list order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// That profile's `created_at`.
    pub created_at: i64,
    /// That profile's id (the tie-breaker between accounts registered in the same microsecond).
    pub user_id: String,
}

/// Why a page token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageTokenError {
    /// Not a token this service issued.
    #[error("is malformed; pass back a next_page_token unchanged")]
    Malformed,
    /// Issued for another `email_prefix`.
    #[error("was issued for a different email_prefix; start again without a page_token")]
    OtherFilter,
}

/// A `next_page_token`: the cursor and the filter it was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    /// Where the next page starts (after this profile).
    pub cursor: Cursor,
    /// The filter of the listing.
    pub filter: EmailPrefix,
}

impl PageToken {
    /// The opaque text form: base64url of `v1|created_at|user_id|prefix`. The prefix comes last
    /// because it may itself contain `|`.
    pub fn encode(&self) -> String {
        let plain = format!(
            "{TOKEN_VERSION}|{}|{}|{}",
            self.cursor.created_at,
            self.cursor.user_id,
            self.filter.as_str()
        );
        URL_SAFE_NO_PAD.encode(plain)
    }

    /// Reads a token and checks it belongs to a listing with `filter`.
    ///
    /// # Errors
    /// The token is not one this service issued, or was issued for another filter.
    pub fn decode(raw: &str, filter: &EmailPrefix) -> Result<Cursor, PageTokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(raw.trim())
            .map_err(|_| PageTokenError::Malformed)?;
        let plain = String::from_utf8(bytes).map_err(|_| PageTokenError::Malformed)?;
        let mut parts = plain.splitn(4, '|');
        let (Some(TOKEN_VERSION), Some(created_at), Some(user_id), Some(prefix)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PageTokenError::Malformed);
        };
        let created_at = created_at
            .parse::<i64>()
            .map_err(|_| PageTokenError::Malformed)?;
        if uuid::Uuid::parse_str(user_id).is_err() {
            return Err(PageTokenError::Malformed);
        }
        if prefix != filter.as_str() {
            return Err(PageTokenError::OtherFilter);
        }
        Ok(Cursor {
            created_at,
            user_id: user_id.to_owned(),
        })
    }
}
