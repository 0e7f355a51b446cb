//! The domain's metrics, through the real gRPC surface of a mesh started in the test process
//! (auth, product, inventory, order), read from the process's `/metrics` text.
//!
//! A binary of its own: every service of a process records into the process's one meter
//! provider, so the tests here run one at a time ([`reading::one_at_a_time`]) and count what
//! their own calls added, which the order tests running in parallel would blur.

#[path = "../order/common.rs"]
mod common;
mod reading;

mod bus;
mod orders;
mod sessions;
