//! The edge's HTTP server: HTTP/1.1 and h2c on one port, served by hyper with bounds on what a
//! client can make the edge hold: the size of a request head (`gateway.limits`), and, from
//! `gateway.connections`, how long a head may take to arrive, how long a connection may sit idle,
//! how soon a dead HTTP/2 peer is noticed, and how many connections are open at once.
//!
//! hyper refuses on its own (a bare 431) only what is well past the edge's limits; requests
//! between the two reach [`crate::limits::enforce_headers`], which answers with a status body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{
    body::Body,
    extract::{ConnectInfo, Request},
    response::Response,
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::limits::{LimitSettings, ensure_above_zero};

/// The smallest read buffer hyper accepts for HTTP/1.1.
const MIN_HTTP1_BUFFER: usize = 8192;

/// `[gateway.connections]`: how long and how many.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionSettings {
    /// The longest a client may take to send a request's head (a new connection: its first
    /// one; HTTP/1.1: each one, and so the longest it may wait between requests).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How often an HTTP/2 client is pinged, so a peer that vanished is noticed.
    #[serde(with = "humantime_serde")]
    pub keep_alive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    #[serde(with = "humantime_serde")]
    pub keep_alive_timeout: Duration,
    /// The most client connections open at once; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            keep_alive_interval: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(10),
            max_connections: 4096,
        }
    }
}

impl ConnectionSettings {
    /// Checks every bound is set.
    ///
    /// # Errors
    /// A zero duration or connection count.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure_above_zero(
            "gateway.connections",
            [
                ("header_read_timeout", self.header_read_timeout),
                ("idle_timeout", self.idle_timeout),
                ("keep_alive_interval", self.keep_alive_interval),
                ("keep_alive_timeout", self.keep_alive_timeout),
            ],
        )?;
        ensure_above_zero(
            "gateway.connections",
            [("max_connections", self.max_connections)],
        )
    }
}

/// What one connection is doing, for its idle watch.
struct Activity {
    /// Requests whose answer is still being sent.
    in_flight: AtomicUsize,
    /// Requests received so far.
    received: AtomicU64,
    /// Since when nothing has been in flight (or since the connection opened).
    idle_since: Mutex<Instant>,
    /// Wakes the idle watch when a request starts or the last one ends.
    changed: Notify,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            received: AtomicU64::new(0),
            idle_since: Mutex::new(Instant::now()),
            changed: Notify::new(),
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// When the connection will have been idle for `limit`, if nothing is in flight now.
    fn idle_until(&self, limit: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = *self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        Some(since + limit)
    }
}

/// An answer's body, keeping its request in flight until it is sent or dropped. Its size is the
/// body's, so a complete answer goes out with a `Content-Length`, not chunked.
struct WhileSent {
    body: Body,
    in_flight: InFlight,
}

impl http_body::Body for WhileSent {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let _ = &self.in_flight;
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// One request in flight; dropped once its answer is sent (or abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            self.0.changed.notify_one();
        }
    }
}

