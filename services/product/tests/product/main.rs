//! The product service's integration tests, in one binary (each test binary is compiled and
//! linked on its own, so one per crate keeps builds short), one module per area. `common` runs a
//! real product service beside a real auth service.

mod common;

mod catalog_reads;
mod catalog_writes;
mod listing;
mod paging;
