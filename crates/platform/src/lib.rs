//! What every Agora service stands on.
//!
//! A service crate holds its handlers, domain and store; everything the five services would
//! otherwise write five times lives here, so that each behaves the same on the wire.
//!
//! # Layout
//! - [`config`]: typed, layered settings (defaults, then a TOML file, then the environment).
//! - [`telemetry`]: the `tracing` subscriber and OTLP export.
//! - [`metrics`]: the process's meter provider, the servers' call metrics and `/metrics`.
//! - [`context`]: the request id, deadline and W3C trace context of the call being served, and how
//!   they travel in gRPC metadata.
//! - [`service`]: what a service is ([`service::ServiceKind`], [`service::Service`]) and its
//!   start-up ([`service::Startup`]): its parts connected, served, and stopped after draining.
//! - [`server`]: the one server shape every service uses (health, reflection, layers, draining).
//! - [`access`]: who may call which method, read from the contracts, and JWT verification.
//! - [`error`]: one way to answer with rich `google.rpc` error details.
//! - [`storage`]: PostgreSQL or embedded SQLite pools, chosen by URL, migrations, and the retry
//!   of transactions that failed transiently.
//! - [`time`]: time as stored (microseconds since the epoch) and its conversions.
//! - [`paging`]: page sizes and opaque page tokens bound to the filter they were issued for.
//! - [`batch`]: the ids of a batch request: how many it may name, each once.
//! - [`datastore_tls`]: TLS to PostgreSQL and Redis, and the CA bundle that verifies them.
//! - [`private_files`]: the data directory and secret files, created owner-only and checked at
//!   start-up.
//! - [`cache`]: Redis or in-memory cache and counters, behind one small type.
//! - [`events`]: the transactional outbox, its relay, and consumer groups on Redis Streams or in
//!   memory.
//! - [`revocation`]: the access tokens refused before they expire (revoked sessions, changed
//!   roles), followed from auth's events.
//! - [`client`]: channels for calls between services, with propagation and a service token.
//! - [`mtls`]: mutual TLS between services and the edge: certificates reloaded from files, SPIFFE
//!   identities.
//! - [`discovery`]: client-side balancing over every address of a DNS name (headless Services).
//! - [`testing`]: helpers that give each test its own database or key prefix.

pub mod access;
pub mod batch;
pub mod cache;
pub mod client;
pub mod config;
pub mod context;
pub mod datastore_tls;
pub mod discovery;
pub mod error;
pub mod events;
pub mod metrics;
pub mod mtls;
pub mod paging;
pub mod private_files;
pub mod revocation;
pub mod server;
pub mod service;
pub mod storage;
pub mod telemetry;
pub mod testing;
pub mod time;
