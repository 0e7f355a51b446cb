//! The edge under test: the conformance proto's routes in front of the echo upstream, driven
//! in-process with `oneshot` from a fixed peer address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use agora_gateway::app::{Gateway, router};
use agora_gateway::routes::Routes;
use agora_gateway::upstream::Upstream;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{HeaderMap, StatusCode};
use prost_reflect::DescriptorPool;
use serde_json::Value;
use tower::ServiceExt as _;

use super::echo::Echo;

/// The conformance service's full name, the key of its upstream.
pub(crate) const SERVICE: &str = "agora.conformance.v1.Conformance";

/// The address every in-process request comes from.
pub(crate) const PEER: &str = "203.0.113.7:40123";

fn proto_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proto")
}

/// Compiles `file` (relative to `gateway/tests/proto`) with the contracts' `google/api` imports.
///
/// # Errors
/// The compiler's error, for protos that are meant to be wrong.
pub(crate) fn compile(file: &str) -> Result<DescriptorPool, String> {
    let root = proto_root();
    let mut compiler = protox::Compiler::new([root.clone(), root.join("../../../proto")])
        .map_err(|e| e.to_string())?;
    compiler.include_imports(true);
    compiler.open_file(file).map_err(|e| e.to_string())?;
    DescriptorPool::decode(compiler.encode_file_descriptor_set().as_slice())
        .map_err(|e| e.to_string())
}

/// The conformance proto's descriptors, compiled once per test binary.
pub(crate) fn pool() -> DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        compile("conformance/v1/conformance.proto").expect("the conformance proto compiles")
    })
    .clone()
}

/// The edge's router and the upstream behind it.
pub(crate) struct Edge {
    app: axum::Router,
    /// The upstream, for what reached gRPC.
    pub(crate) echo: Echo,
}

impl Edge {
    /// An edge with a 5 s route deadline.
    pub(crate) async fn start() -> Self {
        Self::with_timeout(Duration::from_secs(5)).await
    }

    /// An edge whose routes' own deadline is `timeout`.
    pub(crate) async fn with_timeout(timeout: Duration) -> Self {
        let pool = pool();
        let echo = Echo::start(pool.clone()).await;
        let gateway = Gateway {
            routes: Routes::build(&pool).expect("the conformance rules build"),
            upstreams: [(
                SERVICE.to_owned(),
                Upstream::lazy(&echo.url()).expect("a valid URL"),
            )]
            .into(),
            timeout,
            body_limit: 1 << 20,
        };
        Self {
            app: router(Arc::new(gateway)),
            echo,
        }
    }

    /// Sends `request` from [`PEER`] and reads the whole answer.
    pub(crate) async fn send(&self, mut request: http::Request<Body>) -> Answer {
        let peer: SocketAddr = PEER.parse().expect("a socket address");
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20)
            .await
            .expect("a readable body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status: parts.status,
            headers: parts.headers,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
        }
    }

    /// `GET uri`.
    pub(crate) async fn get(&self, uri: &str) -> Answer {
        self.send(request("GET", uri).body(Body::empty()).expect("a request"))
            .await
    }

    /// `method uri` with `body` as JSON.
    pub(crate) async fn call(&self, method: &str, uri: &str, body: &str) -> Answer {
        self.send(
            request(method, uri)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_owned()))
                .expect("a request"),
        )
        .await
    }

    /// How many calls reached the upstream.
    pub(crate) fn upstream_calls(&self) -> usize {
        self.echo.calls().len()
    }
}

/// A request builder for `method uri`.
pub(crate) fn request(method: &str, uri: &str) -> http::request::Builder {
    http::Request::builder().method(method).uri(uri)
}

/// An answer of the edge, read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// The response headers.
    pub(crate) headers: HeaderMap,
    /// The body as JSON (`Null` when it is not JSON).
    pub(crate) json: Value,
    /// The body as text, for failure messages.
    pub(crate) text: String,
}

impl Answer {
    /// The JSON body of a 200; fails the test on any other status.
    pub(crate) fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        &self.json
    }

    /// A header's value as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a `google.rpc.Status` JSON error with `status` and gRPC `code`.
    pub(crate) fn assert_error(&self, status: StatusCode, code: tonic::Code) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "an error body is JSON"
        );
        assert_eq!(self.json["code"], code as i32, "{}", self.text);
        assert!(self.json["message"].is_string(), "{}", self.text);
        assert!(self.json["details"].is_array(), "{}", self.text);
    }

    /// Asserts a 400 INVALID_ARGUMENT whose message names `parameter`.
    pub(crate) fn assert_invalid(&self, parameter: &str) {
        self.assert_error(StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument);
        let message = self.json["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(parameter),
            "the message names {parameter}: {message}"
        );
    }
}
