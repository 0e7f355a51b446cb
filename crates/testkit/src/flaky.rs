//! A gRPC fault injector: [`FlakyProxy`] stands between a service and one of its upstreams and
//! answers some calls with UNAVAILABLE itself, as a failing replica would, while passing every
//! other call through untouched.
//!
//! It works at the HTTP/2 level, so it knows nothing of the upstream's messages: the caller's
//! real client, retries, deadlines and credentials all run as in production. Which calls fail is
//! the test's [`FailRule`], decided in the order calls arrive; every attempt is counted per
//! method path, and per request id, so a test can tell the calls a client made from the
//! retries it added.

use std::{
    collections::HashMap,
    net::SocketAddr,
    num::NonZeroU64,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use agora_platform::context::REQUEST_ID;
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{
    Status,
    body::Body,
    codegen::{
        Service,
        http::{Request, Response, Uri, uri},
    },
    service::{AxumBody, AxumRouter, Routes},
    transport::{Channel, Endpoint, server::TcpIncoming},
};

/// Which calls a [`FlakyProxy`] fails: every `every`-th call to a path containing a fragment,
/// starting with the first. Calls to other paths always pass.
#[derive(Debug)]
pub struct FailRule {
    path_contains: String,
    every: NonZeroU64,
    /// Matching calls seen so far. Atomic, so that concurrent calls each take their own turn and
    /// the proportion that fails is exact whatever the interleaving.
    seen: AtomicU64,
}

impl FailRule {
    /// Fails the first, third, fifth, ... call to a path containing `path_contains`: half of
    /// them.
    pub fn every_other(path_contains: impl Into<String>) -> Self {
        Self::every_nth(path_contains, NonZeroU64::MIN.saturating_add(1))
    }

    /// Fails call 1, `every` + 1, 2 × `every` + 1, ... to a path containing `path_contains`
    /// (`every` = 1 fails all of them).
    pub fn every_nth(path_contains: impl Into<String>, every: NonZeroU64) -> Self {
        Self {
            path_contains: path_contains.into(),
            every,
            seen: AtomicU64::new(0),
        }
    }

    /// Whether the call to `path` arriving now fails.
    fn fails(&self, path: &str) -> bool {
        path.contains(&self.path_contains)
            && self
                .seen
                .fetch_add(1, Ordering::SeqCst)
                .is_multiple_of(self.every.get())
    }
}

/// What happened to the attempts counted under one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Attempts passed on to the upstream, whatever it answered.
    pub forwarded: u64,
    /// Attempts the proxy answered with UNAVAILABLE itself.
    pub failed: u64,
}

impl Attempts {
    /// Every attempt, forwarded or failed.
    pub fn total(self) -> u64 {
        self.forwarded + self.failed
    }
}

/// The attempts of one method path.
#[derive(Debug, Default)]
struct PathLedger {
    all: Attempts,
    /// Keyed by the `x-request-id` the attempt carried ("" when none): the retries of one call
    /// carry the id of the call they serve, so this tells calls from retries.
    by_request: HashMap<String, Attempts>,
}

/// What every connection's handler shares.
struct Shared {
    rule: FailRule,
    upstream: Channel,
    /// The upstream's `host:port`, written into each forwarded request's URI.
    authority: uri::Authority,
    ledger: Mutex<HashMap<String, PathLedger>>,
}

