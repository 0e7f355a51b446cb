//! The inventory service's integration tests, in one binary (each test binary is compiled and
//! linked on its own, so one per crate keeps builds short), one module per area. `common` runs a
//! real inventory service beside a real auth service.

mod common;

mod concurrency;
mod events;
mod mtls;
mod reservations;
mod stock;
