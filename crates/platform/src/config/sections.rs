//! The platform's own sections: logs, telemetry, the server, tokens, events and mTLS.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

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

/// `[telemetry]`: what a process exports besides its logs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Whether the process measures anything. Off, every instrument is a no-op (nothing is
    /// recorded, `/metrics` says so and OTLP sends no metrics): for measuring what the metrics
    /// cost, or a process that must spend nothing on them.
    pub metrics: bool,
    /// Where the process serves `GET /metrics` in the Prometheus text format
    /// ([`crate::metrics`]). Off when absent: processes of one host would all want the same
    /// port, so each deployment names its own (`agora up` takes `127.0.0.1:9464` unless set,
    /// the manifests `0.0.0.0:9464`).
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            metrics: true,
            metrics_addr: None,
        }
    }
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