impl Shared {
    fn ledger(&self) -> std::sync::MutexGuard<'_, HashMap<String, PathLedger>> {
        // A poisoned lock only means a panic elsewhere mid-increment: the counts are still usable.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, path: &str, request_id: &str, failed: bool) {
        let mut ledger = self.ledger();
        let entry = ledger.entry(path.to_owned()).or_default();
        for attempts in [
            &mut entry.all,
            entry.by_request.entry(request_id.to_owned()).or_default(),
        ] {
            if failed {
                attempts.failed += 1;
            } else {
                attempts.forwarded += 1;
            }
        }
    }

    /// Fails the call or passes it on, as the rule says.
    async fn relay(self: Arc<Self>, request: Request<AxumBody>) -> Response<Body> {
        let path = request.uri().path().to_owned();
        let request_id = request
            .headers()
            .get(REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if self.rule.fails(&path) {
            self.record(&path, &request_id, true);
            return trailers_only(Status::unavailable("failed by the flaky proxy"));
        }
        self.record(&path, &request_id, false);
        self.forward(request).await.unwrap_or_else(trailers_only)
    }

    /// Sends the request to the upstream with its path, headers and streaming body unchanged,
    /// and returns the upstream's response, body and trailers included.
    async fn forward(&self, request: Request<AxumBody>) -> Result<Response<Body>, Status> {
        let (mut head, body) = request.into_parts();
        let mut target = head.uri.into_parts();
        target.scheme = Some(uri::Scheme::HTTP);
        target.authority = Some(self.authority.clone());
        if target.path_and_query.is_none() {
            target.path_and_query = Some(uri::PathAndQuery::from_static("/"));
        }
        head.uri = Uri::from_parts(target)
            .map_err(|error| Status::internal(format!("no upstream URI for the call: {error}")))?;
        let unreachable = |error: tonic::transport::Error| {
            Status::unavailable(format!("the upstream is unreachable: {error}"))
        };
        let mut upstream = self.upstream.clone();
        std::future::poll_fn(|cx| upstream.poll_ready(cx))
            .await
            .map_err(unreachable)?;
        upstream
            .call(Request::from_parts(head, Body::new(body)))
            .await
            .map_err(unreachable)
    }
}

/// A gRPC answer with no message: HTTP 200, `content-type: application/grpc` and the status in
/// the headers, the stream ended at once.
fn trailers_only(status: Status) -> Response<Body> {
    let (head, ()) = status.into_http::<()>().into_parts();
    Response::from_parts(head, Body::empty())
}

/// A gRPC proxy on 127.0.0.1 that fails the calls its [`FailRule`] picks and forwards the rest
/// to one upstream. It stops accepting calls when dropped.
pub struct FlakyProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Tells the server to stop: it closes its listener at once and lets open calls finish.
    stop: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for FlakyProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlakyProxy")
            .field("addr", &self.addr)
            .field("rule", &self.shared.rule)
            .finish_non_exhaustive()
    }
}

