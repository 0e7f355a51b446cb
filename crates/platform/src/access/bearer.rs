//! Reading the bearer token of a request, the same way in the services and at the edge.

use tonic::Status;

/// Why an `authorization` header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// The header is not visible ASCII text.
    #[error("malformed authorization header")]
    Malformed,
    /// Another scheme than `Bearer`, or no token after it.
    #[error("the authorization header must be `Bearer <access token>`")]
    NotBearer,
}

impl From<BearerError> for Status {
    fn from(error: BearerError) -> Self {
        Status::unauthenticated(error.to_string())
    }
}

/// The token of an `authorization: Bearer <token>` header (the scheme in any case, the token
/// trimmed), or `None` without the header.
///
/// # Errors
/// A header that is not a bearer token: a caller that sent credentials meant them, so they are
/// refused rather than ignored.
pub fn bearer_token(headers: &http::HeaderMap) -> Result<Option<&str>, BearerError> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| BearerError::Malformed)?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(BearerError::NotBearer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &[u8]) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_bytes(value).expect("a header value"),
        );
        headers
    }

    #[test]
    fn only_bearer_authorization_is_accepted() {
        let headers = http::HeaderMap::new();
        assert_eq!(bearer_token(&headers).expect("none is fine"), None);
        assert_eq!(bearer_token(&with(b"Bearer abc")), Ok(Some("abc")));
        assert_eq!(bearer_token(&with(b"bearer  abc ")), Ok(Some("abc")));
        assert_eq!(
            bearer_token(&with(b"Basic abc")),
            Err(BearerError::NotBearer)
        );
        assert_eq!(bearer_token(&with(b"Bearer ")), Err(BearerError::NotBearer));
        assert_eq!(bearer_token(&with(b"Bearer")), Err(BearerError::NotBearer));
    }

    #[test]
    fn a_header_that_is_not_text_is_malformed_and_unauthenticated() {
        let error = bearer_token(&with(b"Bearer \xff")).expect_err("not text");
        assert_eq!(error, BearerError::Malformed);
        let status = Status::from(error);
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert_eq!(status.message(), "malformed authorization header");
    }
}
