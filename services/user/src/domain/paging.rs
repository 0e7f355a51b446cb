//! ListUsers' paging rules: the email prefix filter, the page token's cursor, and how a listing
//! is cut into pages (page sizes and the token format are the platform's,
//! [`agora_platform::paging`]).
//!
//! Pages are cut by keyset (the last profile's `(created_at, user_id)`), not by offset, so a user
//! who registers while an admin pages through the list lands before the first page and never
//! shifts or repeats the later ones. A token also carries the filter it was issued for, so that
//! reusing it with another filter is refused instead of silently skipping profiles.

use agora_platform::paging::{self, PageTokenError as TokenError};

use super::Profile;

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
    /// The opaque text form, in the platform's format: the cursor as `(created_at, user_id)`,
    /// bound to the prefix.
    pub fn encode(&self) -> String {
        paging::encode_token(
            &(self.cursor.created_at, &self.cursor.user_id),
            self.filter.as_str(),
        )
    }

    /// Reads a token and checks it belongs to a listing with `filter`.
    ///
    /// # Errors
    /// The token is not one this service issued, or was issued for another filter.
    pub fn decode(raw: &str, filter: &EmailPrefix) -> Result<Cursor, PageTokenError> {
        let (created_at, user_id): (i64, String) =
            paging::decode_token(raw.trim(), filter.as_str())
                .map_err(|error| match error {
                    TokenError::Malformed => PageTokenError::Malformed,
                    TokenError::OtherFilter => PageTokenError::OtherFilter,
                })?
                // The handler reads an empty token as the first page and never passes one here.
                .ok_or(PageTokenError::Malformed)?;
        if uuid::Uuid::parse_str(&user_id).is_err() {
            return Err(PageTokenError::Malformed);
        }
        Ok(Cursor {
            created_at,
            user_id,
        })
    }
}

/// What one ListUsers call asks for, checked: how many profiles, which ones, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The page size (defaulted and capped by the platform's rule).
    pub size: usize,
    /// The email prefix filter.
    pub filter: EmailPrefix,
    /// The last profile of the previous page; `None` for the first page.
    pub after: Option<Cursor>,
}

/// One page of a listing, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The profiles, newest account first.
    pub profiles: Vec<Profile>,
    /// The token of the next page; `None` when this page is the last.
    pub next: Option<PageToken>,
}

impl Listing {
    /// How many profiles to read: one more than the page holds tells whether a next page exists
    /// without a second query.
    pub fn fetch_limit(&self) -> usize {
        self.size + 1
    }

    /// Cuts what the store read (at most [`Self::fetch_limit`] profiles) into this page and
    /// the token of the next one.
    pub fn page(self, mut profiles: Vec<Profile>) -> Page {
        let more = profiles.len() > self.size;
        profiles.truncate(self.size);
        let next = match profiles.last() {
            Some(last) if more => Some(PageToken {
                cursor: Cursor {
                    created_at: last.created_at,
                    user_id: last.user_id.clone(),
                },
                filter: self.filter,
            }),
            _ => None,
        };
        Page { profiles, next }
    }
}
