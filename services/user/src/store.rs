//! The user service's SQL: profiles, and the ids of the events already applied to them. Every
//! write is one transaction (one statement, or the event's id and its effect together), so a
//! failure leaves nothing half-written.

use agora_platform::{
    events,
    storage::{Database, Migrations},
};
use sqlx::{
    Any, Row as _,
    any::{AnyArguments, AnyRow},
    query::Query,
};

use crate::domain::{
    Address, AddressFields, Cursor, EmailPrefix, Profile, ProfileChange, Registration,
};

/// The user service's migrations, per backend.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &sqlx::migrate!("./migrations/postgres"),
    sqlite: &sqlx::migrate!("./migrations/sqlite"),
};

/// The columns every profile query reads, listed once so the queries cannot drift apart.
const COLUMNS: &str = "user_id, email, display_name, addresses, language, currency_code, \
                       marketing_emails, created_at, updated_at";

use agora_platform::time::now_micros;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A stored column does not decode (the addresses' JSON): a bug or a hand-edited row.
    #[error("a stored profile does not decode: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// What applying a registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The profile was created.
    Created,
    /// The event was new, but a profile with its user id existed already; it was left as it is.
    ProfileExisted,
    /// The event had been applied before; nothing changed.
    AlreadyApplied,
}

/// The user service's database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

/// A value bound to a query built at run time.
enum Bind {
    Text(String),
    Int(i64),
}

impl Store {
    /// Wraps a migrated database.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Creates the profile of a registered account, once: the event id is remembered for
    /// `consumer` in the same transaction, and an existing profile is never overwritten (a
    /// redelivered event must not undo the user's later changes).
    ///
    /// # Errors
    /// The database failed; nothing was written.
    pub async fn record_registration(
        &self,
        consumer: &str,
        event_id: &str,
        registration: &Registration,
    ) -> Result<Recorded, StoreError> {
        let mut tx = self.db.begin_write().await?;
        if !events::remember(&mut tx, consumer, event_id).await? {
            tx.rollback().await?;
            return Ok(Recorded::AlreadyApplied);
        }
        let inserted = sqlx::query(
            "INSERT INTO profiles (user_id, email, created_at, updated_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(&registration.user_id)
        .bind(&registration.email)
        .bind(registration.registered_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if inserted.rows_affected() == 1 {
            Recorded::Created
        } else {
            Recorded::ProfileExisted
        })
    }

    /// The profile of `user_id`, if it exists.
    ///
    /// # Errors
    /// The database failed or the row does not decode.
    pub async fn profile(&self, user_id: &str) -> Result<Option<Profile>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM profiles WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(profile_from_row).transpose()
    }

    /// Applies `change` to the profile of `user_id` and returns the result; `None` when there
    /// is no such profile. Only the changed columns are written, in one statement, so two
    /// concurrent updates of different fields both take effect.
    ///
    /// # Errors
    /// The database failed; nothing was written.
    pub async fn update_profile(
        &self,
        user_id: &str,
        change: &ProfileChange,
    ) -> Result<Option<Profile>, StoreError> {
        let mut sets = Vec::new();
        let mut binds = vec![Bind::Text(user_id.to_owned())];
        let mut set = |column: &str, value: Bind| {
            binds.push(value);
            sets.push(format!("{column} = ${}", binds.len()));
        };
        if let Some(name) = &change.display_name {
            set("display_name", Bind::Text(name.as_str().to_owned()));
        }
        if let Some(addresses) = &change.addresses {
            let fields: Vec<&AddressFields> =
                addresses.as_slice().iter().map(Address::fields).collect();
            set("addresses", Bind::Text(serde_json::to_string(&fields)?));
        }
        if let Some(language) = &change.language {
            set("language", Bind::Text(language.as_str().to_owned()));
        }
        if let Some(currency) = &change.currency_code {
            set("currency_code", Bind::Text(currency.as_str().to_owned()));
        }
        if let Some(consent) = change.marketing_emails {
            set("marketing_emails", Bind::Int(i64::from(consent)));
        }
        set("updated_at", Bind::Int(now_micros()));
        let sql = format!(
            "UPDATE profiles SET {} WHERE user_id = $1 RETURNING {COLUMNS}",
            sets.join(", ")
        );
        let mut tx = self.db.begin_write().await?;
        let row = bound(&sql, binds).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        row.as_ref().map(profile_from_row).transpose()
    }

    /// Up to `limit` profiles, newest account first, whose email starts with `filter`, after
    /// `after` (the last profile of the previous page).
    ///
    /// # Errors
    /// The database failed or a row does not decode.
    pub async fn list_profiles(
        &self,
        filter: &EmailPrefix,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<Profile>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM profiles WHERE 1 = 1");
        let mut binds = Vec::new();
        if !filter.as_str().is_empty() {
            binds.push(Bind::Text(filter.like_pattern()));
            sql.push_str(&format!(" AND email LIKE ${} ESCAPE '\\'", binds.len()));
        }
        if let Some(cursor) = after {
            binds.push(Bind::Int(cursor.created_at));
            binds.push(Bind::Text(cursor.user_id.clone()));
            let (time, id) = (binds.len() - 1, binds.len());
            sql.push_str(&format!(
                " AND (created_at < ${time} OR (created_at = ${time} AND user_id < ${id}))"
            ));
        }
        sql.push_str(&format!(
            " ORDER BY created_at DESC, user_id DESC LIMIT {limit}"
        ));
        let rows = bound(&sql, binds).fetch_all(self.db.pool()).await?;
        rows.iter().map(profile_from_row).collect()
    }
}

/// A query built at run time with its values bound in order (`$1`, `$2`, ...).
fn bound(sql: &str, binds: Vec<Bind>) -> Query<'_, Any, AnyArguments<'_>> {
    binds
        .into_iter()
        .fold(sqlx::query(sql), |query, value| match value {
            Bind::Text(text) => query.bind(text),
            Bind::Int(int) => query.bind(int),
        })
}

fn profile_from_row(row: &AnyRow) -> Result<Profile, StoreError> {
    let addresses: Vec<AddressFields> =
        serde_json::from_str(&row.try_get::<String, _>("addresses")?)?;
    Ok(Profile {
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        display_name: row.try_get("display_name")?,
        addresses: addresses.into_iter().map(Address::from_stored).collect(),
        language: row.try_get("language")?,
        currency_code: row.try_get("currency_code")?,
        marketing_emails: row.try_get::<i64, _>("marketing_emails")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
