//! The `agora` binary's integration tests, one test binary with a module per area: each test
//! binary is compiled and linked on its own, so one builds much faster than one per file.
//!
//! Sharing a process is safe here: the only process-wide install is `mesh`'s telemetry, done once
//! behind a `OnceLock` and without an exporter; the other areas (`metrics` included, whose counts must be
//! the child's alone) drive `agora` as child processes.

mod cli;
mod docs;
mod helpers;
mod mesh;
mod metrics;
mod revocation;
mod trace;
