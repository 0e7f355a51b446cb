//! Agora's auth service: accounts, sessions, access and refresh tokens, service tokens and the
//! public keys every other service verifies tokens with.
//!
//! # Layout
//! - [`api`]: the gRPC handlers; each parses its request into domain types, calls the store and
//!   maps the result.
//! - [`domain`]: emails, the password policy and roles (no I/O).
//! - [`hashing`]: argon2id with a cap on hashes in flight.
//! - [`keys`]: signing keys, rotation, the JWKS and token signing.
//! - [`store`]: the SQL, and the migrations for PostgreSQL and SQLite.
//! - [`device`]: device tokens, which let a device that signed in before keep its own budget of
//!   failed logins.
//! - [`throttle`]: login throttling per known device, and for unknown devices per account, per
//!   client address and in total; the registration budget per client address.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use agora_contracts::agora::auth::v1::auth_service_server::AuthServiceServer;
use agora_platform::{
    access::{AccessLayer, AccessPolicy, Verifier},
    cache::Cache,
    config::{Config, ServiceKind},
    events::{Bus, Stream},
    service::{Service, Serving, Shutdown, Startup},
};
use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::net::TcpListener;

pub mod api;
pub mod device;
pub mod domain;
pub mod hashing;
pub mod keys;
pub mod store;
pub mod throttle;

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

/// How often keys are re-read (other replicas may rotate) and checked for age.
const KEY_MAINTENANCE: Duration = Duration::from_secs(60);

/// The auth service, as the mesh runs it.
pub const SERVICE: Service = Service {
    kind: ServiceKind::Auth,
    migrations: store::MIGRATIONS,
    serve: serve_owned,
};

/// Serves the auth service on `listener` until `shutdown` resolves.
///
/// # Errors
/// Bad settings, an unreachable database or Redis, or a server failure.
pub async fn serve(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let settings: AuthSettings = config.section("auth")?;
    let platform = &config.settings;
    let local_keys = keys::LocalKeys::default();
    let policy = Arc::new(AccessPolicy::from_descriptors(
        agora_contracts::FILE_DESCRIPTOR_SET,
    )?);
    let token_lifetime = settings.access_ttl.max(settings.service_token_ttl);
    anyhow::ensure!(
        token_lifetime <= platform.tokens.max_lifetime,
        "auth.access_ttl and auth.service_token_ttl ({token_lifetime:?}) must not exceed \
         tokens.max_lifetime ({:?}): every verifier keeps revocations that long",
        platform.tokens.max_lifetime,
    );
    // Keys are read in process, so a fresh rotation is visible at once: no refresh interval.
    // Auth follows its own revocations like every other verifier.
    let (revocations, following) = agora_platform::revocation::follow(platform);
    let verifier = Verifier::new(Arc::new(local_keys.clone()), &platform.tokens)
        .with_min_refresh(Duration::ZERO)
        .with_revocations(revocations);
    let access = AccessLayer::new(policy, Arc::new(verifier))
        .with_service_access(platform.mtls.service_access, &platform.mtls.trust_domain)
        .keeping(following);

    let tokens = platform.tokens.clone();
    let tokens_leeway = platform.tokens.leeway;
    // Connected before serving, so an unreachable bus stops start-up at once.
    let bus = Bus::connect(platform).await?;
    Startup::new(config, ServiceKind::Auth, store::MIGRATIONS)
        .access(access)
        .bus(bus)
        .serve(listener, shutdown, |parts| async move {
            let db = parts.db().clone();
            // Publishes UserRegistered, SessionRevoked and UserAccessChanged events for as long
            // as the server runs.
            parts.publish(Stream::Auth);
            let cache = Cache::from_settings(platform, settings.cache_prefix.clone()).await?;
            let keyring = Arc::new(match &settings.signing_key_pem {
                Some(pem) => keys::Keyring::from_pem(pem.expose_secret(), tokens, token_lifetime)?,
                None => keys::Keyring::from_database(db.clone(), tokens, token_lifetime).await?,
            });
            keyring.rotate_if_older_than(settings.key_rotation).await?;
            let _ = local_keys.0.set(Arc::clone(&keyring));
            // Re-read the keys (other replicas may rotate) and rotate them when old; start-up
            // has just done both.
            let (maintained, max_age) = (Arc::clone(&keyring), settings.key_rotation);
            parts.every_after(KEY_MAINTENANCE, "key maintenance", move || {
                let keyring = Arc::clone(&maintained);
                async move {
                    keyring.reload().await?;
                    keyring.rotate_if_older_than(max_age).await
                }
            });
            let store = store::Store::new(db, token_lifetime + tokens_leeway);
            let devices = device::DeviceTokens::from_settings(&settings, &store).await?;
            let api = api::AuthApi::new(settings, store, cache, keyring, devices)?;
            api.ensure_admin()
                .await
                .context("creating the configured administrator")?;
            Ok(AuthServiceServer::new(api))
        })
        .await
}

/// [`serve`] with its arguments owned, for [`SERVICE`].
fn serve_owned(config: Config, listener: TcpListener, shutdown: Shutdown) -> Serving {
    Box::pin(async move { serve(&config, listener, shutdown).await })
}
