//! The platform's integration tests, one binary with a module per area: each test binary is
//! compiled and linked on its own, so one binary builds much faster than one per file.
//!
//! `tests/otlp.rs` stays a binary of its own: it installs the process-wide tracing subscriber
//! and OpenTelemetry provider, which would then export the spans of every other test here to
//! its receiver and shut down under them.

mod cache;
mod discovery;
mod events;
