//! Channels for calls between services.
//!
//! [`Propagate`] wraps a channel so that every call a handler makes carries what the call it is
//! serving carried: the request id, the W3C trace context, and a deadline no later than the
//! caller's. It authenticates as the calling service with a token from the auth service
//! ([`ServiceCredentials`]), fetched once and renewed before it expires.
//!
//! Every call through [`Propagate`] (and the credentials' own calls to auth) is timed in
//! `rpc.client.call.duration`, and [`Resilient`] counts its retries and its breaker's changes
//! ([`crate::metrics::ClientMetrics`]); [`Metered`] times the calls of any other channel.
//!
//! [`service_channel`] and [`mesh_channel`] open the channels of the mesh as the settings say:
//! with `mtls.enabled`, every connection presents this process's certificate and accepts only a
//! server whose certificate names the service called (see [`crate::mtls`]).

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use agora_contracts::agora::auth::v1::{
    IssueServiceTokenRequest, auth_service_client::AuthServiceClient,
};
use anyhow::Context as _;
use futures::future::BoxFuture;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use tonic::{
    Status,
    body::Body,
    transport::{Channel, ClientTlsConfig, Endpoint, channel::Change},
};

mod breaker;
mod budget;
mod retry;

pub use breaker::{BreakerSettings, CircuitBreaker, is_upstream_failure};
pub use budget::RetryBudget;
pub use retry::{Idempotency, Resilient, RetrySettings};

use crate::context::{
    CallContext, GRPC_TIMEOUT, REQUEST_ID, format_grpc_timeout, inject_trace_context,
    new_request_id, parse_grpc_timeout,
};
pub use crate::metrics::Metered;
use crate::{
    config::{ServiceKind, Settings},
    metrics::ClientMetrics,
    mtls::TlsFiles,
};

/// A channel to `url` that connects on first use and reconnects by itself, so a service starts
/// even when its upstreams are still starting.
///
/// A `dns:///host:port` URL balances calls over every address the name resolves to, following
/// DNS as it changes (headless Services in Kubernetes; see [`crate::discovery`]); an `http://`
/// URL keeps one connection.
///
/// # Errors
/// A malformed URL.
pub fn lazy_channel(url: &str) -> anyhow::Result<Channel> {
    pooled_channel(url, 1)
}

/// [`lazy_channel`] with `connections` HTTP/2 connections to each address (at least one), calls
/// going to the least busy. A connection that goes away (its peer's GOAWAY, a reset) fails only
/// the calls in flight on it; it is opened again before the next call is sent on it, and the
/// others carry on. The edge uses this: one caller's call that makes a service drop its
/// connection must not fail every other caller's calls.
///
/// # Errors
/// A malformed URL.
pub fn pooled_channel(url: &str, connections: usize) -> anyhow::Result<Channel> {
    let connections = connections.max(1);
    if let Some(target) = crate::discovery::DnsTarget::parse(url)? {
        return Ok(crate::discovery::balanced_channel(
            target,
            |addr| upstream_endpoint(&format!("http://{addr}")),
            std::sync::Arc::new(crate::discovery::SystemResolver),
            crate::discovery::DEFAULT_REFRESH,
            connections,
        ));
    }
    let endpoint = upstream_endpoint(url)?;
    if connections == 1 {
        return Ok(endpoint.connect_lazy());
    }
    let (channel, changes) = Channel::balance_channel::<usize>(connections);
    for slot in 0..connections {
        changes
            .try_send(tonic::transport::channel::Change::Insert(
                slot,
                endpoint.clone(),
            ))
            .map_err(|e| anyhow::anyhow!("pooling connections to {url}: {e}"))?;
    }
    Ok(channel)
}

/// A channel to service `kind`, where `settings` say it is ([`lazy_channel`]), over mTLS when
/// `mtls.enabled`: the server must present a certificate of that service.
///
/// # Errors
/// A malformed URL; with mTLS, certificate files that do not load.
pub fn service_channel(settings: &Settings, kind: ServiceKind) -> anyhow::Result<Channel> {
    mesh_channel(settings, &settings.service_url(kind), 1, Some(kind))
}

