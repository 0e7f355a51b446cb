//! The conformance upstream: a real gRPC server on 127.0.0.1:0 that serves every method of a
//! descriptor pool generically. Each call is recorded (method, message, metadata) and answered
//! with the message it received, its metadata echoed back as `echo-<key>`; `Fail` answers the
//! status its request names with a `google.rpc.BadRequest`, `Vanish` ends without a
//! `grpc-status`, and `Sleep` waits before it echoes.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use agora_gateway::upstream::DynamicCodec;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};
use tonic::metadata::{KeyAndValueRef, MetadataKey, MetadataMap};
use tonic_types::{ErrorDetails, StatusExt as _};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One call the upstream received.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// The method's name, e.g. `GetItem`.
    pub(crate) method: String,
    /// The request message as it reached gRPC.
    pub(crate) message: DynamicMessage,
    /// The request metadata as it reached gRPC.
    pub(crate) metadata: MetadataMap,
}

impl Call {
    /// The ASCII value of one metadata entry, if present.
    pub(crate) fn header(&self, key: &str) -> Option<String> {
        self.metadata
            .get(key)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The request as canonical proto3 JSON, for assertions.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::to_value(&self.message).expect("a received message serializes")
    }
}

/// A running upstream; the server stops when this is dropped.
pub(crate) struct Echo {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Echo {
    /// Serves every method of `pool` on a fresh port.
    pub(crate) async fn start(pool: DescriptorPool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("a bound address");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = EchoService {
            pool,
            calls: calls.clone(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let shutdown = async {
                let _ = stopped.await;
            };
            tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(service, incoming, shutdown)
                .await
                .expect("the conformance upstream serves");
        });
        Self {
            addr,
            calls,
            _stop: stop,
        }
    }

    /// The URL the edge's upstream channel connects to.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every call received so far, in order.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .expect("the call log is not poisoned")
            .clone()
    }

    /// The only call received; fails the test unless exactly one arrived.
    pub(crate) fn only_call(&self) -> Call {
        let calls = self.calls();
        assert_eq!(
            calls.len(),
            1,
            "expected exactly one upstream call: {calls:?}"
        );
        calls.into_iter().next().expect("one call")
    }
}

/// The tower service tonic's server runs: finds the method by its path and answers it.
#[derive(Clone)]
struct EchoService {
    pool: DescriptorPool,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl EchoService {
    fn method(&self, path: &str) -> Option<MethodDescriptor> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        self.pool
            .get_service_by_name(service)?
            .methods()
            .find(|m| m.name() == method)
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for EchoService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let method = self.method(request.uri().path());
        let calls = self.calls.clone();
        Box::pin(async move {
            let Some(method) = method else {
                return Ok(tonic::Status::unimplemented("no such method").into_http());
            };
            if method.name() == "Vanish" {
                // A 200 with gRPC's content type and no trailers: a protocol violation the edge
                // must still answer.
                calls
                    .lock()
                    .expect("the call log is not poisoned")
                    .push(Call {
                        method: method.name().to_owned(),
                        message: DynamicMessage::new(method.input()),
                        metadata: MetadataMap::from_headers(request.headers().clone()),
                    });
                let response = http::Response::builder()
                    .header(http::header::CONTENT_TYPE, "application/grpc")
                    .body(tonic::body::Body::empty())
                    .expect("a static response");
                return Ok(response);
            }
            let mut grpc = tonic::server::Grpc::new(DynamicCodec::new(method.input()));
            Ok(grpc.unary(Handler { method, calls }, request).await)
        })
    }
}

/// Answers one decoded call.
struct Handler {
    method: MethodDescriptor,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl tonic::server::UnaryService<DynamicMessage> for Handler {
    type Response = DynamicMessage;
    type Future = BoxFuture<Result<tonic::Response<DynamicMessage>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<DynamicMessage>) -> Self::Future {
        let name = self.method.name().to_owned();
        let calls = self.calls.clone();
        Box::pin(async move {
            let metadata = request.metadata().clone();
            let message = request.into_inner();
            calls
                .lock()
                .expect("the call log is not poisoned")
                .push(Call {
                    method: name.clone(),
                    message: message.clone(),
                    metadata: metadata.clone(),
                });
            match name.as_str() {
                "Fail" => return Err(failure(&message)),
                "Sleep" => tokio::time::sleep(delay(&message)).await,
                _ => {}
            }
            let mut response = tonic::Response::new(message);
            echo_metadata(&metadata, response.metadata_mut());
            Ok(response)
        })
    }
}

/// The status a `Failure` request names, with its field violation as a `google.rpc.BadRequest`.
fn failure(message: &DynamicMessage) -> tonic::Status {
    let text = |name: &str| {
        message
            .get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let code = message
        .get_field_by_name("code")
        .and_then(|v| v.as_i32())
        .unwrap_or_default();
    tonic::Status::with_error_details(
        tonic::Code::from_i32(code),
        text("message"),
        ErrorDetails::with_bad_request_violation(text("field"), text("description")),
    )
}

/// The `delay` of a `Nap` request.
fn delay(message: &DynamicMessage) -> Duration {
    let Some(Value::Message(delay)) = message.get_field_by_name("delay").map(|v| v.into_owned())
    else {
        return Duration::ZERO;
    };
    let seconds = delay
        .get_field_by_name("seconds")
        .and_then(|v| v.as_i64())
        .unwrap_or_default();
    let nanos = delay
        .get_field_by_name("nanos")
        .and_then(|v| v.as_i32())
        .unwrap_or_default();
    Duration::from_secs(seconds.unsigned_abs()) + Duration::from_nanos(nanos.unsigned_abs().into())
}

/// Every ASCII request entry back as `echo-<key>`, but the transport's own headers.
fn echo_metadata(received: &MetadataMap, answer: &mut MetadataMap) {
    for entry in received.iter() {
        let KeyAndValueRef::Ascii(key, value) = entry else {
            continue;
        };
        if matches!(key.as_str(), "te" | "content-type" | "user-agent") {
            continue;
        }
        if let Ok(echo) = MetadataKey::from_bytes(format!("echo-{}", key.as_str()).as_bytes()) {
            answer.append(echo, value.clone());
        }
    }
}
