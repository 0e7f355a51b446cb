//! The auth service's integration tests, in one binary (each test binary is compiled and linked
//! on its own, so one per crate keeps builds short), one module per area. `common` starts a real
//! auth server for a test on its own database.

mod common;

mod auth_api;
mod datastore_tls;
mod device_tokens;
mod forged_tokens;
mod load_shedding;
mod platform_on_auth;
mod revocations;
mod sign_in_bounds;
mod starting;
