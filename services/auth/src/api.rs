//! The gRPC handlers of `agora.auth.v1.AuthService`. Each parses its request into its domain
//! value (`TryFrom`, collecting every field violation), calls the store, and maps the result;
//! failures are [`ServiceError`]s, which `crate::wire` turns into statuses.
//!
//! This file holds what the handlers share and dispatches each method to the file of its job:
//! `accounts` (Register, Login), `sessions` (Refresh, Logout, ListSessions, RevokeSession),
//! `service_tokens` (IssueServiceToken), `admin` (SetUserRoles) and `keys` (GetJwks,
//! RotateSigningKey).

use std::sync::Arc;

use agora_contracts::agora::auth::v1::{self as pb, auth_service_server::AuthService};
use agora_platform::cache::Cache;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use crate::{
    AuthSettings,
    device::DeviceTokens,
    domain::{Email, Password, Role},
    error::ServiceError,
    hashing::Hasher,
    keys::Keyring,
    store::{NewRefresh, Store, StoreError, now_micros},
    throttle::{Limits, LoginThrottle, RegistrationBudget},
    wire,
};

mod accounts;
mod address;
mod admin;
mod keys;
mod service_tokens;
mod sessions;

/// The auth service's handlers and what they share.
#[derive(Debug, Clone)]
pub struct AuthApi {
    settings: Arc<AuthSettings>,
    store: Store,
    hasher: Hasher,
    keys: Arc<Keyring>,
    throttle: LoginThrottle,
    registrations: RegistrationBudget,
    /// Signs the device tokens Login hands out and checks the ones presented.
    devices: DeviceTokens,
}

/// SHA-256 of a refresh token: what the store keeps instead of the token.
fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A store failure is answered as the [`ServiceError`] it is.
impl From<StoreError> for Status {
    fn from(error: StoreError) -> Self {
        ServiceError::from(error).into()
    }
}

/// What a store change of the `resource` `id` came to: NOT_FOUND when the store `found` no such
/// resource to change.
fn ensure_found(
    found: Result<bool, StoreError>,
    resource: &'static str,
    id: String,
) -> Result<(), ServiceError> {
    if found? {
        Ok(())
    } else {
        Err(ServiceError::NotFound { resource, id })
    }
}

impl AuthApi {
    /// Builds the handlers.
    ///
    /// # Errors
    /// The password hasher could not start.
    pub fn new(
        settings: AuthSettings,
        store: Store,
        cache: Cache,
        keys: Arc<Keyring>,
        devices: DeviceTokens,
    ) -> anyhow::Result<Self> {
        let registrations = RegistrationBudget::new(
            cache.clone(),
            settings.max_registrations_per_address,
            settings.registration_window,
        );
        let throttle = LoginThrottle::new(
            cache,
            Limits {
                per_device: settings.max_failed_logins_per_device,
                per_account: settings.max_failed_logins_per_account,
                per_address: settings.max_failed_logins_per_address,
                total: settings.max_failed_logins_total,
                window: settings.login_window,
            },
        );
        Ok(Self {
            hasher: Hasher::new(settings.max_concurrent_hashes)?,
            settings: Arc::new(settings),
            store,
            keys,
            throttle,
            registrations,
            devices,
        })
    }

    /// Creates or updates the configured administrator, if one is configured.
    ///
    /// # Errors
    /// The configured email or password is invalid, or the store failed.
    pub async fn ensure_admin(&self) -> anyhow::Result<()> {
        let (Some(email), Some(password)) =
            (&self.settings.admin_email, &self.settings.admin_password)
        else {
            return Ok(());
        };
        let email = Email::parse(email).map_err(|e| anyhow::anyhow!("auth.admin_email {e}"))?;
        let password = Password::parse(password.expose_secret(), Some(&email))
            .map_err(|e| anyhow::anyhow!("auth.admin_password {e}"))?;
        let hash = self.hasher.hash(password.expose().to_owned()).await?;
        let id = self.store.ensure_admin(&email, &hash).await?;
        tracing::info!(%email, user_id = id, "administrator ready");
        Ok(())
    }

    /// A new refresh token and what the store keeps of it.
    fn new_refresh(&self) -> (String, NewRefresh) {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let record = NewRefresh {
            token_hash: token_hash(&token),
            expires_at: now_micros() + agora_platform::time::span_micros(self.settings.refresh_ttl),
        };
        (token, record)
    }

    /// The tokens of a sign-in or refresh of `session_id`: its access token names the session,
    /// so revoking the session revokes the token.
    async fn tokens(
        &self,
        user_id: &str,
        session_id: &str,
        roles: &[Role],
        refresh: String,
        record: &NewRefresh,
    ) -> Result<pb::Tokens, ServiceError> {
        let names = roles.iter().map(|r| r.name().to_owned()).collect();
        let ttl = self.settings.access_ttl;
        let (access, exp) = self
            .keys
            .sign(user_id, names, Some(session_id), ttl)
            .await
            .map_err(ServiceError::Keys)?;
        Ok(wire::tokens(access, exp, ttl, refresh, record))
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        accounts::register(self, request).await
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        accounts::login(self, request).await
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        sessions::refresh(self, request).await
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        sessions::logout(self, request).await
    }

    async fn get_jwks(
        &self,
        request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        keys::get_jwks(self, request).await
    }

    async fn issue_service_token(
        &self,
        request: Request<pb::IssueServiceTokenRequest>,
    ) -> Result<Response<pb::IssueServiceTokenResponse>, Status> {
        service_tokens::issue_service_token(self, request).await
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        sessions::list_sessions(self, request).await
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        sessions::revoke_session(self, request).await
    }

    async fn set_user_roles(
        &self,
        request: Request<pb::SetUserRolesRequest>,
    ) -> Result<Response<pb::SetUserRolesResponse>, Status> {
        admin::set_user_roles(self, request).await
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        keys::rotate_signing_key(self, request).await
    }
}
