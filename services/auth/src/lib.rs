//! Agora's auth service: accounts, sessions, access and refresh tokens, service tokens and the
//! public keys every other service verifies tokens with.
//!
//! # Layout
//! - [`api`]: the gRPC handlers; each parses its request into its domain value, calls the store
//!   and maps the result.
//! - [`domain`]: emails, the password policy and roles, and each method's request as a domain
//!   value parsed by `TryFrom` (no I/O).
//! - [`wire`]: proto <-> domain mappings, and [`error::ServiceError`] -> `tonic::Status`.
//! - [`error`]: [`error::ServiceError`], every way a call fails once its request parsed.
//! - [`hashing`]: argon2id with a cap on hashes in flight.
//! - [`keys`]: signing keys, rotation, the JWKS and token signing.
//! - [`metrics`]: the service's instruments (logins and refreshes by outcome).
//! - [`store`]: the SQL, and the migrations for PostgreSQL and SQLite.
//! - [`device`]: device tokens, which let a device that signed in before keep its own budget of
//!   failed logins.
//! - [`throttle`]: login throttling per known device, and for unknown devices per account, per
//!   client address and in total; the registration budget per client address.
//! - [`settings`]: the `[auth]` settings section and its checks.

use std::{sync::Arc, time::Duration};

use agora_contracts::agora::auth::v1::auth_service_server::AuthServiceServer;
use agora_platform::{
    access::{AccessLayer, AccessPolicy, Verifier},
    cache::Cache,
    config::ServiceKind,
    events::{Bus, Stream},
    service::Startup,
};
use anyhow::Context as _;
use secrecy::ExposeSecret;

pub mod api;
pub mod device;
pub mod domain;
pub mod error;
pub mod hashing;
pub mod keys;
pub mod metrics;
pub mod settings;
pub mod store;
pub mod throttle;
pub mod wire;

pub use settings::AuthSettings;

/// How often keys are re-read (other replicas may rotate) and checked for age.
const KEY_MAINTENANCE: Duration = Duration::from_secs(60);

agora_platform::service!(ServiceKind::Auth, store::MIGRATIONS, start);

/// Starts the auth service: accounts and tokens, verified with its own keys, the relay of its
/// outbox and the maintenance of its keys.
///
/// # Errors
/// Bad settings, an unreachable database or Redis, or a server failure.
async fn start(startup: Startup<'_>) -> anyhow::Result<()> {
    let config = startup.config();
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
    startup
        .access(access)
        .bus(bus)
        .serve(|parts| async move {
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