impl FlakyProxy {
    /// Starts a proxy on a free port in front of the gRPC server at `upstream`.
    ///
    /// # Errors
    /// When no local port can be bound.
    pub async fn start(upstream: SocketAddr, rule: FailRule) -> std::io::Result<Self> {
        let invalid = |error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error);
        let authority = uri::Authority::try_from(upstream.to_string())
            .map_err(|error| invalid(error.to_string()))?;
        let channel = Endpoint::from_shared(format!("http://{upstream}"))
            .map_err(|error| invalid(error.to_string()))?
            .connect_lazy();
        let shared = Arc::new(Shared {
            rule,
            upstream: channel,
            authority,
            ledger: Mutex::default(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // Every path goes to the one fallback: the proxy does not know the upstream's services.
        let handler = Arc::clone(&shared);
        let router = AxumRouter::new()
            .fallback(move |request: Request<AxumBody>| Arc::clone(&handler).relay(request));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_routes(Routes::from(router))
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                }),
        );
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
        })
    }

    /// Where the proxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's URL, for a service's `services.<name>.url` setting.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The attempts made on `path` (`/package.Service/Method`) so far.
    pub fn attempts(&self, path: &str) -> Attempts {
        self.shared
            .ledger()
            .get(path)
            .map_or_else(Attempts::default, |ledger| ledger.all)
    }

    /// The attempts made on `path` so far, by the `x-request-id` they carried ("" for none).
    pub fn attempts_by_request(&self, path: &str) -> HashMap<String, Attempts> {
        self.shared
            .ledger()
            .get(path)
            .map(|ledger| ledger.by_request.clone())
            .unwrap_or_default()
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tonic::Code;
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };

    use super::*;

    const CHECK: &str = "/grpc.health.v1.Health/Check";
    const WATCH: &str = "/grpc.health.v1.Health/Watch";

    /// A real gRPC server (the standard health service) on a free port.
    async fn upstream() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("a bound address");
        let (_, health) = tonic_health::server::health_reporter();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        addr
    }

    fn client(proxy: &FlakyProxy) -> HealthClient<Channel> {
        let channel = Endpoint::from_shared(proxy.url()).expect("a valid URL");
        HealthClient::new(channel.connect_lazy())
    }

    fn check(service: &str, request_id: &str) -> tonic::Request<HealthCheckRequest> {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: service.into(),
        });
        request
            .metadata_mut()
            .insert(REQUEST_ID, request_id.parse().expect("an ASCII request id"));
        request
    }

    #[tokio::test]
    async fn every_other_matching_call_fails_with_unavailable_and_the_rest_reach_the_upstream() {
        let proxy = FlakyProxy::start(upstream().await, FailRule::every_other("/Check"))
            .await
            .expect("the proxy starts");
        let mut health = client(&proxy);
        for request_id in ["r-1", "r-2"] {
            let failed = health
                .check(check("", request_id))
                .await
                .expect_err("the first of each pair fails");
            assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
            // The message is the proxy's own: the status was read from a gRPC answer, not
            // guessed from an HTTP error.
            assert_eq!(failed.message(), "failed by the flaky proxy");
            let answered = health
                .check(check("", request_id))
                .await
                .expect("the second of each pair reaches the upstream")
                .into_inner();
            assert_eq!(answered.status, ServingStatus::Serving as i32);
        }
        let all = proxy.attempts(CHECK);
        assert_eq!((all.forwarded, all.failed, all.total()), (2, 2, 4));
        let each = Attempts {
            forwarded: 1,
            failed: 1,
        };
        assert_eq!(
            proxy.attempts_by_request(CHECK),
            HashMap::from([("r-1".to_owned(), each), ("r-2".to_owned(), each)])
        );
        assert_eq!(proxy.attempts(WATCH), Attempts::default());
    }

    #[tokio::test]
    async fn other_paths_streams_and_upstream_errors_pass_through_unchanged() {
        let all_checks = FailRule::every_nth("/Check", NonZeroU64::MIN);
        let proxy = FlakyProxy::start(upstream().await, all_checks)
            .await
            .expect("the proxy starts");
        let mut health = client(&proxy);
        let mut stream = health
            .watch(HealthCheckRequest::default())
            .await
            .expect("the stream opens")
            .into_inner();
        let first = stream
            .message()
            .await
            .expect("the stream answers")
            .expect("a first message");
        assert_eq!(first.status, ServingStatus::Serving as i32);
        let refused = health
            .watch(HealthCheckRequest {
                service: "no.such.Service".into(),
            })
            .await
            .expect_err("the upstream refuses an unknown service");
        assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
        assert_eq!(refused.message(), "service not registered");
        assert_eq!(
            proxy.attempts(WATCH),
            Attempts {
                forwarded: 2,
                failed: 0
            }
        );
        let failed = health.check(check("", "r-3")).await.expect_err("every one");
        assert_eq!(failed.code(), Code::Unavailable);
    }

    #[tokio::test]
    async fn a_dropped_proxy_stops_accepting_connections() {
        let proxy = FlakyProxy::start(upstream().await, FailRule::every_other("/Check"))
            .await
            .expect("the proxy starts");
        let addr = proxy.addr();
        tokio::net::TcpStream::connect(addr)
            .await
            .expect("the proxy accepts connections while it lives");
        drop(proxy);
        crate::eventually("the port refuses", Duration::from_secs(5), || async {
            tokio::net::TcpStream::connect(addr).await.err()
        })
        .await;
    }
}
