//! [`Settings`]: everything the platform itself reads, and where each service is found.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
};

use figment::value::Dict;
use secrecy::SecretString;
use serde::Deserialize;

use super::{
    EventSettings, LogSettings, MtlsSettings, ServerSettings, ServiceKind, TelemetrySettings,
    TokenSettings,
};
use crate::datastore_tls::DatastoreTls;

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
    /// Metrics export (`[telemetry]`).
    pub telemetry: TelemetrySettings,
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
            telemetry: TelemetrySettings::default(),
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
