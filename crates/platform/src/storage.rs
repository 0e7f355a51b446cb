//! Relational storage: one sqlx pool per service, PostgreSQL or embedded SQLite, chosen by the
//! URL alone. Queries are written once in the SQL both accept (`$1` parameters, `RETURNING`,
//! `ON CONFLICT`), and each service ships a migration set per backend, because their DDL differs.

use std::{str::FromStr, sync::Once, time::Duration};

use anyhow::Context;
use sqlx::{
    Any, AnyPool, Transaction, any::AnyPoolOptions, migrate::Migrator, sqlite::SqliteConnectOptions,
};

/// Which server a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL, for distributed deployments.
    Postgres,
    /// An embedded SQLite file, for the one-process mesh.
    Sqlite,
}

/// A service's database.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
}

/// A service's migrations, one set per backend.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// For PostgreSQL.
    pub postgres: &'static Migrator,
    /// For SQLite.
    pub sqlite: &'static Migrator,
}

static DRIVERS: Once = Once::new();

impl Database {
    /// Opens a pool for `url` (`postgres://...` or `sqlite://...`); for SQLite, creates the file
    /// and its directory when missing.
    ///
    /// # Errors
    /// An unsupported scheme, or a server that cannot be reached.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            anyhow::bail!("unsupported database URL scheme (expected postgres:// or sqlite://)");
        };
        if backend == Backend::Sqlite {
            // Validate the URL and create the directory; sqlx creates the file with mode=rwc.
            let options = SqliteConnectOptions::from_str(url).context("parsing the SQLite URL")?;
            if let Some(dir) = options.get_filename().parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the data directory {}", dir.display()))?;
            }
        }
        let pool = AnyPoolOptions::new()
            // SQLite serialises writers anyway; a few connections serve concurrent reads.
            .max_connections(match backend {
                Backend::Postgres => 16,
                Backend::Sqlite => 4,
            })
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .with_context(|| format!("connecting to the {backend:?} database"))?;
        Ok(Self { pool, backend })
    }

    /// Applies the backend's pending migrations.
    ///
    /// # Errors
    /// A migration failed or was changed after it was applied.
    pub async fn migrate(&self, migrations: Migrations) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Postgres => migrations.postgres,
            Backend::Sqlite => migrations.sqlite,
        };
        migrator
            .run(&self.pool)
            .await
            .context("running migrations")?;
        Ok(())
    }

    /// The pool, for queries outside a transaction.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so two writers queue on the busy timeout instead of one failing with
    /// "database is locked" when it upgrades from reading to writing.
    ///
    /// # Errors
    /// No connection could be had.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Postgres => self.pool.begin().await,
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Microseconds since the Unix epoch: the one time type both backends store alike.
pub fn now_micros() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}

/// Whether an error is a unique-constraint violation (on either backend).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}
