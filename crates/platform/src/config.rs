//! Typed, layered configuration.
//!
//! Settings come from, in increasing priority: the defaults below (they run the whole mesh on a
//! laptop), a TOML file (`agora.toml` in the working directory, or the path in `AGORA_CONFIG`), the
//! environment with the `AGORA_` prefix and `__` between levels (`AGORA_SERVER__DRAIN_DELAY=5s`),
//! and a few conventional variables (`REDIS_URL`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `<SERVICE>_DATABASE_URL`). A bad value stops start-up with an error naming the setting.
//!
//! Secrets can also be files: with `AGORA_SECRETS_DIR` set, every file in that directory is one
//! setting, named by its key (`service_secret`, `services.order.database_url`,
//! `auth.admin_password`) and holding its value, so a mounted Kubernetes Secret never has to pass
//! through the environment. They sit above the TOML file and below the environment.
//!
//! Sections that belong to one service (`[auth]`, ...) are read by that service with
//! [`Config::section`], so the platform does not need to know them.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    Figment, Metadata, Profile, Provider,
    providers::{Env, Format, Toml},
    value::{Dict, Map, Value},
};
use secrecy::SecretString;
use serde::{Deserialize, de::DeserializeOwned};

use crate::datastore_tls::DatastoreTls;

/// A setting that could not be read; the message names the setting and where it came from.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

impl From<figment::Error> for ConfigError {
    fn from(error: figment::Error) -> Self {
        Self(Box::new(error))
    }
}

/// The five services of the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// Accounts, sessions and tokens.
    Auth,
    /// Profiles.
    User,
    /// The catalog.
    Product,
    /// Stock and reservations.
    Inventory,
    /// Orders.
    Order,
}

impl ServiceKind {
    /// Every service, in start-up order (auth first: the others verify tokens with its keys).
    pub const ALL: [ServiceKind; 5] = [
        ServiceKind::Auth,
        ServiceKind::User,
        ServiceKind::Product,
        ServiceKind::Inventory,
        ServiceKind::Order,
    ];

    /// The lower-case name used in settings, database names and service tokens.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Auth => "auth",
            ServiceKind::User => "user",
            ServiceKind::Product => "product",
            ServiceKind::Inventory => "inventory",
            ServiceKind::Order => "order",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            ServiceKind::Auth => 50051,
            ServiceKind::User => 50052,
            ServiceKind::Product => 50053,
            ServiceKind::Inventory => 50054,
            ServiceKind::Order => 50055,
        }
    }
}

