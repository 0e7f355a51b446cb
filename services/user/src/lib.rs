//! Agora's user service: profiles, created from auth's events, read and changed by their owner.
//!
//! A profile appears when auth's `UserRegistered` event is consumed (there is no CreateProfile);
//! its owner reads and changes it with GetMyProfile and UpdateMyProfile, and administrators read
//! every profile with GetUser and ListUsers.
//!
//! Between a registration and the consumption of its event (normally milliseconds) the new user
//! has a valid token but no profile yet: GetMyProfile and UpdateMyProfile answer NOT_FOUND, as
//! the contract says, and the client retries.
//!
//! # Layout
//! - [`api`]: the gRPC handlers; each parses its request into a domain value, calls the store
//!   and maps the result.
//! - [`wire`]: the contract's side: requests parsed into domain values (every field violation
//!   at once), domain values written as messages, and [`error::ServiceError`] to `Status`.
//! - [`error`]: [`error::ServiceError`], every way a call fails.
//! - [`domain`]: user ids, display names, addresses, preferences, update masks and ListUsers'
//!   paging (no I/O).
//! - [`store`]: the SQL, and the migrations for PostgreSQL and SQLite.
//! - [`events`]: the consumer of auth's registrations.
//! - [`settings`]: the `[user]` settings section and its checks.

use agora_contracts::agora::user::v1::user_service_server::UserServiceServer;
use agora_platform::{config::ServiceKind, events::Stream, service::Startup};

pub mod api;
pub mod domain;
pub mod error;
pub mod events;
pub mod settings;
pub mod store;
pub mod wire;

pub use settings::UserSettings;

agora_platform::service!(ServiceKind::User, store::MIGRATIONS, start);

/// Starts the user service: its profiles, and the consumer of auth's registrations.
///
/// # Errors
/// Bad settings, an unreachable database, Redis or bus, or a server failure.
async fn start(startup: Startup<'_>) -> anyhow::Result<()> {
    // Read now, so a bad `[user]` setting stops start-up with its name.
    let _settings: UserSettings = startup.config().section("user")?;
    startup
        .serve(|parts| async move {
            let store = store::Store::new(parts.db().clone());
            parts.consume(Stream::Auth, events::Registrations::new(store.clone()));
            Ok(UserServiceServer::new(api::UserApi::new(store)))
        })
        .await
}
