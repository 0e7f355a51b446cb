//! The edge as a server: its `[gateway]` settings, the descriptors it routes (Agora's contracts,
//! plus those of any upstream named in `gateway.upstreams`, read from its reflection service), the
//! edge built from them ([`crate::edge`]), and serving it until shutdown with a drain.

use std::{collections::HashMap, sync::Arc, time::Duration};

use agora_platform::{
    cache::Cache,
    config::{Config, ServiceKind},
    metrics::Metrics,
};
use anyhow::Context as _;
use prost_reflect::DescriptorPool;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::{
    app::Gateway,
    auth::EdgeAuth,
    client_address::TrustedProxies,
    console::{Console, ConsoleSettings},
    cors::{self, CorsSettings},
    discover,
    edge::{EdgeService, Steps},
    grpc_proxy::GrpcProxy,
    health::{self, Health},
    limits::LimitSettings,
    listen::ConnectionSettings,
    openapi,
    ratelimit::{RateLimitSettings, RateLimiter},
    routes::Routes,
    rules,
    upstream::Upstream,
};

/// The port the edge listens on by default.
pub const DEFAULT_PORT: u16 = 8080;

/// `[gateway]`: where the edge listens, how long it waits, and its layers' settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// The HTTP port (HTTP/1.1 and h2c on one port).
    pub port: u16,
    /// The longest a unary upstream call may take; a client's shorter `Grpc-Timeout` wins.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// HTTP/2 connections the edge keeps to each upstream address (1 to 64). A connection that
    /// goes away fails only the calls in flight on it, so more connections mean fewer callers
    /// hurt by one bad connection, at a little more memory and fewer calls batched per write.
    pub upstream_connections: usize,
    /// How often each upstream's health is checked in the background (the probes report the
    /// last check; calls to an upstream that did not answer it are refused at once).
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// How long one health check waits for an upstream's answer before counting it unreachable.
    /// A service that is ready answers well within the 1 s Kubernetes gives its own probes.
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
    /// Prefix of the edge's keys in Redis (rate-limit counters), so deployments and tests
    /// sharing one Redis stay apart.
    pub cache_prefix: String,
    /// `[gateway.cors]`.
    pub cors: CorsSettings,
    /// `[gateway.rate_limit]`.
    pub rate_limit: RateLimitSettings,
    /// `[gateway.limits]`.
    pub limits: LimitSettings,
    /// `[gateway.connections]`.
    pub connections: ConnectionSettings,
    /// Peers (load balancers in front of the edge) whose `X-Forwarded-For` and `Forwarded` the
    /// edge believes; from any other peer they are dropped. None by default.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Services outside Agora's contracts (in any language) that join the edge: their
    /// descriptors, HTTP rules included, are read from their reflection service at start-up.
    pub upstreams: Vec<ReflectedUpstream>,
    /// `[gateway.console]`.
    pub console: ConsoleSettings,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            request_timeout: Duration::from_secs(15),
            upstream_connections: 4,
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(1),
            cache_prefix: "agora:gateway:".into(),
            cors: CorsSettings::default(),
            rate_limit: RateLimitSettings::default(),
            limits: LimitSettings::default(),
            connections: ConnectionSettings::default(),
            trusted_proxies: Vec::new(),
            upstreams: Vec::new(),
            console: ConsoleSettings::default(),
        }
    }
}

/// `[[gateway.upstreams]]`: one server whose services the edge routes by its reflection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReflectedUpstream {
    /// Where it is (`http://host:port`, or `dns:///host:port` to balance over every address).
    pub url: String,
    /// How long start-up keeps asking for its descriptors before giving up (it may be starting
    /// at the same time as the edge).
    #[serde(default = "default_discover_timeout", with = "humantime_serde")]
    pub discover_timeout: Duration,
}

fn default_discover_timeout() -> Duration {
    Duration::from_secs(30)
}

/// The edge as a service: every request's steps ([`crate::edge`]) inside CORS, timed.
pub type EdgeApp = crate::metrics::EdgeMetrics<tower_http::cors::Cors<EdgeService>>;

/// The edge, built and ready to serve.
#[derive(Debug)]
pub struct Edge {
    /// Every route: REST, gRPC passthrough, probes and documents, with every check.
    pub service: EdgeApp,
    /// The probes' state (set to draining on shutdown).
    pub health: Health,
    /// The settings it was built from.
    pub settings: GatewaySettings,
    /// The gRPC services it routes, by full name.
    pub services: Vec<String>,
}

