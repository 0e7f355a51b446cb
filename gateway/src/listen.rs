//! The edge's HTTP server: HTTP/1.1 and h2c on one port, served by hyper with the limits of
//! `gateway.limits` on what one connection may make it buffer.
//!
//! hyper refuses on its own (a bare 431) only what is well past the edge's limits; requests
//! between the two reach [`crate::limits::enforce_headers`], which answers with a status body.

use std::{net::SocketAddr, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::limits::LimitSettings;

/// The smallest read buffer hyper accepts for HTTP/1.1.
const MIN_HTTP1_BUFFER: usize = 8192;

/// Serves `router` on `listener` until `stopped` resolves, then closes the listener, asks every
/// connection to finish its requests in flight and returns once they have.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: LimitSettings,
    stopped: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // The request line and headers are read into this buffer: it bounds them.
        .max_buf_size(limits.server_header_list_bytes().max(MIN_HTTP1_BUFFER))
        .max_headers(limits.server_max_headers());
    builder
        .http2()
        // Advertised to clients, and enforced on what they send.
        .max_header_list_size(u32::try_from(limits.server_header_list_bytes()).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    let mut stopped = std::pin::pin!(stopped);
    loop {
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
        let service = router
            .clone()
            .map_request(move |mut request: http::Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            });
        let connection = builder
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, error = %error, "a client connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
