//! Auth's device token as a cookie. Over gRPC a client keeps the token a successful Login answers
//! with (metadata `agora-device`) and sends it on its next Login; a browser cannot be trusted to
//! do that with page script, so at the edge the token lives in an `HttpOnly` cookie instead:
//!
//! - the answer's `agora-device` metadata becomes
//!   `Set-Cookie: agora_device=<token>; Path=/v1/auth; Max-Age=<lifetime>; HttpOnly; Secure;
//!   SameSite=Strict` (the lifetime from auth's `agora-device-max-age`), and neither is echoed as
//!   a `Grpc-Metadata-*` header, so page script never reads the token;
//! - the `agora_device` cookie goes upstream as `agora-device` metadata on Login only: no other
//!   method reads it, so no other service is handed it. A client that sends
//!   `Grpc-Metadata-agora-device` itself keeps its own.
//!
//! gRPC and gRPC-Web calls pass through with their metadata as it is.

use http::{HeaderMap, HeaderValue, header};
use tonic::metadata::MetadataMap;

/// The cookie's name.
pub const COOKIE: &str = "agora_device";

/// The metadata auth reads the token from and answers a fresh one in.
pub const METADATA: &str = "agora-device";

/// The metadata with the token's lifetime in seconds, next to [`METADATA`].
pub const MAX_AGE_METADATA: &str = "agora-device-max-age";

/// The method that takes the device token: the cookie goes to no other.
pub const LOGIN: &str = "agora.auth.v1.AuthService.Login";

/// Where the browser sends the cookie: auth's routes only.
const PATH: &str = "/v1/auth";

/// Whether response metadata `name` is the device token's, which leaves as a cookie only.
pub fn is_device_metadata(name: &str) -> bool {
    name == METADATA || name == MAX_AGE_METADATA
}

/// The `agora_device` cookie among `headers`, if one holds something shaped like a token.
pub fn from_cookies(headers: &HeaderMap) -> Option<HeaderValue> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| is_token_shaped(value))
        .and_then(|value| HeaderValue::from_str(value).ok())
}

/// Puts the request's device cookie into the Login call's `metadata`, unless the client sent
/// the metadata itself.
pub fn forward(headers: &HeaderMap, metadata: &mut MetadataMap) {
    if metadata.contains_key(METADATA) {
        return;
    }
    if let Some(value) = from_cookies(headers)
        && let Ok(value) = tonic::metadata::MetadataValue::try_from(value.as_bytes())
    {
        metadata.insert(METADATA, value);
    }
}

/// The `Set-Cookie` for a fresh token in an answer's `metadata`, if it has one.
pub fn set_cookie(metadata: &MetadataMap) -> Option<HeaderValue> {
    let token = metadata.get(METADATA)?.to_str().ok()?;
    if !is_token_shaped(token) {
        return None;
    }
    // Without a lifetime the cookie lasts the browser session: never longer than auth accepts.
    let max_age = metadata
        .get(MAX_AGE_METADATA)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .map(|secs| format!("; Max-Age={secs}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path={PATH}{max_age}; HttpOnly; Secure; SameSite=Strict"
    ))
    .ok()
}

/// Tokens are URL-safe characters and dots, and not long: anything else is not one, and must
/// not end up in a cookie or metadata.
fn is_token_shaped(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 512
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    const TOKEN: &str = "0190a0b1-0000-7000-8000-000000000001.bm9uY2U.1750000000.bWFj";

    fn cookies(values: &[&str]) -> HeaderMap {
        values
            .iter()
            .map(|v| (header::COOKIE, HeaderValue::from_str(v).expect("a value")))
            .collect()
    }

    #[test]
    fn the_device_cookie_is_found_among_others() {
        let headers = cookies(&["theme=dark", &format!("a=1; {COOKIE}={TOKEN}; b=2")]);
        assert_eq!(from_cookies(&headers).expect("found"), TOKEN);
        assert_eq!(from_cookies(&cookies(&["agora_devices=x; other=y"])), None);
        assert_eq!(
            from_cookies(&cookies(&["agora_device=a b"])),
            None,
            "no token"
        );
    }

    #[test]
    fn a_clients_own_metadata_wins_over_its_cookie() {
        let headers = cookies(&[&format!("{COOKIE}={TOKEN}")]);
        let mut metadata = MetadataMap::new();
        forward(&headers, &mut metadata);
        assert_eq!(metadata.get(METADATA).expect("forwarded"), TOKEN);

        let mut metadata = MetadataMap::new();
        metadata.insert(METADATA, MetadataValue::from_static("mine"));
        forward(&headers, &mut metadata);
        assert_eq!(metadata.get(METADATA).expect("kept"), "mine");
    }

    #[test]
    fn a_fresh_token_becomes_an_http_only_strict_cookie_for_auths_routes() {
        let mut metadata = MetadataMap::new();
        assert_eq!(set_cookie(&metadata), None);
        metadata.insert(METADATA, MetadataValue::from_static(TOKEN));
        metadata.insert(MAX_AGE_METADATA, MetadataValue::from_static("7776000"));
        assert_eq!(
            set_cookie(&metadata).expect("a cookie"),
            format!(
                "{COOKIE}={TOKEN}; Path=/v1/auth; Max-Age=7776000; HttpOnly; Secure; SameSite=Strict"
            )
            .as_str()
        );
    }
}