/// Builds the edge from `config`: Agora's five services where the settings say, plus every
/// reflected upstream; routes, auth, rate limits, CORS, probes and the OpenAPI document.
///
/// # Errors
/// A bad setting, a reflected upstream that did not answer in time or conflicts with the
/// contracts, or HTTP rules that do not form a valid route table.
pub async fn build(config: &Config) -> anyhow::Result<Edge> {
    let settings: GatewaySettings = config.section("gateway")?;
    settings.limits.validate()?;
    settings.connections.validate()?;
    anyhow::ensure!(
        (1..=64).contains(&settings.upstream_connections),
        "gateway.upstream_connections must be 1 to 64, not {}",
        settings.upstream_connections
    );
    // Channels of the mesh (over mTLS when `mtls.enabled`; `server` names the service expected).
    let pooled = |url: &str, server| {
        agora_platform::client::mesh_channel(
            &config.settings,
            url,
            settings.upstream_connections,
            server,
        )
    };
    for (name, value) in [
        ("probe_interval", settings.probe_interval),
        ("probe_timeout", settings.probe_timeout),
    ] {
        anyhow::ensure!(!value.is_zero(), "gateway.{name} must be longer than zero");
    }
    anyhow::ensure!(
        !settings.rate_limit.trust_forwarded_for || !settings.trusted_proxies.is_empty(),
        "gateway.rate_limit.trust_forwarded_for believes any client's X-Forwarded-For; name the \
         proxies in front of the edge in gateway.trusted_proxies instead"
    );
    let mut pool = DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET)
        .context("decoding the contracts' descriptors")?;
    let mut upstreams = HashMap::new();
    let mut probed = Vec::new();
    for kind in ServiceKind::ALL {
        let url = config.settings.service_url(kind);
        let channel =
            pooled(&url, Some(kind)).with_context(|| format!("services.{}.url", kind.name()))?;
        let service = kind.grpc_name();
        upstreams.insert(service.to_owned(), Upstream::from_channel(channel.clone()));
        probed.push(health::Upstream {
            name: kind.name().to_owned(),
            service: service.to_owned(),
            channel,
        });
    }
    for (index, extra) in settings.upstreams.iter().enumerate() {
        let channel =
            pooled(&extra.url, None).with_context(|| format!("gateway.upstreams[{index}].url"))?;
        let found = discover_patiently(channel.clone(), &extra.url, extra.discover_timeout).await?;
        discover::add_to_pool(&mut pool, &found.files)
            .with_context(|| format!("adding the descriptors of {}", extra.url))?;
        for service in &found.services {
            anyhow::ensure!(
                !upstreams.contains_key(service),
                "{} serves {service}, which another upstream already serves",
                extra.url
            );
            upstreams.insert(service.clone(), Upstream::from_channel(channel.clone()));
            probed.push(health::Upstream {
                name: service.clone(),
                service: service.clone(),
                channel: channel.clone(),
            });
        }
        tracing::info!(url = %extra.url, services = ?found.services, "routing a reflected upstream");
    }

    let routes = Routes::build(&pool).context("building the routes from the HTTP rules")?;
    let bindings = rules::bindings(&pool)?;
    let document = openapi::document(&pool, &bindings);
    let mut services: Vec<String> = upstreams.keys().cloned().collect();
    services.sort();

    let counters = Cache::from_settings(&config.settings, settings.cache_prefix.clone()).await?;
    let limiter = RateLimiter::new(counters, settings.rate_limit.clone());
    let edge_auth = EdgeAuth::from_settings(&config.settings, pool.clone())?;
    let proxy = GrpcProxy::new(upstreams.clone(), &pool)?;
    let health = Health::new(
        probed,
        health::Timing {
            interval: settings.probe_interval,
            timeout: settings.probe_timeout,
        },
    );
    let cors = cors::layer(&settings.cors)?;
    let gateway = Arc::new(Gateway {
        routes,
        upstreams,
        timeout: settings.request_timeout,
        body_limit: settings.limits.max_body_bytes,
    });

    let console = Console::new(&settings.console, edge_auth.clone(), health.clone())?;
    let beside = health
        .router()
        .merge(openapi::router(document))
        .merge(console.router());
    let service = tower::Layer::layer(
        &cors,
        EdgeService::new(Steps {
            limits: settings.limits,
            trusted: TrustedProxies::new(&settings.trusted_proxies),
            beside,
            auth: edge_auth,
            limiter,
            proxy,
            gateway,
            health: health.clone(),
        }),
    );
    // Time every request to the end of its answer, CORS refusals included.
    let metrics = crate::metrics::EdgeMetricsLayer::new(&Metrics::global().meter(), &pool);
    let service = tower::Layer::layer(&metrics, service);
    Ok(Edge {
        service,
        health,
        settings,
        services,
    })
}

