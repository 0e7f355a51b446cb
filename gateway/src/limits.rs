//! The edge's size limits on requests.
//!
//! **Headers and URL** ([`enforce_headers`]): checked before anything else looks at the request,
//! so an oversized header never reaches a service. A service refuses a header block over
//! [`MAX_HEADER_LIST_BYTES`] by closing the edge's whole HTTP/2 connection to it (every other
//! caller's call and watch on it fails), so the edge bounds what it accepts, and therefore what
//! it forwards, well below that: 431 for headers, 414 for a URL, with a `google.rpc.Status` body
//! (INVALID_ARGUMENT: the request itself is wrong, retrying it later will not help), and
//! INVALID_ARGUMENT as a gRPC status for gRPC and gRPC-Web calls.
//!
//! **Body**: a JSON body larger than `max_body_bytes` is refused with 413 and
//! a `google.rpc.Status` body before anything is decoded or sent upstream.
//!
//! A declared `Content-Length` over the limit is refused without reading a byte; a chunked body
//! is read up to the limit and refused as soon as it passes it, so a client cannot make the edge
//! buffer more than the limit either way. gRPC and gRPC-Web calls pass through untouched: they
//! stream, and each service enforces its own message size limit.

use agora_platform::server::MAX_HEADER_LIST_BYTES;
use axum::{
    body::Body,
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use http::{HeaderMap, StatusCode, Uri};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::Deserialize;

/// The default limit: far above any request of Agora's API, far below a memory problem.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// What HTTP/2 adds to each header field when it counts a header list (RFC 9113 §6.5.2).
const FIELD_OVERHEAD: usize = 32;

/// What the edge itself adds to a call's headers on the way upstream, at most: its request id,
/// trace context, the peer in `x-forwarded-for`, `te`, `content-type`, `grpc-timeout`,
/// `user-agent` and the pseudo-headers but `:path`.
const EDGE_ADDED_BYTES: usize = 2048;

/// `[gateway.limits]`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The largest single header (name and value), in bytes.
    pub max_header_bytes: usize,
    /// The largest header list, counted as HTTP/2 counts it (each header's name and value plus
    /// 32 bytes). Everything the edge forwards comes from it, so with `max_url_bytes` it bounds
    /// the header block a service receives.
    pub max_header_list_bytes: usize,
    /// The most header fields in one request.
    pub max_headers: usize,
    /// The longest path and query, in bytes.
    pub max_url_bytes: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: 8 * 1024,
            max_header_list_bytes: 16 * 1024,
            max_headers: 100,
            max_url_bytes: 8 * 1024,
        }
    }
}

/// Refuses the first of the named `values` that is zero (or empty), as a setting of `section`.
///
/// # Errors
/// `<section>.<name> must be above 0`.
pub(crate) fn ensure_above_zero<T: Default + PartialEq>(
    section: &str,
    values: impl IntoIterator<Item = (&'static str, T)>,
) -> anyhow::Result<()> {
    for (name, value) in values {
        anyhow::ensure!(value != T::default(), "{section}.{name} must be above 0");
    }
    Ok(())
}

impl LimitSettings {
    /// Checks the limits make sense together and keep what the edge forwards under what a
    /// service accepts.
    ///
    /// # Errors
    /// A zero limit, or headers and URL that could add up past [`MAX_HEADER_LIST_BYTES`].
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure_above_zero(
            "gateway.limits",
            [
                ("max_body_bytes", self.max_body_bytes),
                ("max_header_bytes", self.max_header_bytes),
                ("max_header_list_bytes", self.max_header_list_bytes),
                ("max_headers", self.max_headers),
                ("max_url_bytes", self.max_url_bytes),
            ],
        )?;
        let forwarded = self
            .max_header_list_bytes
            .saturating_add(self.max_url_bytes)
            .saturating_add(EDGE_ADDED_BYTES);
        anyhow::ensure!(
            forwarded <= MAX_HEADER_LIST_BYTES as usize,
            "gateway.limits.max_header_list_bytes ({}) plus max_url_bytes ({}) plus what the \
             edge adds ({EDGE_ADDED_BYTES}) must stay within the {MAX_HEADER_LIST_BYTES} bytes of \
             headers a service accepts",
            self.max_header_list_bytes,
            self.max_url_bytes,
        );
        Ok(())
    }

    /// The largest request head the HTTP server itself buffers. Well above the layer's limits,
    /// so the layer answers the usual oversized requests (a 64 KiB header) with a status body;
    /// bounded, so a client cannot make the edge hold much more.
    pub fn server_header_list_bytes(&self) -> usize {
        self.max_header_list_bytes
            .saturating_mul(4)
            .saturating_add(self.max_url_bytes)
    }

    /// The most header fields the HTTP server itself parses (see
    /// [`LimitSettings::server_header_list_bytes`]).
    pub fn server_max_headers(&self) -> usize {
        self.max_headers.saturating_mul(2)
    }
}

