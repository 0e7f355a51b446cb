//! `agora up`: every service in one process, each on its own port, sharing the in-process bus;
//! demo data on a fresh data directory; a banner saying where to point clients.

use std::{path::Path, time::Duration};

use agora_platform::{
    config::{Config, ServiceKind, Settings},
    metrics::{Metrics, MetricsEndpoint},
    private_files,
    server::shutdown_signal,
    service::Service,
};
use anyhow::Context as _;
use tokio::{net::TcpListener, sync::watch};

use crate::seed::{Outcome, Seeder};

/// The port `up` serves `/metrics` on when `telemetry.metrics_addr` is not set (the port the
/// OpenTelemetry Prometheus exporters use by convention).
const DEFAULT_METRICS_PORT: u16 = 9464;

/// The administrator `up` and `seed` use when none is configured.
pub(crate) const DEFAULT_ADMIN_EMAIL: &str = "admin@agora.local";

/// The administrator's credentials, and where the password came from.
pub(crate) struct Admin {
    pub(crate) email: String,
    pub(crate) password: String,
    pub(crate) source: String,
}

/// The configured administrator, or the default one with its password kept in the data
/// directory (made up on first use, readable by the owner only), so it survives restarts.
pub(crate) fn admin(config: &Config) -> anyhow::Result<Admin> {
    let section = &config.settings.auth;
    let configured = |key: &str| {
        section
            .get(key)
            .and_then(|value| value.as_str().map(str::to_owned))
    };
    if let (Some(email), Some(password)) = (configured("admin_email"), configured("admin_password"))
    {
        return Ok(Admin {
            email,
            password,
            source: "configuration".into(),
        });
    }
    let path = config.settings.data_dir.join("admin-password");
    let password = match std::fs::read_to_string(&path) {
        Ok(password) if !password.trim().is_empty() => password.trim().to_owned(),
        _ => write_new_password(&path)?,
    };
    Ok(Admin {
        email: DEFAULT_ADMIN_EMAIL.into(),
        password,
        source: path.display().to_string(),
    })
}

fn write_new_password(path: &Path) -> anyhow::Result<String> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        private_files::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let password = random_hex(12);
    let mut file = private_files::open_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{password}")?;
    Ok(password)
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// In one process, services authenticate to each other with secrets made up at start-up, unless
/// some are configured: then the configuration is used as it is. The administrator is ensured.
pub(crate) fn embedded_config(config: Config) -> anyhow::Result<(Config, Admin)> {
    let mut config = config;
    if !config.settings.auth.contains_key("service_clients") {
        for kind in ServiceKind::ALL {
            config = config.with(
                &format!("auth.service_clients.{}", kind.name()),
                random_hex(24),
            )?;
        }
    }
    // Whoever runs `up` on their machine administers it: the console is open on loopback.
    let gateway: serde_json::Value = config.section("gateway")?;
    if gateway.pointer("/console/open_on_loopback").is_none() {
        config = config.with("gateway.console.open_on_loopback", true)?;
    }
    let admin = admin(&config)?;
    let config = config
        .with("auth.admin_email", &admin.email)?
        .with("auth.admin_password", &admin.password)?;
    Ok((config, admin))
}

/// The configuration one service of `up` runs with: the shared one plus its own secret.
fn service_config(config: &Config, kind: ServiceKind) -> anyhow::Result<Config> {
    let secret = config
        .settings
        .auth
        .get("service_clients")
        .and_then(|clients| clients.find_ref(kind.name()))
        .and_then(|secret| secret.as_str().map(str::to_owned));
    match secret {
        Some(secret) => Ok(config.clone().with("service_secret", secret)?),
        None => Ok(config.clone()),
    }
}

/// Where the REST edge listens: `host` and `gateway.port`.
pub(crate) fn gateway_addr(config: &Config) -> anyhow::Result<std::net::SocketAddr> {
    let gateway: agora_gateway::serve::GatewaySettings = config.section("gateway")?;
    Ok(std::net::SocketAddr::new(
        config.settings.host,
        gateway.port,
    ))
}

