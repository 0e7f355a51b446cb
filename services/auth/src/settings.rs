//! The `[auth]` settings section: what an operator may set for the auth service, with defaults
//! that work on a laptop.

use std::{collections::BTreeMap, time::Duration};

use secrecy::SecretString;
use serde::Deserialize;

/// The `[auth]` settings section (`AGORA_AUTH__...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Lifetime of access tokens. A revoked session's tokens are refused everywhere within
    /// seconds, but a verifier that cannot reach the bus meanwhile accepts them until they
    /// expire: keep it short.
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    /// Lifetime of a refresh token (and of a session not refreshed within it).
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    /// Lifetime of service tokens.
    #[serde(with = "humantime_serde")]
    pub service_token_ttl: Duration,
    /// Age after which the signing key is rotated automatically.
    #[serde(with = "humantime_serde")]
    pub key_rotation: Duration,
    /// A PKCS#8 PEM Ed25519 private key to sign with; generated and stored when absent.
    pub signing_key_pem: Option<SecretString>,
    /// Client id -> secret of the services that may ask for service tokens.
    pub service_clients: BTreeMap<String, SecretString>,
    /// Password hashes computed at once (19 MiB each).
    pub max_concurrent_hashes: usize,
    /// Failed logins allowed per known device (one holding a device token for the account)
    /// within `login_window`. Only that device's own failures count against it.
    pub max_failed_logins_per_device: u64,
    /// Failed logins from unknown devices allowed per account (by email, whether or not it
    /// exists) within `login_window`. Once spent, the account signs in only from known devices
    /// until the window ends.
    pub max_failed_logins_per_account: u64,
    /// Failed logins from unknown devices allowed per client address within `login_window`:
    /// slows one address guessing across many accounts.
    pub max_failed_logins_per_address: u64,
    /// Failed logins from all unknown devices together within `login_window`: bounds guessing
    /// from many addresses at once. Once spent, only known devices sign in until the window ends.
    pub max_failed_logins_total: u64,
    /// The throttling window.
    #[serde(with = "humantime_serde")]
    pub login_window: Duration,
    /// Registrations allowed per client address within `registration_window`, whatever token
    /// the caller sends: enough for a household or an office behind one address, while one
    /// address cannot mint accounts by the hundred.
    pub max_registrations_per_address: u64,
    /// The window of the registration budget.
    #[serde(with = "humantime_serde")]
    pub registration_window: Duration,
    /// The HMAC-SHA256 key of device tokens (at least 32 characters); generated and stored in
    /// the database when absent, so replicas share it. Changing it turns every device unknown.
    pub device_secret: Option<SecretString>,
    /// How long a device token is accepted after the sign-in that issued it (each sign-in issues
    /// a fresh one); the edge gives its cookie the same lifetime.
    #[serde(with = "humantime_serde")]
    pub device_lifetime: Duration,
    /// An administrator account ensured at start-up.
    pub admin_email: Option<String>,
    /// Its password.
    pub admin_password: Option<SecretString>,
    /// Prefix of auth's cache keys, so deployments (and tests) sharing a Redis stay apart.
    pub cache_prefix: String,
    /// Peers (the edge, e.g. `127.0.0.1/32` or a pod network like `10.0.0.0/8`) whose
    /// `x-forwarded-for` names the real client: behind the gateway every login comes from the
    /// gateway's address, which would make the per-address throttle one budget for everyone.
    /// Anyone else's `x-forwarded-for` is ignored, so a direct caller cannot pick a new address
    /// per attempt.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            service_token_ttl: Duration::from_secs(15 * 60),
            key_rotation: Duration::from_secs(30 * 24 * 3600),
            signing_key_pem: None,
            service_clients: BTreeMap::new(),
            max_concurrent_hashes: std::thread::available_parallelism().map_or(2, usize::from),
            max_failed_logins_per_device: 5,
            max_failed_logins_per_account: 5,
            max_failed_logins_per_address: 50,
            max_failed_logins_total: 1000,
            login_window: Duration::from_secs(15 * 60),
            max_registrations_per_address: 20,
            registration_window: Duration::from_secs(3600),
            device_secret: None,
            device_lifetime: Duration::from_secs(90 * 24 * 3600),
            admin_email: None,
            admin_password: None,
            cache_prefix: "agora:auth:".into(),
            // On a laptop the edge and auth share the loopback interface.
            trusted_proxies: vec![
                ipnet::IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST)),
                ipnet::IpNet::from(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
            ],
        }
    }
}