/// Why a request's URL or headers are refused.
#[derive(Debug, PartialEq, Eq)]
enum Oversized {
    Url {
        length: usize,
        max: usize,
    },
    Header {
        name: String,
        length: usize,
        max: usize,
    },
    TooMany {
        count: usize,
        max: usize,
    },
    List {
        length: usize,
        max: usize,
    },
}

impl Oversized {
    fn http_status(&self) -> StatusCode {
        match self {
            Self::Url { .. } => StatusCode::URI_TOO_LONG,
            _ => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Url { length, max } => {
                format!("the URL is {length} bytes long, over the limit of {max}")
            }
            Self::Header { name, length, max } => {
                format!("the header {name} is {length} bytes, over the limit of {max}")
            }
            Self::TooMany { count, max } => {
                format!("the request has {count} headers, over the limit of {max}")
            }
            Self::List { length, max } => {
                format!("the headers add up to {length} bytes, over the limit of {max}")
            }
        }
    }
}

/// The first limit `uri` and `headers` break, if any.
fn oversized(settings: &LimitSettings, uri: &Uri, headers: &HeaderMap) -> Option<Oversized> {
    let url = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if url > settings.max_url_bytes {
        return Some(Oversized::Url {
            length: url,
            max: settings.max_url_bytes,
        });
    }
    if headers.len() > settings.max_headers {
        return Some(Oversized::TooMany {
            count: headers.len(),
            max: settings.max_headers,
        });
    }
    let mut list = 0_usize;
    for (name, value) in headers {
        let length = name.as_str().len() + value.len();
        if length > settings.max_header_bytes {
            // A name can be long too: it is echoed only in part.
            let name: String = name.as_str().chars().take(64).collect();
            return Some(Oversized::Header {
                name,
                length,
                max: settings.max_header_bytes,
            });
        }
        list += length + FIELD_OVERHEAD;
    }
    (list > settings.max_header_list_bytes).then_some(Oversized::List {
        length: list,
        max: settings.max_header_list_bytes,
    })
}

/// The header and URL middleware. Mount it first after the request id (its refusals carry it),
/// before anything reads or forwards the request.
pub async fn enforce_headers(
    State(settings): State<LimitSettings>,
    request: Request,
    next: Next,
) -> Response {
    match head_refusal(&settings, &request) {
        None => next.run(request).await,
        Some(refusal) => refusal,
    }
}

/// [`enforce_headers`]'s check: the refusal of a request whose URL or headers break a limit
/// (414 or 431 with a status body for REST; INVALID_ARGUMENT for gRPC), if they do.
pub fn head_refusal(settings: &LimitSettings, request: &Request) -> Option<Response> {
    let oversized = oversized(settings, request.uri(), request.headers())?;
    tracing::info!(reason = %oversized.message(), "refused oversized request headers");
    let status = tonic::Status::invalid_argument(oversized.message());
    let mut response = crate::auth::refuse(request, &status);
    // gRPC callers read the gRPC status (HTTP 200); REST callers get the HTTP status that
    // names the problem (the table would say 400).
    if !crate::auth::is_grpc(request) {
        *response.status_mut() = oversized.http_status();
    }
    Some(response)
}

/// The middleware. Mount it inside CORS and rate limits, outside the transcoder:
///
/// ```ignore
/// // Refuse oversized bodies with 413 before they are buffered or decoded.
/// let app = routes.layer(axum::middleware::from_fn_with_state(settings.limits, limits::enforce));
/// ```
pub async fn enforce(
    State(settings): State<LimitSettings>,
    request: Request,
    next: Next,
) -> Response {
    if crate::auth::is_grpc(&request) {
        return next.run(request).await;
    }
    match read_body(&settings, request).await {
        Ok(request) => next.run(request).await,
        Err(refusal) => refusal,
    }
}

/// [`enforce`]'s work for a REST request: `request` with its body read whole, if it is within
/// the limit.
///
/// # Errors
/// 413 for a body over the limit (declared or sent), 400 for one that could not be read.
pub async fn read_body(settings: &LimitSettings, request: Request) -> Result<Request, Response> {
    let max = settings.max_body_bytes;
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return Err(too_large(&request, max));
    }
    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            let request = Request::from_parts(parts, Body::empty());
            if error.downcast_ref::<LengthLimitError>().is_some() {
                return Err(too_large(&request, max));
            }
            tracing::info!(%error, "could not read a request body");
            return Err(crate::auth::refuse(
                &request,
                &tonic::Status::invalid_argument("the request body could not be read"),
            ));
        }
    };
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn too_large(request: &Request, max: usize) -> Response {
    let status = tonic::Status::resource_exhausted(format!(
        "the request body is larger than the limit of {max} bytes"
    ));
    let mut response = crate::auth::refuse(request, &status);
    // The table maps RESOURCE_EXHAUSTED to 429, which would tell the client to retry the same
    // body later; 413 says the body itself is the problem.
    *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    response
}

#[cfg(test)]
mod tests;
