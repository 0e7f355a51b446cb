//! The context of the call being served: its request id, its deadline and its trace, and how
//! each crosses a hop in gRPC metadata (`x-request-id`, `grpc-timeout`, W3C `traceparent`).
//!
//! The server layer ([`crate::server`]) reads them from the incoming request and keeps them in a
//! task-local for the handler; the client layer ([`crate::client`]) writes them onto every call the
//! handler makes, so one id and one trace follow a request through the whole mesh.

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (and gRPC metadata key) that carries the request id.
pub const REQUEST_ID: &str = "x-request-id";
/// The gRPC deadline header.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// What a handler knows about the call it serves.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The request id: the caller's, or a new UUIDv7.
    pub request_id: String,
    /// When the caller stops waiting, from its `grpc-timeout`.
    pub deadline: Option<Instant>,
}

tokio::task_local! {
    static CALL: CallContext;
}

impl CallContext {
    /// Reads the context from request headers; the request id is [`request_id`]'s.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let request_id = request_id(headers);
        let deadline = headers
            .get(GRPC_TIMEOUT)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map(|timeout| Instant::now() + timeout);
        Self {
            request_id,
            deadline,
        }
    }

    /// Runs `future` with this context as the current one.
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CALL.scope(self, future).await
    }

    /// The context of the call being served, if any.
    pub fn current() -> Option<CallContext> {
        CALL.try_with(Clone::clone).ok()
    }

    /// Time left before the caller's deadline (zero once passed).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }
}

/// The longest request id kept from a caller, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The caller's `x-request-id` when it is a sane one (printable ASCII without spaces, at most
/// [`MAX_REQUEST_ID_LEN`] bytes: it ends up in logs, metadata and responses), or a new one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID_LEN
                && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(new_request_id, str::to_owned)
}

/// A fresh request id: a UUIDv7, so ids sort by time in logs.
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The request id of the call being served, if any.
pub fn current_request_id() -> Option<String> {
    CALL.try_with(|call| call.request_id.clone()).ok()
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Formats a duration as a `grpc-timeout` value, rounding up to the unit that fits 8 digits.
pub fn format_grpc_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let micros = timeout.as_micros();
    if micros <= MAX {
        return format!("{}u", micros.max(1));
    }
    let millis = timeout.as_millis() + u128::from(!timeout.subsec_micros().is_multiple_of(1000));
    if millis <= MAX {
        return format!("{millis}m");
    }
    format!("{}S", timeout.as_secs().min(MAX as u64))
}

/// Reads W3C trace context from headers (or gRPC metadata, which are headers on the wire).
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes W3C trace context into headers.
struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The remote trace context a caller sent (`traceparent`, `tracestate`), to parent the server span.
pub fn extract_trace_context(headers: &HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    })
}

/// Writes the current span's trace context into outgoing headers.
pub fn inject_trace_context(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

/// Headers carrying a sampled W3C trace context with `trace_id`, as a caller would send them.
#[cfg(test)]
pub(crate) fn traceparent_headers(trace_id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = format!("00-{trace_id}-00f067aa0ba902b7-01");
    headers.insert(
        "traceparent",
        HeaderValue::from_str(&value).expect("a valid header"),
    );
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_reject_garbage() {
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("9n"), Some(Duration::from_nanos(9)));
        assert_eq!(parse_grpc_timeout("123456789S"), None, "more than 8 digits");
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("-1S"), None);
    }

    #[test]
    fn formatted_timeouts_round_trip_without_shrinking() {
        for timeout in [
            Duration::from_nanos(1),
            Duration::from_millis(1500),
            Duration::from_secs(250),
            Duration::from_secs(86_400 * 400),
        ] {
            let parsed = parse_grpc_timeout(&format_grpc_timeout(timeout)).expect("valid");
            assert!(
                parsed >= timeout.min(Duration::from_secs(99_999_999)),
                "{timeout:?}"
            );
        }
    }

    #[test]
    fn a_missing_or_unsafe_request_id_is_replaced_by_a_new_one() {
        let mut headers = HeaderMap::new();
        let generated = CallContext::from_headers(&headers).request_id;
        assert!(uuid::Uuid::parse_str(&generated).is_ok());

        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(CallContext::from_headers(&headers).request_id, "abc-123");

        headers.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        assert_ne!(CallContext::from_headers(&headers).request_id, "has space");
    }

    #[test]
    fn a_request_id_of_128_visible_ascii_bytes_is_kept_and_a_longer_one_replaced() {
        let with = |id: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                REQUEST_ID,
                HeaderValue::from_str(id).expect("a header value"),
            );
            headers
        };
        let longest = "x".repeat(MAX_REQUEST_ID_LEN);
        assert_eq!(request_id(&with(&longest)), longest);
        let too_long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        assert_ne!(request_id(&with(&too_long)), too_long);
        assert_ne!(request_id(&with("")), "");
        assert_ne!(request_id(&with("tab\there")), "tab\there");
        let mut not_text = HeaderMap::new();
        not_text.insert(
            REQUEST_ID,
            HeaderValue::from_bytes(b"caf\xc3\xa9").expect("a header value"),
        );
        assert!(uuid::Uuid::parse_str(&request_id(&not_text)).is_ok());
    }

    #[tokio::test]
    async fn the_context_is_visible_inside_its_scope_only() {
        let call = CallContext {
            request_id: "r-1".into(),
            deadline: Some(Instant::now() + Duration::from_secs(5)),
        };
        let seen = call.scope(async { current_request_id() }).await;
        assert_eq!(seen.as_deref(), Some("r-1"));
        assert!(current_request_id().is_none());
    }
}
