//! Relational storage: one sqlx pool per service, PostgreSQL or embedded SQLite, chosen by the
//! URL alone. Queries are written once in the SQL both accept (`$1` parameters, `RETURNING`,
//! `ON CONFLICT`), and each service ships a migration set per backend, because their DDL differs.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    sync::Once,
    time::Duration,
};

use anyhow::Context;
use sqlx::{
    Any, AnyPool, Transaction,
    any::{AnyPoolOptions, AnyRow},
    migrate::Migrator,
    sqlite::SqliteConnectOptions,
};

use crate::private_files;

mod retry;

pub use retry::{DatabaseFailure, WRITE_ATTEMPTS, is_transient, retry_transient};

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
    /// (with `mode=rwc`) and its directory when missing, readable by the owner only, and warns
    /// when an existing one is open to other users.
    ///
    /// PostgreSQL is reached over TLS as the URL's `sslmode` says (`prefer` when it names none;
    /// `verify-full` checks the certificate and the host name against `sslrootcert`).
    ///
    /// # Errors
    /// An unsupported scheme, or a server that cannot be reached; a refusal that is about TLS
    /// (a plaintext attempt at a TLS-only server, an untrusted certificate) says so.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            anyhow::bail!("unsupported database URL scheme (expected postgres:// or sqlite://)");
        };
        let sqlite_file = match backend {
            Backend::Sqlite => prepare_sqlite_file(url)?,
            Backend::Postgres => None,
        };
        let pool = AnyPoolOptions::new()
            // SQLite serialises writers anyway; a few connections serve concurrent reads.
            .max_connections(match backend {
                Backend::Postgres => 16,
                Backend::Sqlite => 4,
            })
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|error| {
                let hint = crate::datastore_tls::postgres_hint(&error)
                    .map_or_else(String::new, |hint| format!(": {hint}"));
                anyhow::Error::new(error)
                    .context(format!("connecting to the {backend:?} database{hint}"))
            })?;
        if let Some(file) = sqlite_file {
            // After connecting, so journal files SQLite has opened (-wal and -shm) are checked too.
            let dir = file.parent().filter(|dir| !dir.as_os_str().is_empty());
            private_files::warn_if_exposed(
                dir.into_iter()
                    .map(Path::to_owned)
                    .chain(private_files::sqlite_files(&file)),
            );
        }
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

    /// Runs `work` in a write transaction of its own ([`Database::begin_write`]), and again in a
    /// new one when it failed transiently ([`retry_transient`]). `work` commits or rolls back
    /// the transaction it is given.
    ///
    /// # Errors
    /// No connection could be had, or `work` failed (on its last attempt, when transiently).
    pub async fn write<T, E, F, Fut>(&self, work: F) -> Result<T, E>
    where
        E: DatabaseFailure + From<sqlx::Error>,
        F: Fn(Transaction<'static, Any>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let work = &work;
        retry_transient(|| async move { work(self.begin_write().await?).await }).await
    }

    /// The rows of `select`, a query that ends in `IN`, for the list of `values`: they are bound
    /// in order as `$1, $2, ...`. No values read no rows (and send no query).
    ///
    /// # Errors
    /// The database failed.
    pub async fn fetch_in<'v>(
        &self,
        select: &str,
        values: impl IntoIterator<Item = &'v str>,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        let values: Vec<&str> = values.into_iter().collect();
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = (1..=values.len()).map(|n| format!("${n}")).collect();
        let sql = format!("{select} ({})", list.join(", "));
        values
            .into_iter()
            .fold(sqlx::query(&sql), |query, value| query.bind(value))
            .fetch_all(&self.pool)
            .await
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Validates a SQLite URL and creates its file's directory (0700); with `mode=rwc`, creates
/// the file itself (0600) before SQLite would create it with 0644. Returns the file, unless the
/// database lives in memory.
fn prepare_sqlite_file(url: &str) -> anyhow::Result<Option<PathBuf>> {
    let options = SqliteConnectOptions::from_str(url).context("parsing the SQLite URL")?;
    // sqlx keeps the mode to itself, so it is read from the URL, as sqlx reads it.
    let (database, query) = url.split_once('?').unwrap_or((url, ""));
    let mode = query.split('&').find_map(|pair| pair.strip_prefix("mode="));
    if mode == Some("memory") || database.ends_with(":memory:") {
        return Ok(None);
    }
    let file = options.get_filename().to_owned();
    if let Some(dir) = file.parent()
        && !dir.as_os_str().is_empty()
    {
        private_files::create_dir(dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
    }
    if mode == Some("rwc") {
        private_files::create_file(&file)
            .with_context(|| format!("creating the database file {}", file.display()))?;
    }
    Ok(Some(file))
}

/// Whether an error is a unique-constraint violation (on either backend).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

/// A new SQLite database in `dir` with an empty table `t (v TEXT)`, and its URL.
#[cfg(test)]
async fn scratch_database(dir: &Path) -> (Database, String) {
    let url = format!("sqlite://{}?mode=rwc", dir.join("scratch.db").display());
    let db = Database::connect(&url).await.expect("opens");
    sqlx::query("CREATE TABLE t (v TEXT)")
        .execute(db.pool())
        .await
        .expect("created");
    (db, url)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use sqlx::Row as _;

    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    }

    async fn write_something(db: &Database) {
        sqlx::query("CREATE TABLE IF NOT EXISTS t (v TEXT)")
            .execute(db.pool())
            .await
            .expect("created");
        sqlx::query("INSERT INTO t (v) VALUES ('a signing key')")
            .execute(db.pool())
            .await
            .expect("inserted");
    }

    #[tokio::test]
    async fn a_new_sqlite_database_its_journals_and_its_directory_are_owner_only() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("data");
        let file = dir.join("auth.db");
        let db = Database::connect(&format!("sqlite://{}?mode=rwc", file.display()))
            .await
            .expect("opens");
        write_something(&db).await;
        assert_eq!(mode_of(&dir), 0o700);
        assert_eq!(mode_of(&file), 0o600);

        // A rollback journal exists while a write transaction is open.
        let mut tx = db.begin_write().await.expect("begun");
        sqlx::query("INSERT INTO t (v) VALUES ('in a transaction')")
            .execute(&mut *tx)
            .await
            .expect("inserted");
        assert_eq!(mode_of(&dir.join("auth.db-journal")), 0o600);
        tx.commit().await.expect("committed");

        // The write-ahead log and its index exist while the database is open in WAL mode.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(db.pool())
            .await
            .expect("WAL");
        write_something(&db).await;
        assert_eq!(mode_of(&dir.join("auth.db-wal")), 0o600);
        assert_eq!(mode_of(&dir.join("auth.db-shm")), 0o600);
        db.close().await;
    }

    #[tokio::test]
    async fn a_database_loosened_by_hand_keeps_its_mode_and_is_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("auth.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let db = Database::connect(&url).await.expect("opens");
        write_something(&db).await;
        db.close().await;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");

        let db = Database::connect(&url).await.expect("opens again");
        write_something(&db).await;

        assert_eq!(
            mode_of(&file),
            0o644,
            "not changed behind the operator's back"
        );
        let found = private_files::exposed(private_files::sqlite_files(&file));
        assert!(found.iter().any(|e| e.path == file), "{found:?}");
        db.close().await;
    }

    #[tokio::test]
    async fn without_mode_rwc_a_missing_database_is_not_created() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("absent.db");

        let opened = Database::connect(&format!("sqlite://{}", file.display())).await;

        assert!(opened.is_err());
        assert!(!file.exists());
    }

    #[tokio::test]
    async fn fetch_in_binds_each_value_of_the_list_and_reads_nothing_for_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db, _) = scratch_database(dir.path()).await;
        sqlx::query("INSERT INTO t (v) VALUES ('a'), ('b'), ('c')")
            .execute(db.pool())
            .await
            .expect("inserted");
        let select = "SELECT v FROM t WHERE v IN";

        let rows = db.fetch_in(select, ["c", "a", "x"]).await.expect("read");
        let mut found: Vec<String> = rows.iter().map(|row| row.get("v")).collect();
        found.sort();
        assert_eq!(found, ["a", "c"]);
        assert!(db.fetch_in(select, []).await.expect("read").is_empty());
        db.close().await;
    }

    #[tokio::test]
    async fn an_in_memory_database_still_opens() {
        let db = Database::connect("sqlite::memory:").await.expect("opens");
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(db.pool())
            .await
            .expect("answers");
        assert_eq!(one, 1);
        db.close().await;
    }
}
