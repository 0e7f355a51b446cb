//! Running a write transaction again when the database gave up on it for reasons of its own
//! (a deadlock, a serialization conflict, a busy SQLite file), the same way in every service.

use std::time::Duration;

/// Attempts of a write transaction that failed transiently, the first one included.
pub const WRITE_ATTEMPTS: u32 = 4;

/// An error that may be a database failure: what [`retry_transient`] looks into.
pub trait DatabaseFailure: std::fmt::Display {
    /// The database error behind this one, if it is one.
    fn database_error(&self) -> Option<&sqlx::Error>;
}

impl DatabaseFailure for sqlx::Error {
    fn database_error(&self) -> Option<&sqlx::Error> {
        Some(self)
    }
}

/// Whether a failed transaction is worth running again: PostgreSQL gave up on it to break a
/// deadlock (`40P01`) or a serialization conflict (`40001`), or SQLite stayed busy past its
/// timeout (`SQLITE_BUSY` 5, `SQLITE_BUSY_RECOVERY` 517).
pub fn is_transient(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| matches!(code.as_ref(), "40001" | "40P01" | "5" | "517"))
}

/// Runs a write transaction (`attempt` begins, writes and commits it) again when it failed
/// transiently, up to [`WRITE_ATTEMPTS`] times in all, waiting 5 ms more before each new try.
/// Any other failure, and the last transient one, is returned as it is.
///
/// # Errors
/// The error of the last attempt.
pub async fn retry_transient<T, E, F, Fut>(mut attempt: F) -> Result<T, E>
where
    E: DatabaseFailure,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(error)
                if tries < WRITE_ATTEMPTS && error.database_error().is_some_and(is_transient) =>
            {
                tracing::debug!(error = %error, tries, "transient write failure; trying again");
                tokio::time::sleep(Duration::from_millis(5 * u64::from(tries))).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use sqlx::Connection as _;

    use super::*;
    use crate::storage::scratch_database;

    /// A transient failure as SQLite reports it: the database stays locked by another writer.
    async fn busy_error() -> sqlx::Error {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db, url) = scratch_database(dir.path()).await;
        let _holder = db.begin_write().await.expect("first writer");
        // A second connection without a busy timeout fails at once instead of waiting.
        let mut other = sqlx::AnyConnection::connect(&url)
            .await
            .expect("second connection");
        sqlx::query("PRAGMA busy_timeout = 0")
            .execute(&mut other)
            .await
            .expect("no waiting");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .expect_err("the database is locked")
    }

    #[tokio::test]
    async fn a_transient_failure_is_tried_again_until_it_succeeds() {
        let busy = busy_error().await;
        assert!(is_transient(&busy), "{busy:?}");
        let tries = AtomicU32::new(0);
        let result: Result<u32, sqlx::Error> = retry_transient(|| async {
            let this = tries.fetch_add(1, Ordering::SeqCst) + 1;
            if this < 3 {
                Err(busy_error().await)
            } else {
                Ok(this)
            }
        })
        .await;
        assert_eq!(result.expect("the third try succeeds"), 3);
    }

    #[tokio::test]
    async fn a_transient_failure_is_tried_at_most_write_attempts_times() {
        let tries = AtomicU32::new(0);
        let result: Result<(), sqlx::Error> = retry_transient(|| async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(busy_error().await)
        })
        .await;
        assert!(result.is_err());
        assert_eq!(tries.load(Ordering::SeqCst), WRITE_ATTEMPTS);
    }

    #[tokio::test]
    async fn a_write_runs_each_attempt_in_a_transaction_of_its_own() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db, _) = scratch_database(dir.path()).await;
        let tries = &AtomicU32::new(0);

        let result: Result<(), sqlx::Error> = db
            .write(|mut tx| async move {
                sqlx::query("INSERT INTO t (v) VALUES ('a')")
                    .execute(&mut *tx)
                    .await?;
                if tries.fetch_add(1, Ordering::SeqCst) == 0 {
                    tx.rollback().await?;
                    return Err(busy_error().await);
                }
                tx.commit().await
            })
            .await;

        result.expect("the second try commits");
        assert_eq!(tries.load(Ordering::SeqCst), 2);
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(db.pool())
            .await
            .expect("counted");
        assert_eq!(rows, 1, "only the committed attempt's row is kept");
        db.close().await;
    }

    #[tokio::test]
    async fn any_other_failure_is_returned_at_once() {
        let tries = AtomicU32::new(0);
        let result: Result<(), sqlx::Error> = retry_transient(|| async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(sqlx::Error::RowNotFound)
        })
        .await;
        assert!(matches!(result, Err(sqlx::Error::RowNotFound)));
        assert_eq!(tries.load(Ordering::SeqCst), 1);
        assert!(!is_transient(&sqlx::Error::RowNotFound));
    }
}