/// Runs every service and the REST edge until ctrl-c or SIGTERM.
pub(crate) async fn up(config: Config, admin: Admin) -> anyhow::Result<()> {
    let settings = &config.settings;
    // The databases are checked as they are opened; the directory and the password are here.
    private_files::warn_if_exposed([
        settings.data_dir.clone(),
        settings.data_dir.join("admin-password"),
    ]);
    let embedded = agora_services::ALL
        .iter()
        .all(|s| settings.services.get(s.kind).database_url.is_none());
    // A fresh data directory gets the demo catalog once its services are up.
    let fresh = embedded
        && !settings
            .data_dir
            .join(format!("{}.db", ServiceKind::Product.name()))
            .exists();
    let mut listeners = Vec::new();
    for service in agora_services::ALL {
        let addr = settings.bind_addr(service.kind);
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!(
                "binding {} for {} (set AGORA_SERVICES__{}__PORT to use another port)",
                addr,
                service.kind.name(),
                service.kind.name().to_uppercase()
            )
        })?;
        listeners.push((service, listener));
    }
    let edge_addr = gateway_addr(&config)?;
    let edge_listener = TcpListener::bind(edge_addr).await.with_context(|| {
        format!("binding {edge_addr} for the gateway (set AGORA_GATEWAY__PORT to use another port)")
    })?;
    let edge_addr = edge_listener.local_addr()?;
    let metrics = metrics_endpoint(settings).await?;
    let metrics_addr = metrics.as_ref().map(MetricsEndpoint::local_addr);
    print_endpoints(&config, &listeners, edge_addr, metrics_addr, embedded)?;

    let (stop, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (service, listener) in listeners {
        let config = service_config(&config, service.kind)?;
        let mut stopped = stopped.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        };
        tasks.spawn(service.run(config, listener, shutdown));
    }
    {
        let config = config.clone();
        let mut stopped = stopped.clone();
        tasks.spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            };
            agora_gateway::serve::serve(&config, edge_listener, shutdown).await
        });
    }
    let ready = async {
        wait_until_serving(&config).await?;
        wait_until_alive(edge_addr).await?;
        if fresh {
            let outcome = Seeder::new(&config.settings)?
                .seed(&admin.email, &admin.password)
                .await
                .context("loading the demo catalog")?;
            if let Outcome::Seeded { products, units } = outcome {
                println!("Loaded the demo catalog: {products} products, {units} units in stock.");
            }
        }
        print_try(&config, &admin, edge_addr, metrics_addr);
        anyhow::Ok(())
    };
    let mut result = Ok(());
    tokio::select! {
        () = shutdown_signal() => {}
        done = ready => {
            result = done;
            if result.is_ok() {
                tokio::select! {
                    () = shutdown_signal() => {}
                    Some(joined) = tasks.join_next() => result = stopped_early(joined),
                }
            }
        }
        Some(joined) = tasks.join_next() => result = stopped_early(joined),
    }
    let _ = stop.send(true);
    while let Some(joined) = tasks.join_next().await {
        if let Err(error) = joined.context("a service task panicked").and_then(|r| r) {
            tracing::error!(
                error = format!("{error:#}"),
                "service failed while stopping"
            );
        }
    }
    result
}

/// `GET /metrics` for every service and the edge of the process: on `telemetry.metrics_addr`
/// (a port that cannot be bound stops start-up), else on port 9464 of `host`, skipped with a
/// warning when that port is taken (by another process of this host, say).
async fn metrics_endpoint(settings: &Settings) -> anyhow::Result<Option<MetricsEndpoint>> {
    let metrics = Metrics::global().clone();
    if let Some(addr) = settings.telemetry.metrics_addr {
        return Ok(Some(MetricsEndpoint::bind(addr, metrics).await?));
    }
    let addr = std::net::SocketAddr::new(settings.host, DEFAULT_METRICS_PORT);
    match MetricsEndpoint::bind(addr, metrics).await {
        Ok(endpoint) => Ok(Some(endpoint)),
        Err(error) => {
            eprintln!(
                "warning: metrics are not served ({error:#}); set AGORA_TELEMETRY__METRICS_ADDR \
                 to serve them elsewhere"
            );
            Ok(None)
        }
    }
}

fn stopped_early(joined: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    joined.context("a service task panicked").and_then(|r| r)?;
    Err(anyhow::anyhow!("a service stopped unexpectedly"))
}

