//! Auth's SQL: accounts, sessions and refresh tokens. Every multi-step change runs in one write
//! transaction, so a failure leaves nothing half-written. Accounts are here; sessions and their
//! refresh tokens in `sessions`.

use agora_platform::{
    storage::{Database, Migrations, is_unique_violation},
    time::{micros_or, timestamp},
};
use sqlx::{Any, Row, Transaction};

use crate::domain::{Email, Role, roles_from_column, roles_to_column};

mod sessions;

use sessions::insert_session;

/// The producer name of auth's events, and its stream on the bus.
pub const PRODUCER: &str = agora_platform::events::Stream::Auth.name();

/// Auth's migrations, per backend.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &sqlx::migrate!("./migrations/postgres"),
    sqlite: &sqlx::migrate!("./migrations/sqlite"),
};

pub use agora_platform::time::now_micros;

/// Store failures the service distinguishes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The email is registered already.
    #[error("email taken")]
    EmailTaken,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// An account as stored.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its id.
    pub id: String,
    /// Its argon2id PHC hash.
    pub password_hash: String,
    /// Its roles.
    pub roles: Vec<Role>,
}

/// A new refresh token to store.
#[derive(Debug, Clone)]
pub struct NewRefresh {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// When it expires.
    pub expires_at: i64,
}

/// What a refresh attempt found.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// The token was live: it is now spent and `next` belongs to the same session.
    Rotated {
        /// The session, which the new access token names.
        session_id: String,
        /// The session's account.
        user_id: String,
        /// The account's roles now.
        roles: Vec<Role>,
    },
    /// The token was spent before: the whole session is now revoked.
    ReuseDetected,
    /// Unknown, expired, or its session is revoked or expired.
    Invalid,
}

/// A live session.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// Its id.
    pub id: String,
    /// When it began.
    pub created_at: i64,
    /// When it was last refreshed.
    pub last_refresh_at: i64,
    /// When it ends unless refreshed.
    pub expires_at: i64,
}

/// Auth's database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
    /// How long a revocation must be enforced, in micros: the longest lifetime of the access
    /// tokens it concerns, plus the clock leeway verifiers allow.
    deny_for: i64,
}

impl Store {
    /// Wraps a migrated database whose access tokens live at most `token_lifetime`.
    pub fn new(db: Database, token_lifetime: std::time::Duration) -> Self {
        Self {
            db,
            // A quarter of i64 past what fits: `now + deny_for` and the deny_until sent in events
            // stay far from overflowing.
            deny_for: micros_or(token_lifetime, i64::MAX / 4),
        }
    }

    /// Creates an account and its first session in one transaction.
    ///
    /// # Errors
    /// The email is taken, or the database failed.
    pub async fn register(
        &self,
        user_id: &str,
        email: &Email,
        password_hash: &str,
        roles: &[Role],
        session_id: &str,
        refresh: &NewRefresh,
    ) -> Result<(), StoreError> {
        let now = now_micros();
        let mut tx = self.db.begin_write().await?;
        match insert_user(&mut tx, user_id, email, password_hash, roles, now).await {
            Err(error) if is_unique_violation(&error) => return Err(StoreError::EmailTaken),
            other => other?,
        };
        insert_session(&mut tx, user_id, session_id, refresh, now).await?;
        enqueue_registered(&mut tx, user_id, email, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account registered under `email`.
    ///
    /// # Errors
    /// The database failed.
    pub async fn account_by_email(&self, email: &Email) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query("SELECT id, password_hash, roles FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(self.db.pool())
            .await?;
        row.map(|row| {
            Ok(Account {
                id: row.try_get("id")?,
                password_hash: row.try_get("password_hash")?,
                roles: roles_from_column(&row.try_get::<String, _>("roles")?),
            })
        })
        .transpose()
    }
    /// Replaces an account's roles; `false` when there is no such account.
    ///
    /// # Errors
    /// The database failed.
    /// The change is announced (`UserAccessChanged`) in the same transaction, so every verifier
    /// refuses the account's earlier access tokens, which carry the old roles.
    pub async fn set_roles(&self, user_id: &str, roles: &[Role]) -> Result<bool, StoreError> {
        let mut tx = self.db.begin_write().await?;
        let updated = sqlx::query("UPDATE users SET roles = $1 WHERE id = $2")
            .bind(roles_to_column(roles))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let now = now_micros();
        let changed = agora_contracts::agora::events::v1::UserAccessChanged {
            user_id: user_id.to_owned(),
            change_time: Some(timestamp(now)),
            deny_until: Some(timestamp(now + self.deny_for)),
        };
        agora_platform::events::enqueue(&mut tx, PRODUCER, user_id, &changed).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Makes sure the configured administrator exists and holds the admin role.
    ///
    /// # Errors
    /// The database failed.
    pub async fn ensure_admin(
        &self,
        email: &Email,
        password_hash: &str,
    ) -> Result<String, StoreError> {
        let mut tx = self.db.begin_write().await?;
        let existing: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let id = match existing {
            Some(id) => {
                sqlx::query("UPDATE users SET roles = $1, password_hash = $2 WHERE id = $3")
                    .bind(roles_to_column(&[Role::Admin]))
                    .bind(password_hash)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                id
            }
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                let now = now_micros();
                insert_user(&mut tx, &id, email, password_hash, &[Role::Admin], now).await?;
                enqueue_registered(&mut tx, &id, email, now).await?;
                id
            }
        };
        tx.commit().await?;
        Ok(id)
    }

    /// The secret stored under `name`, storing `candidate` first when there is none. Replicas
    /// starting together each offer their own candidate; the first written wins for all.
    ///
    /// # Errors
    /// The database failed.
    pub async fn secret_or_insert(
        &self,
        name: &str,
        candidate: &str,
    ) -> Result<String, StoreError> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .bind(now_micros())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT value FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row.try_get("value")?)
    }
}

/// Stores a new account.
async fn insert_user(
    tx: &mut Transaction<'static, Any>,
    user_id: &str,
    email: &Email,
    password_hash: &str,
    roles: &[Role],
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, roles, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user_id)
    .bind(email.as_str())
    .bind(password_hash)
    .bind(roles_to_column(roles))
    .bind(now_micros)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Tells the other services that an account exists (the user service creates its profile), in
/// the transaction that creates it.
async fn enqueue_registered(
    tx: &mut Transaction<'static, Any>,
    user_id: &str,
    email: &Email,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    let registered = agora_contracts::agora::events::v1::UserRegistered {
        user_id: user_id.to_owned(),
        email: email.as_str().to_owned(),
        register_time: Some(timestamp(now_micros)),
    };
    agora_platform::events::enqueue(tx, PRODUCER, user_id, &registered).await?;
    Ok(())
}