/// Asks `url` for its descriptors until it answers or `within` has passed.
async fn discover_patiently(
    channel: tonic::transport::Channel,
    url: &str,
    within: Duration,
) -> anyhow::Result<discover::Discovered> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match discover::discover(channel.clone(), left.min(Duration::from_secs(5))).await {
            Ok(found) => return Ok(found),
            Err(error) if tokio::time::Instant::now() + Duration::from_millis(500) < deadline => {
                tracing::info!(%url, error = format!("{error:#}"), "reflected upstream not answering yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => {
                return Err(error.context(format!(
                    "reading the descriptors of {url} (gateway.upstreams) within {within:?}"
                )));
            }
        }
    }
}

/// Serves the edge on `listener` until `shutdown` resolves, then drains: `/readyz` fails at once
/// so load balancers stop sending, requests keep being served for `server.drain_delay`, then the
/// listener closes and requests in flight (a watch stream, say) get `server.drain_timeout`.
///
/// # Errors
/// The edge could not be built, or the server failed.
pub async fn serve(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let edge = build(config).await?;
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    let server_settings = config.settings.server.clone();
    let health = edge.health.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(crate::listen::serve(
        listener,
        edge.service,
        edge.settings.limits,
        edge.settings.connections,
        async {
            let _ = stopped.await;
        },
    ));
    tracing::info!(%addr, services = edge.services.len(), "edge serving");

    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        () = &mut shutdown => {}
        result = &mut server => {
            result.context("edge task")?;
            anyhow::bail!("the edge stopped serving by itself");
        }
    }
    tracing::info!("edge draining");
    health.set_draining();
    tokio::time::sleep(server_settings.drain_delay).await;
    let _ = stop.send(());
    match tokio::time::timeout(server_settings.drain_timeout, &mut server).await {
        Ok(result) => result.context("edge task")?,
        Err(_) => {
            tracing::warn!("requests still running after the drain timeout");
            server.abort();
        }
    }
    tracing::info!("edge stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_section_defaults_to_port_8080_and_reads_reflected_upstreams() {
        let config = Config::from_figment(Config::layers(std::path::Path::new("absent.toml")))
            .expect("defaults");
        let settings: GatewaySettings = config.section("gateway").expect("defaults");
        assert_eq!(settings.port, DEFAULT_PORT);
        assert!(settings.upstreams.is_empty());

        let config = config
            .with(
                "gateway.upstreams",
                serde_json::json!([{ "url": "http://127.0.0.1:7000", "discover_timeout": "5s" }]),
            )
            .expect("a valid setting");
        let settings: GatewaySettings = config.section("gateway").expect("reads");
        assert_eq!(settings.upstreams[0].url, "http://127.0.0.1:7000");
        assert_eq!(
            settings.upstreams[0].discover_timeout,
            Duration::from_secs(5)
        );
    }

    #[tokio::test]
    async fn believing_any_clients_forwarded_for_stops_start_up() {
        let config = Config::from_figment(Config::layers(std::path::Path::new("absent.toml")))
            .expect("defaults")
            .with("gateway.rate_limit.trust_forwarded_for", true)
            .expect("a valid setting");
        let error = build(&config).await.expect_err("refused");
        assert!(error.to_string().contains("trusted_proxies"), "{error}");
    }

    #[tokio::test]
    async fn a_zero_probe_interval_stops_start_up_naming_it() {
        let config = Config::from_figment(Config::layers(std::path::Path::new("absent.toml")))
            .expect("defaults")
            .with("gateway.probe_interval", "0s")
            .expect("a valid setting");
        let error = build(&config).await.expect_err("refused");
        assert!(
            error.to_string().contains("gateway.probe_interval"),
            "{error}"
        );
    }

    #[test]
    fn a_misspelt_gateway_setting_stops_start_up_naming_it() {
        let config = Config::from_figment(Config::layers(std::path::Path::new("absent.toml")))
            .expect("defaults")
            .with("gateway.request_timout", "5s")
            .expect("any key is accepted above the layers");
        let error = config
            .section::<GatewaySettings>("gateway")
            .expect_err("an unknown key");
        assert!(error.to_string().contains("request_timout"), "{error}");
    }
}
