//! Which gRPC-Web calls the edge serves, and in which encoding it answers them.
//!
//! `tonic_web` recognises a content type only when it is spelled exactly, and picks the answer's
//! encoding from `Accept` alone. Browsers and tools add parameters (`; charset=utf-8`), vary
//! the case, or send no `Accept`, so the headers are put in the spelling `tonic_web` expects
//! first, and a caller that names no encoding gets its answer in the one it sent.

use axum::extract::Request;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};
use http_body_util::BodyExt as _;

/// Binary gRPC-Web with protobuf messages.
const WEB_PROTO: &str = "application/grpc-web+proto";
/// Base64 gRPC-Web with protobuf messages.
const WEB_TEXT: &str = "application/grpc-web-text";
/// Every gRPC-Web content type `tonic_web` translates, and whether it is base64.
const SERVED: [(&str, bool); 4] = [
    ("application/grpc-web", false),
    (WEB_PROTO, false),
    (WEB_TEXT, true),
    ("application/grpc-web-text+proto", true),
];

/// What kind of gRPC call a request is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Native gRPC (`application/grpc`, `application/grpc+proto`, ...): passed as it is.
    Native,
    /// gRPC-Web in a served encoding: translated.
    Web,
    /// gRPC-Web in an encoding `tonic_web` cannot translate (`application/grpc-web+json`).
    Unsupported(String),
}

/// The media type of a header value, lowercased and without parameters.
fn essence(value: &HeaderValue) -> Option<String> {
    let value = value.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default();
    Some(essence.trim().to_ascii_lowercase())
}

/// Whether `media_type` is a served gRPC-Web type, and then whether it is base64.
fn served(media_type: &str) -> Option<bool> {
    SERVED
        .iter()
        .find(|(name, _)| *name == media_type)
        .map(|(_, text)| *text)
}

/// The kind of the call whose headers are `headers`.
pub(super) fn kind(headers: &HeaderMap) -> Kind {
    let Some(content_type) = headers.get(CONTENT_TYPE).and_then(essence) else {
        return Kind::Native;
    };
    if !content_type.starts_with("application/grpc-web") {
        return Kind::Native;
    }
    match served(&content_type) {
        Some(_) => Kind::Web,
        None => Kind::Unsupported(content_type),
    }
}

/// `request` with its content type spelled as `tonic_web` expects and an `Accept` naming the
/// answer's encoding: the one the caller accepts, else the one it sent.
pub(super) fn answer_in_the_callers_encoding(mut request: Request) -> Request {
    let headers = request.headers_mut();
    let sent_text = headers
        .get(CONTENT_TYPE)
        .and_then(essence)
        .and_then(|media_type| served(&media_type))
        .unwrap_or(false);
    let accepted_text = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|entry| HeaderValue::from_str(entry.trim()).ok())
        .find_map(|entry| essence(&entry).and_then(|media_type| served(&media_type)));
    let spelled = |text: bool| HeaderValue::from_static(if text { WEB_TEXT } else { WEB_PROTO });
    headers.insert(CONTENT_TYPE, spelled(sent_text));
    headers.insert(ACCEPT, spelled(accepted_text.unwrap_or(sent_text)));
    if !sent_text {
        return request;
    }
    // `tonic_web` reports the base64 body's length as the decoded body's, and the upstream
    // resets a stream whose content-length does not match; an unknown length is always right.
    request.map(|body| axum::body::Body::new(body.map_frame(|frame| frame)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    fn prepared(pairs: &[(&'static str, &'static str)]) -> (String, String) {
        let mut request = Request::new(axum::body::Body::empty());
        *request.headers_mut() = headers(pairs);
        let request = answer_in_the_callers_encoding(request);
        let read = |name| request.headers()[name].to_str().expect("ASCII").to_owned();
        (read(CONTENT_TYPE), read(ACCEPT))
    }

    #[test]
    fn grpc_web_types_are_recognised_whatever_their_case_and_parameters() {
        assert_eq!(
            kind(&headers(&[("content-type", "application/grpc")])),
            Kind::Native
        );
        assert_eq!(
            kind(&headers(&[("content-type", "application/grpc+proto")])),
            Kind::Native
        );
        assert_eq!(
            kind(&headers(&[(
                "content-type",
                "Application/GRPC-Web+proto; charset=utf-8"
            )])),
            Kind::Web
        );
        assert_eq!(
            kind(&headers(&[("content-type", "application/grpc-web-text")])),
            Kind::Web
        );
        assert_eq!(
            kind(&headers(&[("content-type", "application/grpc-web+json")])),
            Kind::Unsupported("application/grpc-web+json".into())
        );
    }

    #[test]
    fn a_caller_that_names_no_encoding_is_answered_in_the_one_it_sent() {
        assert_eq!(
            prepared(&[("content-type", "application/grpc-web-text; charset=utf-8")]),
            (WEB_TEXT.into(), WEB_TEXT.into())
        );
        assert_eq!(
            prepared(&[("content-type", "application/grpc-web"), ("accept", "*/*")]),
            (WEB_PROTO.into(), WEB_PROTO.into())
        );
    }

    #[test]
    fn a_base64_body_goes_on_without_its_encoded_length() {
        use axum::body::HttpBody as _;
        let sized = |content_type: &'static str| {
            let mut request = Request::new(axum::body::Body::from("AAAAAAA="));
            *request.headers_mut() = headers(&[("content-type", content_type)]);
            answer_in_the_callers_encoding(request)
                .body()
                .size_hint()
                .exact()
        };
        assert_eq!(
            sized("application/grpc-web-text"),
            None,
            "decoding changes it"
        );
        assert_eq!(
            sized("application/grpc-web+proto"),
            Some(8),
            "binary keeps it"
        );
    }

    #[test]
    fn an_accepted_grpc_web_encoding_wins_over_the_one_sent() {
        assert_eq!(
            prepared(&[
                ("content-type", "application/grpc-web+proto"),
                ("accept", "text/html, application/grpc-web-text")
            ]),
            (WEB_PROTO.into(), WEB_TEXT.into())
        );
        assert_eq!(
            prepared(&[
                ("content-type", "application/grpc-web-text"),
                ("accept", "application/grpc-web+proto")
            ]),
            (WEB_TEXT.into(), WEB_PROTO.into())
        );
    }
}
