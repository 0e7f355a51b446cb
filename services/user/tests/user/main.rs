//! The user service's integration tests, in one binary (each test binary is compiled and linked
//! on its own, so one per crate keeps builds short), one module per area. `common` runs a real
//! user service beside a real auth service.

mod common;

mod admin;
mod my_profile;
mod registrations;