/// Everything the platform itself needs; services read their own sections beside it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where embedded SQLite files live when a service has no `database_url`.
    pub data_dir: PathBuf,
    /// The address servers bind to: loopback on a laptop, `0.0.0.0` in a container.
    pub host: IpAddr,
    /// Redis for cache, rate limits and the bus; in-memory when absent.
    pub redis_url: Option<SecretString>,
    /// How the datastores' TLS certificates are verified (`[datastore_tls]`).
    pub datastore_tls: DatastoreTls,
    /// Where traces go over OTLP/gRPC; no export when absent.
    pub otlp_endpoint: Option<String>,
    /// Log output.
    pub log: LogSettings,
    /// Server behaviour shared by every service.
    pub server: ServerSettings,
    /// Token checks shared by every service.
    pub tokens: TokenSettings,
    /// The event bus.
    pub events: EventSettings,
    /// Where each service listens and keeps its data.
    pub services: ServicesSettings,
    /// The calling service's own credentials for internal calls (client id = service name).
    pub service_secret: Option<SecretString>,
    /// Mutual TLS between services and the edge (off by default).
    pub mtls: MtlsSettings,
    /// The `[auth]` section, read by the auth service with [`Config::section`].
    pub auth: Dict,
    /// The `[user]` section.
    pub user: Dict,
    /// The `[product]` section.
    pub product: Dict,
    /// The `[inventory]` section.
    pub inventory: Dict,
    /// The `[order]` section.
    pub order: Dict,
    /// The `[gateway]` section.
    pub gateway: Dict,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".agora"),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            redis_url: None,
            datastore_tls: DatastoreTls::default(),
            otlp_endpoint: None,
            log: LogSettings::default(),
            server: ServerSettings::default(),
            tokens: TokenSettings::default(),
            events: EventSettings::default(),
            services: ServicesSettings::default(),
            service_secret: None,
            mtls: MtlsSettings::default(),
            auth: Dict::new(),
            user: Dict::new(),
            product: Dict::new(),
            inventory: Dict::new(),
            order: Dict::new(),
            gateway: Dict::new(),
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` for people, `json` for log collectors.
    pub format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal.
    Pretty,
    /// One JSON object a line.
    Json,
}

/// Server behaviour shared by every service.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Longest a unary call may run when the client sets no shorter deadline.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Calls served at once by one process; past it new calls are shed with UNAVAILABLE.
    pub concurrency_limit: usize,
    /// How long health says NOT_SERVING, still serving, before the listener closes, so load
    /// balancers and Kubernetes stop sending new calls first.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// How long in-flight calls get to finish after the listener closes.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            concurrency_limit: 1024,
            drain_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// What access tokens must say to be accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// The `iss` claim.
    pub issuer: String,
    /// The `aud` claim.
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// The longest lifetime of an access token (auth refuses to start with `auth.access_ttl` or
    /// `auth.service_token_ttl` above it): how far back a starting process rebuilds the list of
    /// revoked sessions and changed roles.
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: "agora-auth".into(),
            audience: "agora".into(),
            leeway: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(15 * 60),
        }
    }
}

/// The event bus: outbox relays and consumers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// Names the bus: the Redis key prefix of its streams, or, in memory, which in-process bus
    /// services share. Deployments (and tests) sharing one Redis stay apart by prefix.
    pub prefix: String,
    /// How often a relay looks for unpublished outbox rows.
    #[serde(with = "humantime_serde")]
    pub relay_interval: Duration,
    /// How long a delivered event may stay unacknowledged before another consumer of the group
    /// reclaims it (its consumer is presumed dead).
    #[serde(with = "humantime_serde")]
    pub claim_after: Duration,
    /// Deliveries of one event before it goes to the dead-letter stream.
    pub max_attempts: u32,
    /// The replay window: how long a producer keeps published events in its outbox (then they
    /// are pruned), so that it can publish them again when Redis loses them. Consumers remember
    /// the ids of the events they applied (`processed_events`) for at least as long: the
    /// platform never prunes them, and a service that does must keep each for longer than this,
    /// or a replayed event would be applied twice. Read as `outbox_retention` too, its old name.
    #[serde(with = "humantime_serde", alias = "outbox_retention")]
    pub retention: Duration,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            prefix: "agora:events:".into(),
            relay_interval: Duration::from_millis(100),
            claim_after: Duration::from_secs(30),
            max_attempts: 5,
            retention: Duration::from_secs(24 * 3600),
        }
    }
}

/// Mutual TLS between services and the edge: every server asks for a client certificate signed
/// by the CA, every channel to a service presents this process's certificate and checks the
/// server's. Off by default, so nothing changes on a laptop. See [`crate::mtls`].
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MtlsSettings {
    /// Whether servers require client certificates and channels present one.
    pub enabled: bool,
    /// This process's certificate chain (PEM, leaf first), e.g. cert-manager's `tls.crt`.
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1), e.g. `tls.key`.
    pub key_file: PathBuf,
    /// The CA bundle (PEM) peers' certificates must chain to, e.g. `ca.crt`.
    pub ca_file: PathBuf,
    /// How often the three files are read again; a change is used by the next connection, so
    /// rotated certificates are picked up without a restart.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
    /// The SPIFFE trust domain: a service's certificate names `spiffe://<trust_domain>/service/<name>`.
    pub trust_domain: String,
    /// What a caller of a SERVICE-only method must show.
    pub service_access: ServiceAccess,
    /// A plaintext port serving only `grpc.health.v1.Health`, for probes that cannot present a
    /// certificate (the kubelet's gRPC probes); none when absent.
    pub health_port: Option<u16>,
}

