//! The `agora` binary: the whole mesh in one process, one service per process, migrations and a
//! health probe. All the work happens in the library crates; this file only wires them up.

use std::{process::ExitCode, time::Duration};

use agora_platform::{
    config::{Config, ServiceKind},
    server::shutdown_signal,
    storage::Database,
};
use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use tokio::{net::TcpListener, sync::watch};

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
    /// Runs one service (for containers).
    Serve {
        /// The service to run.
        service: Service,
    },
    /// Applies a service's database migrations and exits.
    Migrate {
        /// The service whose database to migrate.
        service: Service,
    },
    /// Asks a server for its gRPC health; exits 0 only when it answers SERVING.
    Health {
        /// The server, e.g. `127.0.0.1:50051` or `http://auth:50051`.
        addr: String,
        /// The service to ask about; the whole server when omitted.
        service: Option<String>,
        /// How long to wait for an answer.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

/// The services this build contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Service {
    /// Accounts, sessions and tokens.
    Auth,
}

impl Service {
    const ALL: [Service; 1] = [Service::Auth];

    fn kind(self) -> ServiceKind {
        match self {
            Service::Auth => ServiceKind::Auth,
        }
    }

    fn grpc_name(self) -> &'static str {
        match self {
            Service::Auth => "agora.auth.v1.AuthService",
        }
    }

    async fn serve(
        self,
        config: Config,
        listener: TcpListener,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let shutdown = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        match self {
            Service::Auth => agora_auth::serve(&config, listener, shutdown).await,
        }
    }

    async fn migrate(self, config: &Config) -> anyhow::Result<()> {
        let db = Database::connect(&config.settings.database_url(self.kind())).await?;
        match self {
            Service::Auth => db.migrate(agora_auth::store::MIGRATIONS).await,
        }
    }
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
            addr,
            service,
            timeout,
        } => return health(&addr, service.unwrap_or_default(), timeout).await,
        Command::Up => {
            let config = embedded_secrets(Config::load()?)?;
            let _telemetry = agora_platform::telemetry::init(&config.settings, "agora")?;
            up(config).await?;
        }
        Command::Serve { service } => {
            let config = with_database_url(Config::load()?, service)?;
            let _telemetry =
                agora_platform::telemetry::init(&config.settings, service.kind().name())?;
            let addr = config.settings.bind_addr(service.kind());
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let (stop, stopped) = watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop.send(true);
            });
            service.serve(config, listener, stopped).await?;
        }
        Command::Migrate { service } => {
            let config = with_database_url(Config::load()?, service)?;
            service.migrate(&config).await?;
            println!("{}: migrations applied", service.kind().name());
        }
    }
    Ok(ExitCode::SUCCESS)
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

/// In one process, services authenticate to each other with secrets made up at start-up, unless
/// some are configured: then the configuration is used as it is.
fn embedded_secrets(config: Config) -> anyhow::Result<Config> {
    if config.settings.auth.contains_key("service_clients") {
        return Ok(config);
    }
    let mut config = config;
    for kind in ServiceKind::ALL {
        let mut secret = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        config = config.with(&format!("auth.service_clients.{}", kind.name()), secret)?;
    }
    Ok(config)
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

async fn up(config: Config) -> anyhow::Result<()> {
    let settings = &config.settings;
    let mut listeners = Vec::new();
    for service in Service::ALL {
        let addr = settings.bind_addr(service.kind());
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!(
                "binding {} for {} (set AGORA_SERVICES__{}__PORT to use another port)",
                addr,
                service.kind().name(),
                service.kind().name().to_uppercase()
            )
        })?;
        listeners.push((service, listener));
    }
    print_banner(&config, &listeners)?;

    let (stop, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (service, listener) in listeners {
        let config = service_config(&config, service.kind())?;
        tasks.spawn(service.serve(config, listener, stopped.clone()));
    }
    let mut result = Ok(());
    tokio::select! {
        () = shutdown_signal() => {}
        Some(joined) = tasks.join_next() => {
            result = joined.context("a service task panicked").and_then(|r| r);
            if result.is_ok() {
                result = Err(anyhow::anyhow!("a service stopped unexpectedly"));
            }
        }
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

fn print_banner(config: &Config, listeners: &[(Service, TcpListener)]) -> anyhow::Result<()> {
    let settings = &config.settings;
    let storage = if listeners
        .iter()
        .all(|(s, _)| settings.services.get(s.kind()).database_url.is_none())
    {
        format!("SQLite files under {}", settings.data_dir.display())
    } else {
        "the configured databases".to_owned()
    };
    let cache = if settings.redis_url.is_some() {
        "Redis"
    } else {
        "in-memory cache"
    };
    println!("Agora is starting ({storage}, {cache}). Stop with ctrl-c.\n");
    let mut first = None;
    for (service, listener) in listeners {
        let addr = listener.local_addr()?;
        println!(
            "  {:<10} {:<22} {}",
            service.kind().name(),
            addr,
            service.grpc_name()
        );
        first.get_or_insert(addr);
    }
    if let Some(addr) = first {
        println!(
            "\nTry (reflection is on; install buf with `npm i -g @bufbuild/buf`, or use grpcurl):\n  \
             buf curl --http2-prior-knowledge --list-methods http://{addr}\n  \
             buf curl --http2-prior-knowledge http://{addr}/grpc.health.v1.Health/Check\n  \
             buf curl --http2-prior-knowledge -d '{{\"email\":\"ada@example.com\",\"password\":\"correct horse 7\"}}' \
             http://{addr}/agora.auth.v1.AuthService/Register\n  \
             grpcurl -plaintext {addr} list\n"
        );
    }
    Ok(())
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
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(status)) => {
            println!("{}", status.as_str_name());
            Ok(
                if status == tonic_health::pb::health_check_response::ServingStatus::Serving {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                },
            )
        }
        Ok(Err(error)) => {
            println!("UNREACHABLE: {error:#}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            println!("UNREACHABLE: no answer within {timeout:?}");
            Ok(ExitCode::FAILURE)
        }
    }
}
