//! Helpers for tests: each test gets its own database (a fresh PostgreSQL database or SQLite
//! file) and its own Redis key prefix, so tests never share data and can run in parallel.
//!
//! The PostgreSQL and Redis suites need real servers (`AGORA_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; `AGORA_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`). When one cannot be reached the test says so and is skipped, except
//! with `CI=true`, where it fails: CI never passes by skipping them.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::{cache::Cache, storage::Database};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// A SQLite file in a temporary directory, and an in-memory cache.
    Embedded,
    /// A fresh PostgreSQL database and a Redis key prefix.
    Distributed,
}

/// A database (and cache) that belongs to one test; the PostgreSQL database is dropped with it.
#[derive(Debug)]
pub struct TestStore {
    /// The URL services connect with.
    pub database_url: String,
    /// The Redis URL, for the distributed backend.
    pub redis_url: Option<String>,
    /// A key prefix unique to this test.
    pub prefix: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    File(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The admin URL of the test PostgreSQL server.
pub fn postgres_url() -> String {
    std::env::var("AGORA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The URL of the test Redis server.
pub fn redis_url() -> String {
    std::env::var("AGORA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Reports an unreachable server: fails under CI, otherwise says loudly that the test is skipped.
fn unavailable(what: &str, error: &anyhow::Error) -> Option<TestStore> {
    assert!(!ci(), "CI=true and {what} is unreachable: {error:#}");
    eprintln!("SKIPPED: {what} is unreachable ({error:#}); set CI=true to make this a failure");
    None
}

impl TestStore {
    /// A fresh store on `backend`, or `None` (skip) when its server is down outside CI.
    ///
    /// # Panics
    /// Under `CI=true` when the server cannot be reached, or on a local filesystem failure.
    pub async fn new(backend: TestBackend) -> Option<Self> {
        let prefix = format!("test:{}:", uuid::Uuid::now_v7().simple());
        match backend {
            TestBackend::Embedded => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                // In a directory `Database::connect` creates, so it is 0700 like a real data
                // directory and start-up raises no warning about it.
                let path: PathBuf = dir.path().join("data").join("test.db");
                Some(Self {
                    database_url: format!("sqlite://{}?mode=rwc", path.display()),
                    redis_url: None,
                    prefix,
                    cleanup: Cleanup::File(dir),
                })
            }
            TestBackend::Distributed => {
                let admin_url = postgres_url();
                let name = format!("agora_test_{}", uuid::Uuid::now_v7().simple());
                if let Err(error) = create_database(&admin_url, &name).await {
                    return unavailable("PostgreSQL", &error);
                }
                let redis = redis_url();
                if let Err(error) = Cache::redis(&redis, prefix.clone()).await {
                    return unavailable("Redis", &error);
                }
                let database_url = match admin_url.rsplit_once('/') {
                    Some((server, _)) => format!("{server}/{name}"),
                    None => panic!("AGORA_TEST_POSTGRES_URL has no database part"),
                };
                Some(Self {
                    database_url,
                    redis_url: Some(redis),
                    prefix,
                    cleanup: Cleanup::Postgres { admin_url, name },
                })
            }
        }
    }

    /// Connects to this test's database.
    ///
    /// # Panics
    /// When the database cannot be opened.
    pub async fn database(&self) -> Database {
        Database::connect(&self.database_url)
            .await
            .expect("the test database opens")
    }

    /// This test's cache: Redis under its own prefix, or memory.
    ///
    /// # Panics
    /// When Redis cannot be reached.
    pub async fn cache(&self) -> Cache {
        Cache::connect(self.redis_url.as_deref(), self.prefix.clone())
            .await
            .expect("the test cache connects")
    }
}

async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .context("creating the test database")?;
    Ok(())
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            // Drop runs outside any runtime guarantee, so the database is dropped from a thread
            // with its own small runtime; a failure only leaves a database behind.
            let (admin_url, name) = (admin_url.clone(), name.clone());
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await?;
                    anyhow::Ok(())
                })
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop the test database {}", self.prefix);
            }
        }
    }
}

/// A request with `authorization: Bearer <token>`.
///
/// # Panics
/// When `token` cannot be a header value (tokens from auth always can).
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .expect("a token is a valid header value"),
    );
    request
}

/// Declares each listed `async fn scenario(backend: TestBackend)` as two tests: one on the
/// embedded backend (`mod embedded`) and one on PostgreSQL + Redis (`mod postgres_and_redis`).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::TestBackend::Embedded).await;
                }
            )*
        }
        mod postgres_and_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::TestBackend::Distributed).await;
                }
            )*
        }
    };
}