/// Waits until every service's health says SERVING.
async fn wait_until_serving(config: &Config) -> anyhow::Result<()> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for service in agora_services::ALL {
        let channel = agora_platform::client::service_channel(&config.settings, service.kind)?;
        let mut health = HealthClient::new(channel);
        loop {
            let status = health
                .check(HealthCheckRequest {
                    service: service.kind.grpc_name().into(),
                })
                .await
                .map(|r| r.into_inner().status)
                .ok();
            if status == Some(tonic_health::ServingStatus::Serving as i32) {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{} did not become SERVING within a minute",
                service.kind.name()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Waits until the edge answers `/healthz` (its routes are built and it is accepting).
async fn wait_until_alive(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer = async {
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await?;
            let mut head = [0u8; 12];
            stream.read_exact(&mut head).await?;
            std::io::Result::Ok(head.ends_with(b"200"))
        };
        if let Ok(Ok(true)) = tokio::time::timeout(Duration::from_secs(2), answer).await {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the gateway did not answer /healthz within a minute"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn print_endpoints(
    config: &Config,
    listeners: &[(Service, TcpListener)],
    edge_addr: std::net::SocketAddr,
    metrics_addr: Option<std::net::SocketAddr>,
    embedded: bool,
) -> anyhow::Result<()> {
    let settings = &config.settings;
    let storage = if embedded {
        format!("SQLite files under {}", settings.data_dir.display())
    } else {
        "the configured databases".to_owned()
    };
    let shared = if settings.redis_url.is_some() {
        "Redis cache and event streams"
    } else {
        "in-memory cache and event bus"
    };
    println!("Agora is starting ({storage}, {shared}). Stop with ctrl-c.\n");
    for (service, listener) in listeners {
        println!(
            "  {:<10} {:<22} {}",
            service.kind.name(),
            listener.local_addr()?,
            service.kind.grpc_name()
        );
    }
    println!(
        "  {:<10} {:<22} REST, gRPC and gRPC-Web for every service",
        "gateway", edge_addr
    );
    println!(
        "  {:<10} {:<22} live health and golden metrics (open on loopback)",
        "console",
        format!("http://{edge_addr}/console")
    );
    if let Some(addr) = metrics_addr {
        println!(
            "  {:<10} {:<22} Prometheus /metrics of every service and the gateway",
            "metrics", addr
        );
    }
    println!();
    Ok(())
}

fn print_try(
    config: &Config,
    admin: &Admin,
    edge_addr: std::net::SocketAddr,
    metrics_addr: Option<std::net::SocketAddr>,
) {
    let settings = &config.settings;
    let url = |kind| settings.service_url(kind);
    let (auth, product, inventory, order) = (
        url(ServiceKind::Auth),
        url(ServiceKind::Product),
        url(ServiceKind::Inventory),
        url(ServiceKind::Order),
    );
    let host = product.trim_start_matches("http://");
    let edge = format!("http://{edge_addr}");
    println!(
        "Ready. Administrator: {} (password in {}).\n\n\
         Try the REST edge (API page: {edge}/docs, OpenAPI: {edge}/openapi.json):\n  \
         curl -s '{edge}/v1/products?pageSize=3&category=coffee'\n  \
         curl -s -X POST {edge}/v1/auth/register -H 'content-type: application/json' \
         -d '{{\"email\":\"ada@example.com\",\"password\":\"correct horse 7\"}}'\n  \
         curl -s {edge}/v1/orders -H 'Authorization: Bearer <accessToken from register>'\n  \
         grpcurl -plaintext {edge_addr} list\n\n\
         Or each service over gRPC (reflection is on; install buf with `npm i -g @bufbuild/buf`, or use grpcurl):\n  \
         buf curl --http2-prior-knowledge --list-methods {product}\n  \
         buf curl --http2-prior-knowledge -d '{{\"pageSize\":5,\"category\":\"coffee\"}}' \
         {product}/agora.product.v1.ProductService/ListProducts\n  \
         buf curl --http2-prior-knowledge {product}/agora.product.v1.ProductService/ListCategories\n  \
         buf curl --http2-prior-knowledge -d '{{\"productIds\":[\"<id from ListProducts>\"]}}' \
         {inventory}/agora.inventory.v1.InventoryService/BatchGetStock\n  \
         buf curl --http2-prior-knowledge -d '{{\"email\":\"ada@example.com\",\"password\":\"correct horse 7\"}}' \
         {auth}/agora.auth.v1.AuthService/Register\n  \
         buf curl --http2-prior-knowledge -H 'Authorization: Bearer <accessToken from Register>' \
         -d '{{\"idempotencyKey\":\"order-1\",\"lines\":[{{\"productId\":\"<id>\",\"quantity\":1}}]}}' \
         {order}/agora.order.v1.OrderService/CreateOrder\n  \
         grpcurl -plaintext {host} list\n",
        admin.email, admin.source
    );
    if let Some(addr) = metrics_addr {
        println!(
            "And the metrics of every call so far (Prometheus text):\n  curl -s http://{addr}/metrics\n"
        );
    }
}