/// A channel to `url` inside the mesh, with `connections` connections to each address
/// ([`pooled_channel`]), over mTLS when `mtls.enabled`: each connection presents this process's
/// certificate and accepts a server whose certificate chains to the CA and names service
/// `server` (any service of the trust domain when `None`). Certificates rotated on disk are
/// used by the connections opened after they are reloaded; open ones carry on.
///
/// # Errors
/// A malformed URL; with mTLS, certificate files that do not load.
pub fn mesh_channel(
    settings: &Settings,
    url: &str,
    connections: usize,
    server: Option<ServiceKind>,
) -> anyhow::Result<Channel> {
    if !settings.mtls.enabled {
        return pooled_channel(url, connections);
    }
    let files = TlsFiles::load(&settings.mtls)?;
    tls_channel(url, connections, files, server.map(ServiceKind::name))
}

/// [`pooled_channel`] over mTLS with `files`, whose endpoints are built again each time the
/// files are reloaded.
fn tls_channel(
    url: &str,
    connections: usize,
    files: TlsFiles,
    server: Option<&str>,
) -> anyhow::Result<Channel> {
    let connections = connections.max(1);
    let verifier = files.server_verifier(server);
    let endpoint = {
        let files = files.clone();
        move |url: &str| -> anyhow::Result<Endpoint> {
            let tls = ClientTlsConfig::new()
                .identity(files.identity())
                // The server's ALPN says h2; gRPC needs nothing else.
                .assume_http2(true);
            upstream_endpoint(&https(url))?
                .tls_config_with_verifier(tls, Arc::clone(&verifier))
                .with_context(|| format!("TLS for {url}"))
        }
    };
    if let Some(target) = crate::discovery::DnsTarget::parse(url)? {
        return Ok(crate::discovery::renewing_balanced_channel(
            target,
            move |addr| endpoint(&format!("https://{addr}")),
            Arc::new(crate::discovery::SystemResolver),
            crate::discovery::DEFAULT_REFRESH,
            connections,
            Some(files),
        ));
    }
    // Checks the URL now, so a bad one stops start-up.
    let first = endpoint(url)?;
    let (channel, changes) = Channel::balance_channel::<usize>(connections);
    let url = url.to_owned();
    let mut renewals = Some(files);
    tokio::spawn(async move {
        let mut next = Some(first);
        loop {
            if let Some(endpoint) = next.take() {
                for slot in 0..connections {
                    if changes
                        .send(Change::Insert(slot, endpoint.clone()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            tokio::select! {
                () = changes.closed() => return,
                renewed = crate::discovery::renewed(&mut renewals) => {
                    if !renewed {
                        renewals = None;
                        continue;
                    }
                    match endpoint(&url) {
                        Ok(endpoint) => next = Some(endpoint),
                        Err(error) => tracing::warn!(%url, "keeping the old endpoint: {error:#}"),
                    }
                }
            }
        }
    });
    Ok(channel)
}

/// `url` with the `https` scheme, which is what makes tonic speak TLS on a connection.
fn https(url: &str) -> String {
    match url.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_owned(),
    }
}

/// How every connection to an upstream is set up.
fn upstream_endpoint(url: &str) -> anyhow::Result<Endpoint> {
    Ok(Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("invalid upstream URL {url:?}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        // Accept answers with as much metadata as a service accepts calls with.
        .http2_max_header_list_size(crate::server::MAX_HEADER_LIST_BYTES))
}

/// A service's own credentials, turned into short-lived access tokens by the auth service.
pub struct ServiceCredentials {
    auth: AuthServiceClient<Metered<Channel>>,
    client_id: String,
    secret: SecretString,
    /// The last token and when it expires: every internal call needs one, so it is reused until
    /// shortly before it expires.
    token: tokio::sync::Mutex<Option<(String, SystemTime)>>,
}

impl std::fmt::Debug for ServiceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// How long before expiry a token is renewed.
const RENEW_BEFORE: Duration = Duration::from_secs(30);

impl ServiceCredentials {
    /// Credentials of `client_id`, exchanged at the auth service behind `auth`.
    pub fn new(auth: Channel, client_id: impl Into<String>, secret: SecretString) -> Self {
        Self {
            auth: AuthServiceClient::new(Metered::new(auth)),
            client_id: client_id.into(),
            secret,
            token: tokio::sync::Mutex::default(),
        }
    }

    /// A valid access token for this service.
    ///
    /// # Errors
    /// The auth service refused the credentials or could not be reached.
    pub async fn token(&self) -> Result<String, Status> {
        let mut cached = self.token.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && expires
                .duration_since(SystemTime::now())
                .is_ok_and(|left| left > RENEW_BEFORE)
        {
            return Ok(token.clone());
        }
        let mut request = tonic::Request::new(IssueServiceTokenRequest {
            client_id: self.client_id.clone(),
            client_secret: self.secret.expose_secret().to_owned(),
        });
        request.set_timeout(Duration::from_secs(5));
        let response = self
            .auth
            .clone()
            .issue_service_token(request)
            .await?
            .into_inner();
        let expires = response
            .expire_time
            .and_then(|t| SystemTime::try_from(t).ok())
            .unwrap_or_else(SystemTime::now);
        *cached = Some((response.access_token.clone(), expires));
        Ok(response.access_token)
    }
}

/// Wraps a channel with propagation and, when given, the service's credentials.
#[derive(Clone, Debug)]
pub struct Propagate<S> {
    inner: S,
    credentials: Option<Arc<ServiceCredentials>>,
    default_timeout: Duration,
    /// Times every call, from its token to the end of its answer.
    metrics: ClientMetrics,
}

impl<S> Propagate<S> {
    /// Propagates context over `inner`; calls without a caller deadline get `default_timeout`.
    pub fn new(
        inner: S,
        credentials: Option<Arc<ServiceCredentials>>,
        default_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            credentials,
            default_timeout,
            metrics: ClientMetrics::global().clone(),
        }
    }

    /// [`Propagate::new`], its calls timed in `metrics`.
    pub fn with_metrics(mut self, metrics: ClientMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Stamps `request` with the caller's request id, trace context and deadline, and answers
    /// how long the call may take: the earliest of the caller's deadline, the one set on this
    /// request and the default; DEADLINE_EXCEEDED when the caller's has passed.
    fn prepare(&self, request: &mut http::Request<Body>) -> Result<Duration, Status> {
        let call = CallContext::current();
        let headers = request.headers_mut();

        let request_id = call
            .as_ref()
            .map_or_else(new_request_id, |call| call.request_id.clone());
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert(REQUEST_ID, value);
        }
        inject_trace_context(headers);

        let own = headers
            .get(GRPC_TIMEOUT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let timeout = [call.as_ref().and_then(CallContext::remaining), own]
            .into_iter()
            .flatten()
            .fold(self.default_timeout, Duration::min);
        if timeout.is_zero() {
            return Err(Status::deadline_exceeded(
                "the caller's deadline has passed",
            ));
        }
        if let Ok(value) = HeaderValue::from_str(&format_grpc_timeout(timeout)) {
            headers.insert(GRPC_TIMEOUT, value);
        }
        Ok(timeout)
    }
}

impl<S> tower::Service<http::Request<Body>> for Propagate<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = tower::BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let credentials = self.credentials.clone();
        let timeout = self.prepare(&mut request);
        let call = async move {
            let timeout = timeout?;
            if let Some(credentials) = credentials {
                let token = credentials.token().await.map_err(|status| {
                    Status::unavailable(format!(
                        "cannot obtain a service token: {}",
                        status.message()
                    ))
                })?;
                let value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| Status::internal("the service token is not a header value"))?;
                request
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, value);
            }
            tokio::time::timeout(timeout, inner.call(request))
                .await
                .map_err(|_| Status::deadline_exceeded("upstream deadline exceeded"))?
                .map_err(Into::into)
        };
        Box::pin(self.metrics.time(&path, call))
    }
}

#[cfg(test)]
mod tests;
