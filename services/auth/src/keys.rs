//! Signing keys and the tokens they sign.
//!
//! Access tokens are EdDSA (Ed25519) JWTs. The signing key comes from configuration (a PKCS#8
//! PEM) or is generated once and kept in the auth database, so every replica signs with the same
//! key and restarts do not sign everyone out. A rotation retires the current key; retired keys
//! stay in the JWKS until every token they signed has expired.

use std::{sync::Arc, time::Duration};

use agora_contracts::agora::auth::v1::Jwk;
use agora_platform::{
    access::{Claims, KeySource},
    config::TokenSettings,
    storage::Database,
};
use anyhow::Context as _;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{
    SigningKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::sync::RwLock;

use crate::store::now_micros;

/// The key that signs now.
struct Current {
    kid: String,
    encoding: EncodingKey,
    created_at: i64,
}

/// The signing key and the published key set.
pub struct Keyring {
    db: Option<Database>,
    current: RwLock<Current>,
    /// Public keys to publish, current first, each with when it was retired (`None`: current);
    /// with a configured key, only that one.
    published: RwLock<Vec<(Jwk, Option<i64>)>>,
    tokens: TokenSettings,
    /// The longest lifetime of any token a key signs: a retired key stays published this long
    /// (plus clock leeway), so every token it signed still verifies.
    token_lifetime: Duration,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").finish_non_exhaustive()
    }
}

/// The JWK of an Ed25519 public key.
fn jwk(kid: &str, public: &[u8]) -> Jwk {
    Jwk {
        kty: "OKP".into(),
        crv: "Ed25519".into(),
        x: URL_SAFE_NO_PAD.encode(public),
        kid: kid.into(),
        alg: "EdDSA".into(),
        r#use: "sig".into(),
    }
}

/// A key id derived from the public key, so the same key always has the same id.
fn kid_of(public: &[u8]) -> String {
    let digest = Sha256::digest(public);
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

fn encoding_key(key: &SigningKey) -> anyhow::Result<EncodingKey> {
    let der = key
        .to_pkcs8_der()
        .context("encoding the signing key as PKCS#8")?;
    Ok(EncodingKey::from_ed_der(der.as_bytes()))
}

impl Keyring {
    /// Uses the configured PEM key; rotation is then the operator's job (a new PEM).
    ///
    /// # Errors
    /// The PEM is not an Ed25519 PKCS#8 private key.
    pub fn from_pem(
        pem: &str,
        tokens: TokenSettings,
        token_lifetime: Duration,
    ) -> anyhow::Result<Self> {
        let key = SigningKey::from_pkcs8_pem(pem)
            .context("auth.signing_key_pem is not an Ed25519 PKCS#8 PEM private key")?;
        let public = key.verifying_key().to_bytes();
        let kid = kid_of(&public);
        Ok(Self {
            db: None,
            current: RwLock::new(Current {
                kid: kid.clone(),
                encoding: encoding_key(&key)?,
                created_at: now_micros(),
            }),
            published: RwLock::new(vec![(jwk(&kid, &public), None)]),
            tokens,
            token_lifetime,
        })
    }

    /// Loads the keys from the database, generating the first one when there is none.
    ///
    /// # Errors
    /// The database failed or holds a malformed key.
    pub async fn from_database(
        db: Database,
        tokens: TokenSettings,
        token_lifetime: Duration,
    ) -> anyhow::Result<Self> {
        let current = load_or_create(&db).await?;
        let keyring = Self {
            db: Some(db),
            current: RwLock::new(current),
            published: RwLock::new(Vec::new()),
            tokens,
            token_lifetime,
        };
        keyring.reload().await?;
        Ok(keyring)
    }

    /// Re-reads the current key and the published set (other replicas may have rotated).
    ///
    /// # Errors
    /// The database failed or holds a malformed key.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let Some(db) = &self.db else {
            return Ok(());
        };
        let current = load_or_create(db).await?;
        let rows = sqlx::query(
            "SELECT kid, public_x, retired_at FROM signing_keys
             WHERE retired_at IS NULL OR retired_at > $1
             ORDER BY created_at DESC, kid",
        )
        .bind(now_micros().saturating_sub(self.grace()))
        .fetch_all(db.pool())
        .await
        .context("reading the published keys")?;
        let mut published = Vec::with_capacity(rows.len());
        for row in rows {
            let kid: String = row.try_get("kid")?;
            let x: String = row.try_get("public_x")?;
            let retired_at: Option<i64> = row.try_get("retired_at")?;
            let public = URL_SAFE_NO_PAD.decode(&x).context("a stored public key")?;
            published.push((jwk(&kid, &public), retired_at));
        }
        // The current key goes first whatever the clock said about creation times.
        if let Some(position) = published.iter().position(|(k, _)| k.kid == current.kid) {
            let first = published.remove(position);
            published.insert(0, first);
        }
        *self.current.write().await = current;
        *self.published.write().await = published;
        Ok(())
    }

    /// Retires the current key and signs with a new one from now on.
    ///
    /// # Errors
    /// Keys come from configuration, or the database failed.
    pub async fn rotate(&self) -> anyhow::Result<Option<String>> {
        let Some(db) = &self.db else {
            return Ok(None);
        };
        let mut tx = db.begin_write().await?;
        let now = now_micros();
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let kid = insert_new_key(&mut tx, now).await?;
        tx.commit().await?;
        self.reload().await?;
        tracing::info!(kid, "rotated the signing key");
        Ok(Some(kid))
    }

    /// Rotates when the current key is older than `max_age`.
    ///
    /// # Errors
    /// See [`Keyring::rotate`].
    pub async fn rotate_if_older_than(&self, max_age: Duration) -> anyhow::Result<()> {
        let created_at = self.current.read().await.created_at;
        let age = Duration::from_micros(u64::try_from(now_micros() - created_at).unwrap_or(0));
        if self.db.is_some() && age > max_age {
            self.rotate().await?;
        }
        Ok(())
    }

    /// How long after its retirement a key still verifies tokens, in microseconds.
    fn grace(&self) -> i64 {
        agora_platform::time::micros(self.token_lifetime + self.tokens.leeway)
    }

    /// The published key set, current key first: the current key and every retired key that
    /// may have signed a token still accepted.
    pub async fn jwks(&self) -> Vec<Jwk> {
        let oldest = now_micros().saturating_sub(self.grace());
        self.published
            .read()
            .await
            .iter()
            .filter(|(_, retired_at)| retired_at.is_none_or(|at| at > oldest))
            .map(|(jwk, _)| jwk.clone())
            .collect()
    }

    /// Signs an access token for `subject` with `roles`, valid for `ttl`.
    ///
    /// # Errors
    /// Signing failed.
    pub async fn sign(
        &self,
        subject: &str,
        roles: Vec<String>,
        session_id: Option<&str>,
        ttl: Duration,
    ) -> anyhow::Result<(String, i64)> {
        let now = now_micros() / 1_000_000;
        let exp = now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            iss: self.tokens.issuer.clone(),
            aud: self.tokens.audience.clone(),
            sub: subject.to_owned(),
            iat: now,
            nbf: now,
            exp,
            // A UUIDv7: it also says when the token was issued to the millisecond, which the
            // revocations compare with the time of a role change.
            jti: uuid::Uuid::now_v7().to_string(),
            roles,
            sid: session_id.map(str::to_owned),
        };
        let current = self.current.read().await;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(current.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &current.encoding)
            .context("signing an access token")?;
        Ok((token, exp))
    }
}

