//! CORS: which web origins may call the edge from a browser.
//!
//! Preflight requests (`OPTIONS` with `Access-Control-Request-Method`) are answered here, at the
//! edge, without touching routing, auth or rate limits; actual requests from an allowed origin get
//! `Access-Control-Allow-Origin` and the headers a browser script may read (request id, rate
//! limits, gRPC status). With no origins configured, only same-origin pages (such as `/docs`)
//! can call the API.

use std::time::Duration;

use anyhow::Context as _;
use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer, ExposeHeaders};

/// `[gateway.cors]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CorsSettings {
    /// Origins allowed to call the API (`https://shop.example.com`), or `["*"]` for any origin
    /// (then without credentials). Empty: same-origin only.
    pub allowed_origins: Vec<String>,
    /// Whether browsers may send cookies and HTTP auth with cross-origin calls (bearer tokens in
    /// `Authorization` do not need this). Not allowed together with `*`. A storefront on another
    /// origin of the same site (`shop.example.com` calling `api.example.com`) needs it, and
    /// `credentials: "include"` on its sign-in calls, to keep auth's `SameSite=Strict`
    /// `agora_device` cookie (see [`crate::device_cookie`]); a storefront on another site never
    /// sends it, so its sign-ins count as unknown devices.
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for CorsSettings {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allow_credentials: false,
            max_age: Duration::from_secs(600),
        }
    }
}

/// Request headers a page may send: the ones the edge reads. `Grpc-Metadata-*` cannot be listed
/// by prefix, so the common ones are; gRPC-Web clients send `x-grpc-web` and `x-user-agent`.
const ALLOWED_HEADERS: [&str; 10] = [
    "authorization",
    "content-type",
    "accept",
    "x-request-id",
    "traceparent",
    "tracestate",
    "grpc-timeout",
    "x-grpc-web",
    "x-user-agent",
    "idempotency-key",
];

/// Response headers a page's script may read.
const EXPOSED_HEADERS: [&str; 11] = [
    "x-request-id",
    "traceparent",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "www-authenticate",
    "allow",
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
];

/// The CORS layer for `settings`. Put it outermost, so preflights never reach auth or rate
/// limits and refusals (401, 429, ...) still carry CORS headers a page can read:
///
/// ```ignore
/// let app = routes
///     // ... auth, rate limits, body limit ...
///     // Answer preflights and label responses for browsers on other origins.
///     .layer(cors::layer(&settings.cors)?);
/// ```
///
/// # Errors
/// An origin is not a valid header value, or `*` is combined with credentials.
pub fn layer(settings: &CorsSettings) -> anyhow::Result<CorsLayer> {
    let any = settings.allowed_origins.iter().any(|o| o == "*");
    anyhow::ensure!(
        !(any && settings.allow_credentials),
        "gateway.cors: allowed_origins = [\"*\"] cannot be combined with allow_credentials"
    );
    let origins = if any {
        AllowOrigin::any()
    } else {
        let origins = settings
            .allowed_origins
            .iter()
            .map(|origin| {
                let trimmed = origin.trim_end_matches('/');
                anyhow::ensure!(
                    trimmed.starts_with("http://") || trimmed.starts_with("https://"),
                    "gateway.cors.allowed_origins: {origin:?} is not an origin like https://shop.example.com"
                );
                HeaderValue::from_str(trimmed)
                    .with_context(|| format!("gateway.cors.allowed_origins: {origin:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(origins)
    };
    let names = |names: &[&'static str]| -> Vec<HeaderName> {
        names.iter().map(|n| HeaderName::from_static(n)).collect()
    };
    Ok(CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers(AllowHeaders::list(names(&ALLOWED_HEADERS)))
        .expose_headers(ExposeHeaders::list(names(&EXPOSED_HEADERS)))
        .allow_credentials(settings.allow_credentials)
        .max_age(settings.max_age))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{Router, body::Body, routing::post};
    use http::{HeaderMap, Request, Response, StatusCode};
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    use tower::ServiceExt as _;

    fn settings(origins: &[&str]) -> CorsSettings {
        CorsSettings {
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            ..CorsSettings::default()
        }
    }

    /// The shop's origin, the one the tests allow.
    const SHOP: &str = "http://shop.test:3000";

    /// Sends `request` to a router whose one route counts its calls, behind the CORS layer
    /// allowing `origins`; returns the answer and how many times the route ran.
    async fn send(origins: &[&str], request: Request<Body>) -> (Response<Body>, usize) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let router = Router::new()
            .route(
                "/v1/orders",
                post(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async { "{}" }
                }),
            )
            .layer(layer(&settings(origins)).expect("valid settings"));
        let response = router.oneshot(request).await.expect("answered");
        (response, calls.load(Ordering::SeqCst))
    }

    /// The value of the header `name`, which the layer writes in ASCII.
    fn text<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
        headers[name].to_str().expect("ascii")
    }

    fn preflight(origin: &str) -> Request<Body> {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/v1/orders")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .body(Body::empty())
            .expect("a request")
    }

    #[tokio::test]
    async fn a_preflight_from_an_allowed_origin_is_answered_at_the_edge() {
        let (response, calls) = send(&[SHOP], preflight(SHOP)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], SHOP);
        let methods = text(headers, "access-control-allow-methods");
        assert!(methods.contains("POST"), "{methods}");
        let allowed = text(headers, "access-control-allow-headers");
        assert!(
            allowed.contains("authorization") && allowed.contains("content-type"),
            "{allowed}"
        );
        assert_eq!(headers["access-control-max-age"], "600");
        assert_eq!(calls, 0, "the route never ran");
    }

    #[tokio::test]
    async fn a_preflight_from_another_origin_gets_no_permission() {
        let (response, calls) = send(&[SHOP], preflight("http://evil.test")).await;
        assert!(
            !response
                .headers()
                .contains_key("access-control-allow-origin")
        );
        assert_eq!(calls, 0);
    }

    #[tokio::test]
    async fn an_actual_request_exposes_the_request_id_and_rate_limit_headers() {
        let request = Request::post("/v1/orders")
            .header("origin", SHOP)
            .body(Body::empty())
            .expect("a request");
        let (response, calls) = send(&[SHOP], request).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(calls, 1);
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], SHOP);
        let exposed = text(headers, "access-control-expose-headers");
        assert!(
            exposed.contains("x-request-id") && exposed.contains("retry-after"),
            "{exposed}"
        );
    }

    #[tokio::test]
    async fn any_origin_is_allowed_with_a_star() {
        let (response, _) = send(&["*"], preflight("http://anywhere.test")).await;
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
    }

    #[test]
    fn bad_origins_and_a_star_with_credentials_stop_start_up() {
        let error = layer(&settings(&["shop.test"])).expect_err("no scheme");
        assert!(error.to_string().contains("allowed_origins"), "{error}");
        let error = layer(&CorsSettings {
            allow_credentials: true,
            ..settings(&["*"])
        })
        .expect_err("star with credentials");
        assert!(error.to_string().contains("allow_credentials"), "{error}");
    }
}
