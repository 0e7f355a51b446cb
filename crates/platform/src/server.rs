//! The one server shape every service uses.
//!
//! [`run`] binds nothing itself (the caller passes a listener, port 0 in tests) and serves, on one
//! port: the service, `grpc.health.v1.Health` and server reflection v1 and v1alpha, behind the
//! standard layers. Health says NOT_SERVING until the service's store is ready, and again from the
//! shutdown signal while in-flight calls drain. Every call is recorded in
//! `rpc.server.call.duration` ([`crate::metrics`]), and every call shed over the concurrency
//! limit in `agora.server.shed`.
//!
//! With `mtls.enabled` it accepts only TLS connections whose client certificate chains to the
//! CA ([`crate::mtls`]), with the certificate reloaded from its files as they change; health
//! alone may then also be served in plaintext on `mtls.health_port`, for probes that have no
//! certificate.

use std::{
    convert::Infallible,
    sync::{Arc, OnceLock},
    time::Duration,
};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tonic::{body::Body, server::NamedService, transport::Server};
use tonic_health::ServingStatus;
use tower::{Service, ServiceBuilder};

use crate::{access::AccessLayer, config::Settings, mtls::TlsFiles};

mod call;
use call::{AbortOnDrop, CallService, Shed, Starting};

/// The health service name under which the whole server reports (`""` per the health protocol).
const WHOLE_SERVER: &str = "";

/// The largest HTTP/2 header list a service accepts, in bytes as HTTP/2 counts them (each field's
/// name and value plus 32). Larger blocks are refused by the connection, not the call: a peer
/// that keeps sending one gets the whole connection closed (GOAWAY, ENHANCE_YOUR_CALM), so the
/// edge bounds what it forwards well below this (`gateway.limits`).
pub const MAX_HEADER_LIST_BYTES: u32 = 32 * 1024;