/// The current key (not retired), creating one when there is none.
async fn load_or_create(db: &Database) -> anyhow::Result<Current> {
    let select = "SELECT kid, private_pem, created_at FROM signing_keys
                  WHERE retired_at IS NULL ORDER BY created_at DESC, kid LIMIT 1";
    let row = sqlx::query(select).fetch_optional(db.pool()).await?;
    let row = match row {
        Some(row) => row,
        None => {
            let mut tx = db.begin_write().await?;
            // Another replica may have created one meanwhile; then use it.
            if sqlx::query(select)
                .fetch_optional(&mut *tx)
                .await?
                .is_none()
            {
                insert_new_key(&mut tx, now_micros()).await?;
            }
            tx.commit().await?;
            sqlx::query(select)
                .fetch_one(db.pool())
                .await
                .context("reading the signing key just created")?
        }
    };
    let kid: String = row.try_get("kid")?;
    let pem: String = row.try_get("private_pem")?;
    let created_at: i64 = row.try_get("created_at")?;
    let key = SigningKey::from_pkcs8_pem(&pem).context("a stored signing key is malformed")?;
    Ok(Current {
        kid,
        encoding: encoding_key(&key)?,
        created_at,
    })
}

async fn insert_new_key(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    now: i64,
) -> anyhow::Result<String> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let public = key.verifying_key().to_bytes();
    let kid = kid_of(&public);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding a new signing key")?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, private_pem, public_x, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&kid)
    .bind(pem.as_str())
    .bind(URL_SAFE_NO_PAD.encode(public))
    .bind(now)
    .execute(&mut **tx)
    .await
    .context("storing a new signing key")?;
    Ok(kid)
}

/// The auth service's own verifier reads keys in process, not over gRPC. It is filled once the
/// store is open; until then verification answers UNAVAILABLE.
#[derive(Debug, Default, Clone)]
pub struct LocalKeys(pub Arc<std::sync::OnceLock<Arc<Keyring>>>);

#[async_trait::async_trait]
impl KeySource for LocalKeys {
    async fn fetch(&self) -> anyhow::Result<Vec<Jwk>> {
        match self.0.get() {
            Some(keyring) => Ok(keyring.jwks().await),
            None => anyhow::bail!("the auth service is starting"),
        }
    }
}
