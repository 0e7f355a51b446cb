//! Real Agora services for tests.
//!
//! [`TestMesh::start`] runs a real auth service; [`TestMesh::spawn`] adds any other service,
//! in-process, on a free port, with its own fresh database (a SQLite file, or a new PostgreSQL
//! database dropped afterwards), this test's own Redis key prefix and bus name, the auth URL and
//! its service secret, and returns once the service's health says SERVING. Nothing is mocked:
//! tests talk to the services through their generated gRPC clients.
//!
//! [`on_both_backends!`] declares each scenario twice: on the embedded backend (SQLite, memory)
//! and on PostgreSQL + Redis. [`PrivateRedis`] starts a Redis server of the test's own, for
//! tests that stop it.
//!
//! # Layout
//! - this file: the mesh, tokens and requests.
//! - `redis`: [`PrivateRedis`].

use std::{sync::Arc, time::Duration};

use agora_platform::config::Config;
pub use agora_platform::{
    on_both_backends,
    testing::{TestBackend, authed},
};
use futures::future::BoxFuture;
use tokio::net::TcpListener;

mod mesh;
pub use mesh::TestMesh;

pub mod assertions;
pub mod flaky;
mod redis;

pub use redis::PrivateRedis;

/// The administrator every test mesh has.
pub const ADMIN_EMAIL: &str = "admin@agora.test";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin password 1";
/// The password of accounts made with [`TestMesh::register`].
pub const USER_PASSWORD: &str = "correct horse 7";

/// What a service is told when to stop.
pub type Shutdown = BoxFuture<'static, ()>;

type ServeFn = Arc<
    dyn Fn(Config, TcpListener, Shutdown) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync,
>;

/// A unique email for one test.
pub fn email(name: &str) -> String {
    format!("{name}.{}@example.com", uuid::Uuid::now_v7().simple())
}

/// Polls `check` every 25 ms until it returns `Some`, for at most `within`.
///
/// # Panics
/// When `within` passes first; the message names `what`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
