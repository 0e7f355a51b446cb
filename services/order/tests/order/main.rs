//! The order service's integration tests, in one binary (each test binary is compiled and linked
//! on its own, so one per crate keeps builds short), one module per area. `common` runs a real
//! mesh (auth, product, inventory, order).

mod common;

mod claims;
mod faults;
mod lifecycle;
mod placing;
mod retry_budget;
mod saga;
mod watching;