/// Serves `router` on `listener` until `stopped` resolves, then closes the listener, asks every
/// connection to finish its requests in flight and returns once they have.
pub(crate) async fn serve<S: Handler>(
    listener: TcpListener,
    router: S,
    limits: LimitSettings,
    connections: ConnectionSettings,
    stopped: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // A head that trickles in is cut off (the first one is watched below).
        .header_read_timeout(connections.header_read_timeout)
        // The request line and headers are read into this buffer: it bounds them.
        .max_buf_size(limits.server_header_list_bytes().max(MIN_HTTP1_BUFFER))
        .max_headers(limits.server_max_headers());
    builder
        .http2()
        .timer(TokioTimer::new())
        // Notice peers that vanished without closing, and close their connections.
        .keep_alive_interval(connections.keep_alive_interval)
        .keep_alive_timeout(connections.keep_alive_timeout)
        // Advertised to clients, and enforced on what they send.
        .max_header_list_size(u32::try_from(limits.server_header_list_bytes()).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(connections.max_connections));
    let (shutdown, shutting_down) = watch::channel(false);
    // Each connection holds a sender; all dropped means all connections are done.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let mut stopped = std::pin::pin!(stopped);
    loop {
        let slot = tokio::select! {
            () = &mut stopped => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            () = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, typically: give the process a moment to close some.
                    tracing::warn!(%error, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Small answers go out at once rather than waiting on Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let connection = Connection {
            builder: builder.clone(),
            router: router.clone(),
            settings: connections,
            peer,
        };
        let shutting_down = shutting_down.clone();
        let open = open.clone();
        tokio::spawn(async move {
            connection.serve(tcp, shutting_down).await;
            drop((slot, open));
        });
    }
    drop(listener);
    let _ = shutdown.send(true);
    drop(open);
    let _ = all_closed.recv().await;
}

/// What serves each request: infallible, and shared by every connection.
pub(crate) trait Handler:
    tower::Service<Request, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> Handler for S where
    S: tower::Service<Request, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// One client connection and what it needs.
struct Connection<S> {
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: S,
    settings: ConnectionSettings,
    peer: SocketAddr,
}

impl<S: Handler> Connection<S> {
    async fn serve(self, tcp: tokio::net::TcpStream, mut shutting_down: watch::Receiver<bool>) {
        let Self {
            builder,
            router,
            settings,
            peer,
        } = self;
        let activity = Activity::new();
        let watched = activity.clone();
        let service = tower::service_fn(move |mut request: http::Request<Incoming>| {
            let router = router.clone();
            let in_flight = watched.begin();
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            async move {
                let Ok(response) = router.oneshot(request.map(Body::new)).await;
                // The request is in flight until its answer's body is sent or dropped.
                Ok::<_, Infallible>(response.map(|body| Body::new(WhileSent { body, in_flight })))
            }
        });
        let connection =
            builder.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
        let mut connection = std::pin::pin!(connection);
        let mut closing = false;
        loop {
            // Before its first request a connection gets `header_read_timeout` (hyper's own
            // timer starts only once it knows the protocol, which a trickling client delays).
            let first = activity.received.load(Ordering::Relaxed) == 0;
            let limit = if first {
                settings.header_read_timeout
            } else {
                settings.idle_timeout
            };
            let idle_until = activity
                .idle_until(limit)
                .unwrap_or_else(|| Instant::now() + limit);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "a client connection ended with an error");
                    }
                    return;
                }
                () = activity.changed.notified(), if !closing => {}
                () = tokio::time::sleep_until(idle_until), if !closing => {
                    let still_idle = activity
                        .idle_until(limit)
                        .is_some_and(|until| until <= Instant::now());
                    if !still_idle {
                        continue;
                    }
                    if first {
                        tracing::debug!(%peer, "no request head within the header read timeout");
                        return;
                    }
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                changed = shutting_down.changed(), if !closing => {
                    let _ = changed;
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_a_zero_bound_is_refused_naming_it() {
        ConnectionSettings::default()
            .validate()
            .expect("the defaults are valid");
        let unbounded = ConnectionSettings {
            header_read_timeout: Duration::ZERO,
            ..ConnectionSettings::default()
        };
        let error = unbounded.validate().expect_err("a zero timeout");
        assert!(error.to_string().contains("header_read_timeout"), "{error}");
    }

    #[tokio::test]
    async fn a_connection_is_idle_only_once_its_last_answer_is_done() {
        let activity = Activity::new();
        assert!(activity.idle_until(Duration::from_secs(1)).is_some());
        let first = activity.begin();
        let second = activity.begin();
        assert_eq!(activity.idle_until(Duration::from_secs(1)), None);
        drop(first);
        assert_eq!(activity.idle_until(Duration::from_secs(1)), None);
        let before = Instant::now();
        drop(second);
        let until = activity
            .idle_until(Duration::from_secs(1))
            .expect("idle again");
        assert!(until >= before + Duration::from_secs(1));
    }
}
