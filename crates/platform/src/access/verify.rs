//! Bearer tokens: where the public keys come from, and the checks every token passes.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use agora_contracts::agora::auth::v1::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::{Mutex, RwLock};

use super::{Claims, Principal};
use crate::{config::TokenSettings, revocation::Revocations};

/// Where a [`Verifier`] gets the public keys from.
#[async_trait::async_trait]
pub trait KeySource: Send + Sync + 'static {
    /// The current JSON Web Key Set.
    async fn fetch(&self) -> anyhow::Result<Vec<Jwk>>;
}

/// Keys from the auth service's `GetJwks`, over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcKeySource {
    client: agora_contracts::agora::auth::v1::auth_service_client::AuthServiceClient<
        crate::metrics::Metered<tonic::transport::Channel>,
    >,
}

impl GrpcKeySource {
    /// Fetches keys from the auth service behind `channel`.
    pub fn new(channel: tonic::transport::Channel) -> Self {
        Self {
            client: agora_contracts::agora::auth::v1::auth_service_client::AuthServiceClient::new(
                crate::metrics::Metered::new(channel),
            ),
        }
    }
}

#[async_trait::async_trait]
impl KeySource for GrpcKeySource {
    async fn fetch(&self) -> anyhow::Result<Vec<Jwk>> {
        let mut request = tonic::Request::new(agora_contracts::agora::auth::v1::GetJwksRequest {});
        request.set_timeout(Duration::from_secs(5));
        Ok(self
            .client
            .clone()
            .get_jwks(request)
            .await?
            .into_inner()
            .keys)
    }
}

/// Why a token was refused. The client only ever hears "invalid token"; the reason is logged.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, a bad signature, a wrong algorithm, expired, wrong issuer or audience, ...
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// The header names no key, or a key the auth service does not publish.
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// The keys could not be fetched.
    #[error("signing keys unavailable: {0:#}")]
    KeysUnavailable(anyhow::Error),
    /// Its session was revoked, or its account's access changed after it was issued.
    #[error("token of a revoked session, or issued before its account's access changed")]
    Revoked,
}

/// Verifies access tokens with the auth service's public keys, cached by `kid` and fetched again
/// when a token names a key the cache does not hold (a rotation).
pub struct Verifier {
    source: Arc<dyn KeySource>,
    validation: Validation,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// When keys were last fetched: a flood of tokens with made-up `kid`s must not turn into a
    /// flood of JWKS fetches, so fetches are at least `min_refresh` apart.
    last_fetch: Mutex<Option<Instant>>,
    min_refresh: Duration,
    /// Tokens refused before they expire; none when the verifier follows no revocations.
    revocations: Option<Arc<Revocations>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for tokens with the given issuer and audience.
    pub fn new(source: Arc<dyn KeySource>, settings: &TokenSettings) -> Self {
        // One algorithm only: a token that says HS256 (or none) is refused before any key is
        // used, so a public key can never be used as an HMAC secret.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = settings.leeway.as_secs();
        Self {
            source,
            validation,
            keys: RwLock::default(),
            last_fetch: Mutex::default(),
            min_refresh: Duration::from_secs(1),
            revocations: None,
        }
    }

    /// Also refuses the tokens `revocations` names (revoked sessions, changed roles).
    #[must_use]
    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// Sets the shortest time between two key fetches (default one second).
    #[must_use]
    pub fn with_min_refresh(mut self, min_refresh: Duration) -> Self {
        self.min_refresh = min_refresh;
        self
    }

    /// Checks a token and returns who it speaks for.
    ///
    /// # Errors
    /// Any reason the token is not acceptable.
    pub async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        if header.alg != Algorithm::EdDSA {
            return Err(jsonwebtoken::errors::Error::from(
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm,
            )
            .into());
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = match self.cached(&kid).await {
            Some(key) => key,
            None => {
                self.refresh().await?;
                self.cached(&kid).await.ok_or(TokenError::UnknownKey)?
            }
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation)?;
        if self
            .revocations
            .as_ref()
            .is_some_and(|revocations| revocations.refuses(&data.claims))
        {
            return Err(TokenError::Revoked);
        }
        Ok(Principal {
            subject: data.claims.sub,
            roles: data.claims.roles,
        })
    }

    async fn cached(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().await.get(kid).cloned()
    }

    /// Fetches the key set again, unless it was fetched less than `min_refresh` ago.
    async fn refresh(&self) -> Result<(), TokenError> {
        let mut last_fetch = self.last_fetch.lock().await;
        if last_fetch.is_some_and(|at| at.elapsed() < self.min_refresh) {
            return Ok(());
        }
        let jwks = self
            .source
            .fetch()
            .await
            .map_err(TokenError::KeysUnavailable)?;
        *last_fetch = Some(Instant::now());
        let mut keys = HashMap::new();
        for jwk in jwks {
            if jwk.kty == "OKP" && jwk.crv == "Ed25519" && jwk.alg == "EdDSA" {
                match DecodingKey::from_ed_components(&jwk.x) {
                    Ok(key) => {
                        keys.insert(jwk.kid, key);
                    }
                    Err(error) => tracing::warn!(kid = jwk.kid, %error, "skipping a malformed JWK"),
                }
            }
        }
        *self.keys.write().await = keys;
        Ok(())
    }
}