impl Default for MtlsSettings {
    fn default() -> Self {
        let dir = Path::new("/etc/agora/tls");
        Self {
            enabled: false,
            cert_file: dir.join("tls.crt"),
            key_file: dir.join("tls.key"),
            ca_file: dir.join("ca.crt"),
            reload_interval: Duration::from_secs(10),
            trust_domain: "agora".into(),
            service_access: ServiceAccess::Token,
            health_port: None,
        }
    }
}

/// What a caller of a SERVICE-only method must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAccess {
    /// A service token from the auth service (the behaviour without mTLS).
    #[default]
    Token,
    /// A client certificate naming a service; no token needed.
    Certificate,
    /// Both, naming the same service.
    Both,
    /// Either one.
    Either,
}

impl MtlsSettings {
    /// Checks the settings against each other.
    ///
    /// # Errors
    /// A setting that cannot work, named in the message.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.enabled || self.service_access == ServiceAccess::Token,
            "mtls.service_access = {:?} needs mtls.enabled = true: without mTLS no caller has a \
             certificate",
            self.service_access
        );
        anyhow::ensure!(
            !self.trust_domain.is_empty()
                && self
                    .trust_domain
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c)),
            "mtls.trust_domain must be a non-empty SPIFFE trust domain (a-z, 0-9, '.', '-', '_'), \
             not {:?}",
            self.trust_domain
        );
        anyhow::ensure!(
            self.reload_interval >= Duration::from_millis(10),
            "mtls.reload_interval must be at least 10ms"
        );
        Ok(())
    }
}

/// Per-service endpoints.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServicesSettings {
    /// The auth service.
    pub auth: ServiceEndpoint,
    /// The user service.
    pub user: ServiceEndpoint,
    /// The product service.
    pub product: ServiceEndpoint,
    /// The inventory service.
    pub inventory: ServiceEndpoint,
    /// The order service.
    pub order: ServiceEndpoint,
}

impl ServicesSettings {
    /// The settings of one service.
    pub fn get(&self, kind: ServiceKind) -> &ServiceEndpoint {
        match kind {
            ServiceKind::Auth => &self.auth,
            ServiceKind::User => &self.user,
            ServiceKind::Product => &self.product,
            ServiceKind::Inventory => &self.inventory,
            ServiceKind::Order => &self.order,
        }
    }
}

/// Where one service listens, where others reach it, and where it keeps its data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceEndpoint {
    /// The port it listens on (0 picks a free one); the service's standard port when absent.
    pub port: Option<u16>,
    /// How other services reach it, e.g. `http://auth:50051`; `http://127.0.0.1:<port>` when absent.
    pub url: Option<String>,
    /// Its own database (`postgres://...` or `sqlite://...`); a SQLite file under `data_dir` when
    /// absent.
    pub database_url: Option<SecretString>,
}

impl Settings {
    /// The port a service listens on.
    pub fn port(&self, kind: ServiceKind) -> u16 {
        self.services.get(kind).port.unwrap_or(kind.default_port())
    }

    /// The address a service binds to.
    pub fn bind_addr(&self, kind: ServiceKind) -> SocketAddr {
        SocketAddr::new(self.host, self.port(kind))
    }

    /// The URL other services use to reach `kind`.
    pub fn service_url(&self, kind: ServiceKind) -> String {
        self.services
            .get(kind)
            .url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{}", self.port(kind)))
    }

    /// The database URL of a service: its own setting (with `datastore_tls.ca_file` as the
    /// `sslrootcert` of a PostgreSQL URL that names none, see [`DatastoreTls::postgres_url`]),
    /// or an embedded SQLite file.
    pub fn database_url(&self, kind: ServiceKind) -> String {
        use secrecy::ExposeSecret;
        match &self.services.get(kind).database_url {
            Some(url) => self.datastore_tls.postgres_url(url.expose_secret()),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join(format!("{}.db", kind.name())).display()
            ),
        }
    }
}

