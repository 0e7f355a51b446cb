use super::*;
use axum::{Router, routing::post};
use tower::ServiceExt as _;

fn app(max: usize) -> Router {
    Router::new()
        .route(
            "/v1/echo",
            post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
        .layer(axum::middleware::from_fn_with_state(
            LimitSettings {
                max_body_bytes: max,
                ..LimitSettings::default()
            },
            enforce,
        ))
}

async fn json(response: Response) -> serde_json::Value {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    serde_json::from_slice(&bytes).expect("JSON")
}

#[tokio::test]
async fn a_body_within_the_limit_reaches_the_route_whole() {
    let response = app(16)
        .oneshot(
            Request::post("/v1/echo")
                .body(Body::from("0123456789abcdef"))
                .expect("a request"),
        )
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&bytes[..], b"16");
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_with_a_status_body() {
    let response = app(16)
        .oneshot(
            Request::post("/v1/echo")
                .header("content-length", "17")
                .body(Body::from("0123456789abcdefg"))
                .expect("a request"),
        )
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body = json(response).await;
    assert_eq!(body["code"], 8, "RESOURCE_EXHAUSTED: {body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("16 bytes")),
        "{body}"
    );
}

#[tokio::test]
async fn a_chunked_body_that_grows_past_the_limit_is_413() {
    let chunks = futures::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"0123456789"))),
    );
    let response = app(64)
        .oneshot(
            Request::post("/v1/echo")
                .body(Body::from_stream(chunks))
                .expect("a request"),
        )
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json(response).await["code"], 8);
}

fn headers(pairs: &[(&str, usize)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, length)| {
            (
                http::HeaderName::from_bytes(name.as_bytes()).expect("a name"),
                http::HeaderValue::from_str(&"v".repeat(*length)).expect("a value"),
            )
        })
        .collect()
}

#[test]
fn the_default_limits_keep_forwarded_headers_under_what_a_service_accepts() {
    LimitSettings::default()
        .validate()
        .expect("the defaults are valid");
    let too_much = LimitSettings {
        max_header_list_bytes: MAX_HEADER_LIST_BYTES as usize,
        ..LimitSettings::default()
    };
    let error = too_much.validate().expect_err("over the services' limit");
    assert!(
        error.to_string().contains("max_header_list_bytes"),
        "{error}"
    );
    let zero = LimitSettings {
        max_headers: 0,
        ..LimitSettings::default()
    };
    assert!(zero.validate().is_err());
}

#[test]
fn each_limit_is_named_by_what_breaks_it() {
    let settings = LimitSettings {
        max_header_bytes: 100,
        max_header_list_bytes: 300,
        max_headers: 4,
        max_url_bytes: 20,
        ..LimitSettings::default()
    };
    let uri = |u: &str| u.parse::<Uri>().expect("a URI");
    let check = |u: &str, h: &[(&str, usize)]| oversized(&settings, &uri(u), &headers(h));
    assert_eq!(check("/v1/products?a=b", &[("a", 10)]), None);
    assert!(matches!(
        check("/v1/products?page=123456", &[]),
        Some(Oversized::Url {
            length: 24,
            max: 20
        })
    ));
    assert!(matches!(
        check("/", &[("x-big", 96)]),
        Some(Oversized::Header { length: 101, .. })
    ));
    assert!(matches!(
        check("/", &[("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1)]),
        Some(Oversized::TooMany { count: 5, max: 4 })
    ));
    // Three headers of 90 + 32 bytes each: each fits, together they do not.
    assert!(matches!(
        check("/", &[("a", 89), ("b", 89), ("c", 89)]),
        Some(Oversized::List {
            length: 366,
            max: 300
        })
    ));
}

#[tokio::test]
async fn an_oversized_header_is_431_for_rest_and_invalid_argument_for_grpc() {
    let app = Router::new()
        .route("/v1/echo", post(|| async { "reached" }))
        .layer(axum::middleware::from_fn_with_state(
            LimitSettings::default(),
            enforce_headers,
        ));
    let big = "v".repeat(9 * 1024);
    let rest = app
        .clone()
        .oneshot(
            Request::post("/v1/echo")
                .header("grpc-metadata-big", &big)
                .body(Body::empty())
                .expect("a request"),
        )
        .await
        .expect("answered");
    assert_eq!(rest.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body = json(rest).await;
    assert_eq!(body["code"], 3, "INVALID_ARGUMENT: {body}");
    let grpc = app
        .clone()
        .oneshot(
            Request::post("/v1/echo")
                .header("content-type", "application/grpc")
                .header("x-big", &big)
                .body(Body::empty())
                .expect("a request"),
        )
        .await
        .expect("answered");
    assert_eq!(grpc.status(), StatusCode::OK);
    assert_eq!(grpc.headers()["grpc-status"], "3");
    let long = format!("/v1/echo?q={}", "x".repeat(9 * 1024));
    let url = app
        .oneshot(Request::post(long).body(Body::empty()).expect("a request"))
        .await
        .expect("answered");
    assert_eq!(url.status(), StatusCode::URI_TOO_LONG);
}

#[tokio::test]
async fn grpc_calls_pass_through_unbuffered() {
    let response = app(4)
        .oneshot(
            Request::post("/v1/echo")
                .header("content-type", "application/grpc")
                .header("content-length", "10")
                .body(Body::from("0123456789"))
                .expect("a request"),
        )
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
}
