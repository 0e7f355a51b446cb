//! Paging of List calls, the same in every service: one page-size rule and one page-token
//! format.
//!
//! Pages are cut by keyset: a token carries the sort key and id of the last item returned (the
//! service's own cursor type), never an offset, so a page does not shift when items are added
//! before it. A token is also bound to the filter (and order) it was issued for: replayed under
//! another filter it is refused, instead of silently skipping or repeating items.
//!
//! # The token format
//! `base64url(version ‖ fingerprint ‖ cursor)`, without padding: one version byte
//! ([`TOKEN_VERSION`]), the 64-bit FNV-1a hash of the filter's JSON (big-endian), then the
//! cursor's JSON. Clients treat it as opaque; the version lets a later format tell old tokens
//! apart. Tokens carry no signature: a forged one can only move the start of a listing the
//! caller may read anyway.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::ApiError;

/// Items per page when the request says 0.
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// The most items per page; larger requests are capped to it.
pub const MAX_PAGE_SIZE: usize = 100;
/// The version byte that starts every token of this format.
pub const TOKEN_VERSION: u8 = 1;
/// The longest token read, in characters: a cursor is a few keys, so anything longer is not one
/// of ours, and is refused before it is decoded.
const MAX_TOKEN_LEN: usize = 4096;

/// Why a page size was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must not be negative")]
pub struct NegativePageSize;

impl From<NegativePageSize> for ApiError {
    fn from(error: NegativePageSize) -> Self {
        ApiError::invalid_field("page_size", error.to_string())
    }
}

/// The number of items a page holds: 0 means [`DEFAULT_PAGE_SIZE`], more than
/// [`MAX_PAGE_SIZE`] means [`MAX_PAGE_SIZE`].
///
/// # Errors
/// A negative size (an INVALID_ARGUMENT on `page_size` once converted into an [`ApiError`]).
pub fn page_size(raw: i32) -> Result<usize, NegativePageSize> {
    match usize::try_from(raw) {
        Err(_) => Err(NegativePageSize),
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(size) => Ok(size.min(MAX_PAGE_SIZE)),
    }
}

/// Why a page token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageTokenError {
    /// Not a token of this format, or not one holding this listing's cursor.
    #[error("is malformed; pass back a next_page_token unchanged")]
    Malformed,
    /// A token issued for another filter.
    #[error("was issued for other filters; start again without a page_token")]
    OtherFilter,
}

impl From<PageTokenError> for ApiError {
    fn from(error: PageTokenError) -> Self {
        ApiError::invalid_field("page_token", error.to_string())
    }
}

/// The token of the page after `cursor` in a listing with `filter`.
///
/// `cursor` is the service's keyset position (a tuple or a struct of plain fields); `filter` is
/// whatever makes two listings different (filters, order, the parent resource), in a form that
/// serializes the same way each time (no hash maps).
pub fn encode_token<C, F>(cursor: &C, filter: &F) -> String
where
    C: Serialize + ?Sized,
    F: Serialize + ?Sized,
{
    let cursor = json(cursor);
    let mut bytes = Vec::with_capacity(9 + cursor.len());
    bytes.push(TOKEN_VERSION);
    bytes.extend_from_slice(&fingerprint(filter).to_be_bytes());
    bytes.extend_from_slice(&cursor);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Reads a token of a listing with `filter`: `None` for an empty token (the first page), else
/// the cursor it carries.
///
/// # Errors
/// [`PageTokenError::Malformed`] for anything [`encode_token`] did not make with a `C`;
/// [`PageTokenError::OtherFilter`] for a token issued for another filter.
pub fn decode_token<C, F>(token: &str, filter: &F) -> Result<Option<C>, PageTokenError>
where
    C: DeserializeOwned,
    F: Serialize + ?Sized,
{
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(PageTokenError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| PageTokenError::Malformed)?;
    let [TOKEN_VERSION, rest @ ..] = bytes.as_slice() else {
        return Err(PageTokenError::Malformed);
    };
    let (Some(issued_for), Some(cursor)) = (rest.get(..8), rest.get(8..)) else {
        return Err(PageTokenError::Malformed);
    };
    // The cursor is read first, so garbage that happens to start with the version byte is
    // malformed rather than "of another filter".
    let cursor = serde_json::from_slice(cursor).map_err(|_| PageTokenError::Malformed)?;
    if issued_for != fingerprint(filter).to_be_bytes() {
        return Err(PageTokenError::OtherFilter);
    }
    Ok(Some(cursor))
}

/// `value` as JSON. Serializing plain data to JSON cannot fail (serde_json fails only on maps
/// with non-string keys or a `Serialize` impl that errs); if a service ever passes such a value,
/// its tokens come out unreadable (the next page is refused as malformed) rather than the
/// handler panicking.
fn json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|error| {
        tracing::error!(%error, "a page cursor or filter does not serialize");
        Vec::new()
    })
}