impl Settings {
    /// A client of the Redis in `redis_url`, verified with `datastore_tls`; `None` without Redis.
    ///
    /// # Errors
    /// A malformed URL, or a CA bundle that cannot be read.
    pub fn redis_client(&self) -> anyhow::Result<Option<redis::Client>> {
        use secrecy::ExposeSecret;
        self.redis_url
            .as_ref()
            .map(|url| self.datastore_tls.redis_client(url.expose_secret()))
            .transpose()
    }
}

/// Loaded configuration: the platform's [`Settings`] and the raw layers, for service sections.
#[derive(Debug, Clone)]
pub struct Config {
    figment: Figment,
    /// The platform's settings.
    pub settings: Settings,
}

impl Config {
    /// Loads defaults, the TOML file and the process environment.
    ///
    /// # Errors
    /// A setting of the wrong type or an unknown `AGORA_` variable, named in the error.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var_os("AGORA_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("agora.toml"));
        Self::from_figment(Self::layers(&file))
    }

    /// The layers [`Config::load`] reads, to add more on top (tests, command-line flags).
    pub fn layers(file: &Path) -> Figment {
        let conventional = Env::raw().filter_map(|key| {
            let key = key.as_str().to_ascii_lowercase();
            match key.as_str() {
                "redis_url" => Some("redis_url".into()),
                "otel_exporter_otlp_endpoint" => Some("otlp_endpoint".into()),
                _ => ServiceKind::ALL
                    .into_iter()
                    .find(|kind| key == format!("{}_database_url", kind.name()))
                    .map(|kind| format!("services.{}.database_url", kind.name()).into()),
            }
        });
        Figment::new()
            .merge(Toml::file(file))
            .merge(SecretsDir::from_env())
            .merge(
                Env::prefixed("AGORA_")
                    .ignore(&["config", "secrets_dir"])
                    .split("__"),
            )
            .merge(conventional)
    }

    /// Reads settings from the given layers.
    ///
    /// # Errors
    /// A setting of the wrong type or an unknown key, named in the error.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let settings: Settings = figment.extract()?;
        Ok(Self { figment, settings })
    }

    /// Reads a service's own section (`[auth]`, `AGORA_AUTH__...`); missing keys take the
    /// section type's defaults.
    ///
    /// # Errors
    /// A setting of the wrong type or an unknown key in that section, named in the error.
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T, ConfigError> {
        if self.figment.find_value(name).is_err() {
            return Ok(T::default());
        }
        Ok(self.figment.extract_inner(name)?)
    }

    /// Sets one value above every layer, for tests and command-line overrides.
    ///
    /// # Errors
    /// The value does not fit the setting.
    pub fn with(self, key: &str, value: impl serde::Serialize) -> Result<Self, ConfigError> {
        let figment = self
            .figment
            .merge(figment::providers::Serialized::default(key, value));
        Self::from_figment(figment)
    }
}

/// Settings from files, one per setting, in the directory named by `AGORA_SECRETS_DIR`: how a
/// Kubernetes Secret volume (or Compose secrets) gives secrets to a process without putting them
/// in its environment, where every child process and crash report could see them.
///
/// A file's name is the setting's key with `.` between levels; its content, less trailing line
/// breaks, is the value, read as a string. Names starting with `.` are skipped: the kubelet keeps
/// its own `..data` links there.
#[derive(Debug, Clone)]
pub struct SecretsDir {
    dir: Option<PathBuf>,
}

impl SecretsDir {
    /// The directory in `AGORA_SECRETS_DIR`, or none.
    pub fn from_env() -> Self {
        Self {
            dir: std::env::var_os("AGORA_SECRETS_DIR")
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from),
        }
    }

    /// The settings of one directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
    }

    fn read(dir: &Path) -> std::io::Result<Dict> {
        let mut settings = Dict::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
            // `metadata` follows symbolic links: a Secret volume's files are links into `..data`.
            if name.starts_with('.') || !std::fs::metadata(entry.path())?.is_file() {
                continue;
            }
            let value = std::fs::read_to_string(entry.path())?;
            let value = value.trim_end_matches(['\r', '\n']).to_owned();
            let path: Vec<&str> = name.split('.').collect();
            insert(&mut settings, &path, Value::from(value));
        }
        Ok(settings)
    }
}

