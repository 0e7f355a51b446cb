//! Sessions and their refresh tokens: opening, rotating (with reuse detection), listing and
//! revoking them. A revocation is announced (`SessionRevoked`) in its own transaction.

use agora_platform::time::timestamp;
use sqlx::{Any, Row, Transaction};

use super::{NewRefresh, PRODUCER, RefreshOutcome, SessionRow, Store, StoreError, now_micros};
use crate::domain::roles_from_column;

impl Store {
    /// Opens a new session for an existing account.
    ///
    /// # Errors
    /// The database failed.
    pub async fn open_session(
        &self,
        user_id: &str,
        session_id: &str,
        refresh: &NewRefresh,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().await?;
        insert_session(&mut tx, user_id, session_id, refresh, now_micros()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Spends a refresh token and, when it was live, stores its successor in the same session.
    /// Presenting a spent token revokes the session (someone replayed a stolen token).
    ///
    /// # Errors
    /// The database failed.
    pub async fn refresh(
        &self,
        token_hash: &str,
        next: &NewRefresh,
    ) -> Result<RefreshOutcome, StoreError> {
        let now = now_micros();
        let mut tx = self.db.begin_write().await?;
        // Spending first takes the row lock, so two concurrent refreshes of one token cannot both
        // succeed: the second sees it spent.
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET spent_at = $1
             WHERE token_hash = $2 AND spent_at IS NULL
             RETURNING session_id, expires_at",
        )
        .bind(now)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(spent) = spent else {
            let Some(session_id) = session_of(&mut tx, token_hash).await? else {
                return Ok(RefreshOutcome::Invalid);
            };
            revoke(
                &mut tx,
                &session_id,
                None,
                "refresh token reused",
                self.deny_for,
            )
            .await?;
            tx.commit().await?;
            tracing::warn!(
                session_id,
                "a spent refresh token was presented; session revoked"
            );
            return Ok(RefreshOutcome::ReuseDetected);
        };
        let session_id: String = spent.try_get("session_id")?;
        let token_expires: i64 = spent.try_get("expires_at")?;
        let session = sqlx::query(
            "SELECT s.user_id, u.roles FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2",
        )
        .bind(&session_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let (Some(session), true) = (session, token_expires > now) else {
            // Nothing to change: leave the token unspent rather than half-process it.
            tx.rollback().await?;
            return Ok(RefreshOutcome::Invalid);
        };
        insert_refresh(&mut tx, &session_id, next, now).await?;
        sqlx::query("UPDATE sessions SET last_refresh_at = $1, expires_at = $2 WHERE id = $3")
            .bind(now)
            .bind(next.expires_at)
            .bind(&session_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated {
            session_id,
            user_id: session.try_get("user_id")?,
            roles: roles_from_column(&session.try_get::<String, _>("roles")?),
        })
    }

    /// Revokes the session a refresh token (spent or not) belongs to; unknown tokens are ignored.
    ///
    /// # Errors
    /// The database failed.
    pub async fn logout(&self, token_hash: &str) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().await?;
        if let Some(session_id) = session_of(&mut tx, token_hash).await? {
            revoke(&mut tx, &session_id, None, "logout", self.deny_for).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The live sessions of an account, newest first.
    ///
    /// # Errors
    /// The database failed.
    pub async fn sessions(&self, user_id: &str) -> Result<Vec<SessionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, created_at, last_refresh_at, expires_at FROM sessions
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
             ORDER BY created_at DESC, id DESC",
        )
        .bind(user_id)
        .bind(now_micros())
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(SessionRow {
                    id: row.try_get("id")?,
                    created_at: row.try_get("created_at")?,
                    last_refresh_at: row.try_get("last_refresh_at")?,
                    expires_at: row.try_get("expires_at")?,
                })
            })
            .collect()
    }

    /// Revokes one of the account's sessions; `false` when the account has no such session.
    ///
    /// # Errors
    /// The database failed.
    pub async fn revoke_session(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.begin_write().await?;
        let exists = sqlx::query("SELECT 1 AS one FROM sessions WHERE id = $1 AND user_id = $2")
            .bind(session_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if exists {
            revoke(
                &mut tx,
                session_id,
                Some(user_id),
                "revoked by its owner",
                self.deny_for,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(exists)
    }
}

/// Stores a new session and its first refresh token.
pub(super) async fn insert_session(
    tx: &mut Transaction<'static, Any>,
    user_id: &str,
    session_id: &str,
    refresh: &NewRefresh,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, created_at, last_refresh_at, expires_at)
         VALUES ($1, $2, $3, $3, $4)",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(now)
    .bind(refresh.expires_at)
    .execute(&mut **tx)
    .await?;
    insert_refresh(tx, session_id, refresh, now).await
}

/// Stores a refresh token of a session.
async fn insert_refresh(
    tx: &mut Transaction<'static, Any>,
    session_id: &str,
    refresh: &NewRefresh,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&refresh.token_hash)
    .bind(session_id)
    .bind(now)
    .bind(refresh.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The session a refresh token (spent or not) belongs to, `None` for an unknown token.
async fn session_of(
    tx: &mut Transaction<'static, Any>,
    token_hash: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(&mut **tx)
        .await
}

/// Revokes a live session (of `user_id` when given) and announces it (`SessionRevoked`) in the
/// same transaction, so every verifier refuses its access tokens; a session already revoked is
/// left as it is and announced no more.
async fn revoke(
    tx: &mut Transaction<'static, Any>,
    session_id: &str,
    user_id: Option<&str>,
    reason: &str,
    deny_for: i64,
) -> Result<(), sqlx::Error> {
    let now = now_micros();
    let revoked = sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoke_reason = $2
         WHERE id = $3 AND revoked_at IS NULL AND ($4 IS NULL OR user_id = $4)
         RETURNING user_id",
    )
    .bind(now)
    .bind(reason)
    .bind(session_id)
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = revoked {
        let event = agora_contracts::agora::events::v1::SessionRevoked {
            session_id: session_id.to_owned(),
            user_id: row.try_get("user_id")?,
            revoke_time: Some(timestamp(now)),
            reason: reason.to_owned(),
            deny_until: Some(timestamp(now + deny_for)),
        };
        agora_platform::events::enqueue(tx, PRODUCER, session_id, &event).await?;
    }
    Ok(())
}