/// A stable 64-bit FNV-1a hash of the filter's JSON. FNV rather than std's hasher, whose output
/// may change between Rust releases: a token must survive a redeploy.
fn fingerprint<F: Serialize + ?Sized>(filter: &F) -> u64 {
    json(filter)
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash: u64, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Cursor = (i64, String);

    fn cursor() -> Cursor {
        (
            1_700_000_000_000_000,
            "0190a4b2-7c3d-7e8f-9a0b-1c2d3e4f5a6b".into(),
        )
    }

    #[test]
    fn page_sizes_default_to_20_and_are_capped_at_100() {
        assert_eq!(page_size(0), Ok(20));
        assert_eq!(page_size(1), Ok(1));
        assert_eq!(page_size(100), Ok(100));
        assert_eq!(page_size(1000), Ok(100));
    }

    #[test]
    fn a_negative_page_size_is_an_invalid_page_size_field() {
        assert_eq!(page_size(-1), Err(NegativePageSize));
        let status = tonic::Status::from(ApiError::from(NegativePageSize));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "invalid page_size: must not be negative");
    }

    #[test]
    fn a_token_gives_back_its_cursor_under_its_own_filter() {
        let filter = ("kitchen", Some(5), "price-asc");
        let token = encode_token(&cursor(), &filter);
        assert_eq!(decode_token(&token, &filter), Ok(Some(cursor())));
    }

    #[test]
    fn an_empty_token_means_the_first_page() {
        assert_eq!(decode_token::<Cursor, _>("", "any filter"), Ok(None));
    }

    #[test]
    fn a_token_minted_for_one_filter_is_refused_under_another() {
        let token = encode_token(&cursor(), &("ada", Some("PENDING")));
        for other in [
            ("ada", None),
            ("bob", Some("PENDING")),
            ("", Some("PENDING")),
        ] {
            assert_eq!(
                decode_token::<Cursor, _>(&token, &other),
                Err(PageTokenError::OtherFilter),
                "{other:?}"
            );
        }
        let status = tonic::Status::from(ApiError::from(PageTokenError::OtherFilter));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().starts_with("invalid page_token"),
            "{status:?}"
        );
    }

    #[test]
    fn tokens_are_url_safe_text_without_the_filter_in_clear() {
        let token = encode_token(&cursor(), "secret-prefix");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{token}"
        );
        let bytes = URL_SAFE_NO_PAD.decode(&token).expect("base64url");
        assert_eq!(bytes.first(), Some(&TOKEN_VERSION));
        assert!(!String::from_utf8_lossy(&bytes).contains("secret-prefix"));
    }

    #[test]
    fn garbage_truncated_and_foreign_tokens_are_malformed() {
        let token = encode_token(&cursor(), "f");
        let mut other_version = URL_SAFE_NO_PAD.decode(&token).expect("base64url");
        other_version[0] = TOKEN_VERSION + 1;
        let too_long = "A".repeat(MAX_TOKEN_LEN + 4);
        for bad in [
            "garbage!".to_owned(),
            "AAAA".to_owned(),
            "djE".to_owned(),
            token[..token.len() / 2].to_owned(),
            URL_SAFE_NO_PAD.encode(other_version),
            // A token of another cursor type.
            encode_token(&42_i64, "f"),
            too_long,
        ] {
            assert_eq!(
                decode_token::<Cursor, _>(&bad, "f"),
                Err(PageTokenError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_fingerprint_of_a_filter_is_stable_across_builds() {
        // Tokens in clients' hands must survive a redeploy: the hash is fixed, not std's.
        // FNV-1a of the two bytes `""`, the JSON of an empty string.
        assert_eq!(fingerprint(""), 0x07cc_7607_b494_9e25);
        assert_ne!(fingerprint(&("a", "bc")), fingerprint(&("ab", "c")));
    }
}