/// Puts `value` at `path` in `dict`, creating the tables on the way.
fn insert(dict: &mut Dict, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry((*first).to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

impl Provider for SecretsDir {
    fn metadata(&self) -> Metadata {
        let metadata = Metadata::named("secrets directory (AGORA_SECRETS_DIR)");
        match &self.dir {
            Some(dir) => metadata.source(figment::Source::File(dir.clone())),
            None => metadata,
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let Some(dir) = &self.dir else {
            return Ok(Map::new());
        };
        let settings = Self::read(dir).map_err(|error| {
            figment::Error::from(format!(
                "AGORA_SECRETS_DIR: cannot read {}: {error}",
                dir.display()
            ))
        })?;
        Ok(Profile::Default.collect(settings))
    }
}

#[cfg(test)]
// figment's `Jail` closures return its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    impl From<ConfigError> for figment::Error {
        fn from(error: ConfigError) -> Self {
            *error.0
        }
    }

    #[test]
    fn defaults_run_every_service_on_its_own_port_with_sqlite() {
        Jail::expect_with(|_| {
            let config = Config::from_figment(Config::layers(Path::new("agora.toml")))?;
            let s = &config.settings;
            assert_eq!(s.bind_addr(ServiceKind::Auth).port(), 50051);
            assert_eq!(s.bind_addr(ServiceKind::Order).port(), 50055);
            assert_eq!(s.service_url(ServiceKind::Auth), "http://127.0.0.1:50051");
            assert_eq!(
                s.database_url(ServiceKind::Auth),
                "sqlite://.agora/auth.db?mode=rwc"
            );
            assert!(s.redis_url.is_none());
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_the_file_which_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "agora.toml",
                "data_dir = \"/var/agora\"\n[server]\ndrain_delay = \"2s\"\n[services.auth]\nport = 6000\n",
            )?;
            jail.set_env("AGORA_SERVICES__AUTH__PORT", "7000");
            jail.set_env("REDIS_URL", "redis://cache:6379");
            jail.set_env("AUTH_DATABASE_URL", "postgres://db/auth");
            let config = Config::from_figment(Config::layers(Path::new("agora.toml")))?;
            let s = &config.settings;
            assert_eq!(s.data_dir, PathBuf::from("/var/agora"));
            assert_eq!(s.server.drain_delay, Duration::from_secs(2));
            assert_eq!(s.port(ServiceKind::Auth), 7000);
            assert_eq!(s.database_url(ServiceKind::Auth), "postgres://db/auth");
            assert!(s.redis_url.is_some());
            Ok(())
        });
    }

    #[test]
    fn a_datastore_ca_bundle_is_the_default_sslrootcert_of_postgres_urls() {
        Jail::expect_with(|jail| {
            jail.set_env(
                "AGORA_DATASTORE_TLS__CA_FILE",
                "/etc/agora/datastore-ca.pem",
            );
            jail.set_env("AUTH_DATABASE_URL", "postgres://db/auth");
            let config = Config::from_figment(Config::layers(Path::new("agora.toml")))?;
            let s = &config.settings;
            assert_eq!(
                s.datastore_tls.ca_file.as_deref(),
                Some(Path::new("/etc/agora/datastore-ca.pem"))
            );
            assert_eq!(
                s.database_url(ServiceKind::Auth),
                "postgres://db/auth?sslrootcert=/etc/agora/datastore-ca.pem&sslmode=verify-full"
            );
            assert_eq!(
                s.database_url(ServiceKind::User),
                "sqlite://.agora/user.db?mode=rwc"
            );
            Ok(())
        });
    }

    #[test]
    fn a_bad_setting_names_the_setting() {
        Jail::expect_with(|jail| {
            jail.set_env("AGORA_SERVER__CONCURRENCY_LIMIT", "lots");
            let error = Config::from_figment(Config::layers(Path::new("agora.toml")))
                .expect_err("a word is not a number");
            let message = error.to_string();
            assert!(
                message.to_lowercase().contains("server.concurrency_limit"),
                "{message}"
            );
            assert!(
                message.contains("AGORA_"),
                "names where it came from: {message}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_misspelt_variable_is_an_error_not_a_silent_default() {
        Jail::expect_with(|jail| {
            jail.set_env("AGORA_SERVR__DRAIN_DELAY", "5s");
            let error = Config::from_figment(Config::layers(Path::new("agora.toml")))
                .expect_err("unknown key");
            assert!(
                error.to_string().to_lowercase().contains("servr"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn service_sections_default_when_absent_and_read_when_present() {
        #[derive(Debug, Default, Deserialize)]
        #[serde(default)]
        struct Section {
            flag: bool,
        }
        Jail::expect_with(|jail| {
            let config = Config::from_figment(Config::layers(Path::new("agora.toml")))?;
            assert!(!config.section::<Section>("auth")?.flag);
            jail.set_env("AGORA_AUTH__FLAG", "true");
            let config = Config::from_figment(Config::layers(Path::new("agora.toml")))?;
            assert!(config.section::<Section>("auth")?.flag);
            Ok(())
        });
    }

    #[test]
    fn secrets_come_from_files_named_by_their_setting_and_the_environment_still_wins() {
        Jail::expect_with(|jail| {
            std::fs::create_dir_all(jail.directory().join("secrets/..data"))
                .map_err(|e| e.to_string())?;
            jail.create_file(
                "secrets/services.order.database_url",
                "postgres://db/order\n",
            )?;
            jail.create_file("secrets/service_secret", "s3cret")?;
            jail.create_file("secrets/auth.admin_password", "12345\r\n")?;
            jail.create_file("secrets/..data/ignored", "not a setting")?;
            jail.create_file("secrets/redis_url", "redis://from-file:6379")?;
            jail.set_env("AGORA_SECRETS_DIR", "secrets");
            jail.set_env("REDIS_URL", "redis://from-env:6379");
            let config = Config::from_figment(Config::layers(Path::new("agora.toml")))?;
            let s = &config.settings;
            assert_eq!(s.database_url(ServiceKind::Order), "postgres://db/order");
            use secrecy::ExposeSecret;
            let secret = s
                .service_secret
                .as_ref()
                .map(|v| v.expose_secret().to_owned());
            assert_eq!(secret.as_deref(), Some("s3cret"));
            let redis = s.redis_url.as_ref().map(|v| v.expose_secret().to_owned());
            assert_eq!(redis.as_deref(), Some("redis://from-env:6379"));
            #[derive(Debug, Default, Deserialize)]
            #[serde(default)]
            struct Auth {
                admin_password: String,
            }
            // Digits stay a string: a file holds text, whatever it looks like.
            assert_eq!(config.section::<Auth>("auth")?.admin_password, "12345");
            Ok(())
        });
    }

    #[test]
    fn a_missing_secrets_directory_or_a_misnamed_file_stops_start_up() {
        Jail::expect_with(|jail| {
            jail.set_env("AGORA_SECRETS_DIR", "nowhere");
            let error = Config::from_figment(Config::layers(Path::new("agora.toml")))
                .expect_err("the directory does not exist");
            assert!(error.to_string().contains("AGORA_SECRETS_DIR"), "{error}");
            std::fs::create_dir_all(jail.directory().join("secrets")).map_err(|e| e.to_string())?;
            jail.create_file("secrets/servce_secret", "typo")?;
            jail.set_env("AGORA_SECRETS_DIR", "secrets");
            let error = Config::from_figment(Config::layers(Path::new("agora.toml")))
                .expect_err("unknown key");
            assert!(error.to_string().contains("servce_secret"), "{error}");
            Ok(())
        });
    }
}
