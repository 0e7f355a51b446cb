//! The `agora` binary: the whole mesh in one process, one service per process, migrations, demo
//! data and a health probe. All the work happens in the library crates; this crate only wires
//! them up.
//!
//! # Layout
//! - `services`: the servers and services the command line names (how each is served and
//!   migrated is `agora_services`).
//! - `up`: the one-process mesh and its banner.
//! - `seed`: the demo catalog.
//! - `http_probe`: `agora health --http`, the edge's probe without a shell in the image.

use std::{process::ExitCode, time::Duration};

use agora_platform::{
    config::Config,
    metrics::{Metrics, MetricsEndpoint},
    server::shutdown_signal,
};
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

mod http_probe;
mod seed;
mod services;
mod up;

use services::{Server, Service};

/// mimalloc instead of the system allocator: glibc's malloc serialises the runtime's worker
/// threads on its arena locks under load (the edge allocates for every header map, message and
/// JSON body it writes).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Agora: a gRPC-first service mesh for a shop.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs every service in one process, each on its own port (embedded SQLite and in-memory
    /// cache unless database and Redis URLs are configured).
    Up,
    /// Runs one service, or the gateway (for containers).
    Serve {
        /// What to run.
        server: Server,
    },
    /// Applies a service's database migrations and exits.
    Migrate {
        /// The service whose database to migrate.
        service: Service,
    },
    /// Loads the demo catalog (products and stock) into running services, as the administrator,
    /// unless the catalog has products already.
    Seed,
    /// Asks a server for its gRPC health; exits 0 only when it answers SERVING. With `--http`,
    /// sends an HTTP GET instead and exits 0 only on a 2xx answer.
    Health {
        /// The server, e.g. `127.0.0.1:50051` or `http://auth:50051`.
        #[arg(required_unless_present = "http")]
        addr: Option<String>,
        /// The service to ask about; the whole server when omitted.
        service: Option<String>,
        /// An HTTP URL to GET instead of a gRPC health check, e.g.
        /// `http://127.0.0.1:8080/readyz` (the edge's probes).
        #[arg(long, value_name = "URL", conflicts_with_all = ["addr", "service"])]
        http: Option<String>,
        /// How long to wait for an answer.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Health {
            http: Some(url),
            timeout,
            ..
        } => return http_probe::check(&url, timeout).await,
        Command::Health {
            addr,
            service,
            timeout,
            ..
        } => {
            // clap requires an address unless --http is given, and that case is matched above.
            let addr = addr.context("an address or --http URL is required")?;
            return health(&addr, service.unwrap_or_default(), timeout).await;
        }
        Command::Up => {
            let (config, admin) = up::embedded_config(Config::load()?)?;
            let _telemetry = agora_platform::telemetry::init(&config.settings, "agora")?;
            up::up(config, admin).await?;
        }
        Command::Seed => {
            let config = Config::load()?;
            let admin = up::admin(&config)?;
            let outcome = seed::Seeder::new(&config.settings)?
                .seed(&admin.email, &admin.password)
                .await?;
            match outcome {
                seed::Outcome::AlreadySeeded => {
                    println!("The catalog has products already; nothing changed.");
                }
                seed::Outcome::Seeded { products, units } => {
                    println!("Loaded {products} products with {units} units in stock.");
                }
            }
        }
        Command::Serve { server } => {
            let Some(service) = server.service() else {
                let config = Config::load()?;
                let _telemetry = agora_platform::telemetry::init(&config.settings, "gateway")?;
                let _metrics = metrics_endpoint(&config.settings).await?;
                let addr = up::gateway_addr(&config)?;
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                agora_gateway::serve::serve(&config, listener, shutdown_signal()).await?;
                return Ok(ExitCode::SUCCESS);
            };
            let config = with_database_url(Config::load()?, service)?;
            let _telemetry =
                agora_platform::telemetry::init(&config.settings, service.kind().name())?;
            let _metrics = metrics_endpoint(&config.settings).await?;
            let addr = config.settings.bind_addr(service.kind());
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            service
                .service()
                .run(config, listener, shutdown_signal())
                .await?;
        }
        Command::Migrate { service } => {
            let config = with_database_url(Config::load()?, service)?;
            service.service().migrate(&config).await?;
            println!("{}: migrations applied", service.kind().name());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `GET /metrics` on `telemetry.metrics_addr`, for as long as the value is kept; none unset.
async fn metrics_endpoint(
    settings: &agora_platform::config::Settings,
) -> anyhow::Result<Option<MetricsEndpoint>> {
    match settings.telemetry.metrics_addr {
        Some(addr) => Ok(Some(
            MetricsEndpoint::bind(addr, Metrics::global().clone()).await?,
        )),
        None => Ok(None),
    }
}

/// `DATABASE_URL`, the container convention, names the database of the one service running.
fn with_database_url(config: Config, service: Service) -> anyhow::Result<Config> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Ok(config.with(
            &format!("services.{}.database_url", service.kind().name()),
            url,
        )?),
        _ => Ok(config),
    }
}

async fn health(addr: &str, service: String, timeout: Duration) -> anyhow::Result<ExitCode> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let url = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let channel = tonic::transport::Endpoint::from_shared(url)
        .context("invalid address")?
        .connect_timeout(timeout)
        .timeout(timeout);
    let answer = async {
        let channel = channel.connect().await?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.clone(),
            })
            .await?;
        anyhow::Ok(response.into_inner().status())
    };
    Ok(http_probe::verdict(timeout, answer, |status| {
        (
            status.as_str_name().to_owned(),
            status == tonic_health::pb::health_check_response::ServingStatus::Serving,
        )
    })
    .await)
}