/// How long a connection may stay quiet before the server pings it: under the 60 s or more after
/// which load balancers and NATs commonly drop an idle flow.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered before the connection is closed as dead.
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `service` on `listener` until `shutdown` resolves, then drains.
///
/// `service` is a future that opens the store (migrations included) and builds the handlers;
/// until it resolves, health answers NOT_SERVING and the service's methods UNAVAILABLE. The
/// `server` and `mtls` sections of `platform` say how.
///
/// # Errors
/// The service failed to start, the certificate files did not load, the health port could not
/// be bound, or the server failed.
pub async fn run<S, F>(
    listener: TcpListener,
    platform: &Settings,
    access: AccessLayer,
    service: F,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()>
where
    S: NamedService
        + Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    F: Future<Output = anyhow::Result<S>>,
{
    let settings = &platform.server;
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    let tls = if platform.mtls.enabled {
        Some(TlsFiles::load(&platform.mtls)?)
    } else {
        platform.mtls.validate()?;
        None
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    set_health::<S>(&health, ServingStatus::NotServing).await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(agora_contracts::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(S::NAME)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection")
    };
    let reflection_v1 = reflection().build_v1().context("building reflection v1")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building reflection v1alpha")?;

    let slot = Arc::new(OnceLock::new());
    let meter = crate::metrics::Metrics::global().meter();
    let shed = Shed::new(&meter, S::NAME);
    let metrics = crate::metrics::RpcMetricsLayer::new(
        &meter,
        &[
            S::NAME,
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ],
    );
    let layers = ServiceBuilder::new()
        // Time every call to the end of its body, and count it by method and status (shed
        // and refused calls included).
        .layer(metrics)
        // Give every call a request id, its caller's deadline and a trace span, and answer the
        // errors of the layers below as gRPC statuses (counting the calls shed).
        .layer(tower::layer::layer_fn(move |inner| CallService {
            inner,
            not_ready: None,
            shed: shed.clone(),
        }))
        // Refuse calls past the limit at once (UNAVAILABLE) rather than queue them into timeouts.
        .load_shed()
        // Cap the calls this process serves at once, across all connections.
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            settings.concurrency_limit,
        ))
        // Enforce the method's access rule from the contracts before any handler runs.
        .layer(access)
        .into_inner();

    let health_listener = match (&tls, platform.mtls.health_port) {
        (Some(_), Some(port)) => Some(
            TcpListener::bind((platform.host, port))
                .await
                .with_context(|| format!("binding mtls.health_port {port}"))?,
        ),
        _ => None,
    };

    // Says stop to the servers: the service's and, with mTLS, the plaintext health port's.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stop_signal = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let router = Server::builder()
        // Bound every call, even when the client sets no deadline.
        .timeout(settings.request_timeout)
        // One stated limit on a call's headers, which the edge stays under.
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        // Ping quiet connections: keeps long streams (WatchOrder) open through middleboxes
        // that drop idle flows, and closes a connection whose client vanished without a
        // word, which ends its streams and frees what they hold.
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .layer(layers)
        .add_service(health_service.clone())
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(Starting {
            slot: Arc::clone(&slot),
        });
    let mut server =
        match &tls {
            None => tokio::spawn(router.serve_with_incoming_shutdown(
                // Small replies go out at once: with Nagle's algorithm on, a reply can wait
                // ~40 ms for the client's delayed ACK.
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                stop_signal(stopped.clone()),
            )),
            Some(files) => tokio::spawn(router.serve_with_incoming_shutdown(
                files.incoming(listener),
                stop_signal(stopped.clone()),
            )),
        };
    let _health_port = health_listener.map(|health_listener| {
        AbortOnDrop(tokio::spawn(
            Server::builder()
                .timeout(settings.request_timeout)
                .add_service(health_service)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(health_listener),
                    stop_signal(stopped),
                ),
        ))
    });

    let mut shutdown = std::pin::pin!(shutdown);
    // Whether the signal came while starting: then it must not be awaited a second time.
    let mut stopping = false;
    tokio::select! {
        ready = service => {
            let ready = ready.with_context(|| format!("starting {}", S::NAME));
            match ready {
                Ok(service) => {
                    let _ = slot.set(service);
                    set_health::<S>(&health, ServingStatus::Serving).await;
                    tracing::info!(service = S::NAME, %addr, mtls = tls.is_some(), "serving");
                }
                Err(error) => {
                    stop.send_replace(true);
                    let _ = server.await;
                    return Err(error);
                }
            }
        }
        () = &mut shutdown => {
            tracing::info!(service = S::NAME, "shutdown requested while starting");
            stopping = true;
        }
        result = &mut server => {
            return result.context("server task")?.context("serving");
        }
    }

    if !stopping {
        tokio::select! {
            () = &mut shutdown => {}
            result = &mut server => {
                return result.context("server task")?.context("serving");
            }
        }
    }

    // Drain: say NOT_SERVING first so probes and balancers stop routing here, keep serving for
    // the drain delay, then stop accepting and give in-flight calls the drain timeout.
    tracing::info!(service = S::NAME, "draining");
    set_health::<S>(&health, ServingStatus::NotServing).await;
    tokio::time::sleep(settings.drain_delay).await;
    stop.send_replace(true);
    match tokio::time::timeout(settings.drain_timeout, &mut server).await {
        Ok(result) => result.context("server task")?.context("serving")?,
        Err(_) => {
            tracing::warn!(
                service = S::NAME,
                "calls still running after the drain timeout"
            );
            server.abort();
        }
    }
    tracing::info!(service = S::NAME, "stopped");
    Ok(())
}

/// Resolves on SIGTERM or ctrl-c, whichever comes first.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Reports `status` for the service and for the whole server (`""`), which probes ask about.
async fn set_health<S: NamedService>(
    health: &tonic_health::server::HealthReporter,
    status: ServingStatus,
) {
    health.set_service_status(S::NAME, status).await;
    health.set_service_status(WHOLE_SERVER, status).await;
}

#[cfg(test)]
mod tests;
