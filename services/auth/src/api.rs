//! The gRPC handlers of `agora.auth.v1.AuthService`. Each parses its request into domain types
//! (collecting every field violation), calls the store, and maps the result.

use std::sync::Arc;

use agora_contracts::agora::auth::v1::{self as pb, auth_service_server::AuthService};
use agora_platform::{
    access::{Principal, ROLE_SERVICE},
    cache::Cache,
    error::{ApiError, FieldViolations},
    events::Background,
    storage::timestamp,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use crate::{
    AuthSettings,
    device::DeviceTokens,
    domain::{Email, Password, PresentedPassword, Role},
    hashing::Hasher,
    keys::Keyring,
    store::{NewRefresh, RefreshOutcome, Store, StoreError, now_micros},
    throttle::{Attempt, Limits, LoginThrottle, RegistrationBudget},
};

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
    /// The outbox relay: it runs as long as the service does.
    _relay: Arc<Background>,
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::EmailTaken => ApiError::AlreadyExists {
                reason: "EMAIL_TAKEN",
                message: "an account with this email exists already".into(),
            },
            StoreError::Database(error) => ApiError::internal(error),
        }
    }
}

impl From<crate::hashing::HashError> for ApiError {
    fn from(error: crate::hashing::HashError) -> Self {
        ApiError::internal(error)
    }
}

/// SHA-256 of a refresh token: what the store keeps instead of the token.
fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn parse_uuid(field: &str, raw: &str, violations: &mut FieldViolations) -> Option<String> {
    match uuid::Uuid::parse_str(raw) {
        Ok(id) => Some(id.hyphenated().to_string()),
        Err(_) => {
            violations.add(field, "must be a UUID");
            None
        }
    }
}

/// The client's address, for throttling: the peer's, or, when the peer is a trusted proxy (the
/// edge), the nearest address in its `x-forwarded-for` that is not itself a trusted proxy.
fn client_address<T>(request: &Request<T>, trusted: &[ipnet::IpNet]) -> Option<String> {
    let peer = request.remote_addr()?.ip();
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer.to_string());
    }
    let forwarded = request
        .metadata()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let client = forwarded
        .iter()
        .rev()
        .map_while(|hop| hop.parse::<std::net::IpAddr>().ok())
        .find(|ip| !is_trusted(ip));
    Some(client.unwrap_or(peer).to_string())
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
        relay: Background,
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
            _relay: Arc::new(relay),
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
    ) -> Result<pb::Tokens, ApiError> {
        let names = roles.iter().map(|r| r.name().to_owned()).collect();
        let (access, exp) = self
            .keys
            .sign(user_id, names, Some(session_id), self.settings.access_ttl)
            .await
            .map_err(ApiError::internal)?;
        Ok(pb::Tokens {
            access_token: access,
            token_type: "Bearer".into(),
            access_token_expire_time: Some(timestamp(exp * 1_000_000)),
            expires_in: i64::try_from(self.settings.access_ttl.as_secs()).unwrap_or(i64::MAX),
            refresh_token: refresh,
            refresh_token_expire_time: Some(timestamp(record.expires_at)),
        })
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let address = client_address(&request, &self.settings.trusted_proxies);
        let request = request.into_inner();
        let mut violations = FieldViolations::default();
        let email = violations.take("email", Email::parse(&request.email));
        let password = violations.take(
            "password",
            Password::parse(&request.password, email.as_ref()),
        );
        violations.finish()?;
        let (Some(email), Some(password)) = (email, password) else {
            return Err(ApiError::internal(anyhow::anyhow!("parsed fields missing")).into());
        };
        self.registrations.spend(address.as_deref()).await?;
        let hash = self
            .hasher
            .hash(password.expose().to_owned())
            .await
            .map_err(ApiError::from)?;
        let user_id = uuid::Uuid::now_v7().to_string();
        let session_id = uuid::Uuid::now_v7().to_string();
        let (refresh, record) = self.new_refresh();
        self.store
            .register(&user_id, &email, &hash, &[], &session_id, &record)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(user_id, "registered");
        let tokens = self
            .tokens(&user_id, &session_id, &[], refresh, &record)
            .await?;
        // The device that registered is the account's first known device.
        let mut response = Response::new(pb::RegisterResponse {
            user_id: user_id.clone(),
            tokens: Some(tokens),
        });
        self.devices.attach(response.metadata_mut(), &user_id);
        Ok(response)
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let address = client_address(&request, &self.settings.trusted_proxies);
        let presented = self.devices.presented(&request);
        let request = request.into_inner();
        let mut violations = FieldViolations::default();
        // Bounded before anything else: no lookup, no throttle count, no hash of megabytes.
        let password = violations.take("password", PresentedPassword::parse(request.password));
        let email = violations.take("email", Email::parse(&request.email));
        violations.finish()?;
        let (Some(email), Some(password)) = (email, password) else {
            return Err(ApiError::internal(anyhow::anyhow!("parsed fields missing")).into());
        };
        let account = self
            .store
            .account_by_email(&email)
            .await
            .map_err(ApiError::from)?;
        // A device token counts only for the account it was issued to.
        let known = presented.filter(|d| account.as_ref().is_some_and(|a| a.id == d.user_id));
        let attempt = match &known {
            Some(device) => Attempt::KnownDevice(&device.nonce),
            None => Attempt::Unknown {
                email: &email,
                address: address.as_deref(),
            },
        };
        // Counted as a failure until the password matches.
        let reservation = self.throttle.admit(attempt).await?;
        let matches = self
            .hasher
            .verify(
                password.into_inner(),
                account.as_ref().map(|a| a.password_hash.clone()),
            )
            .await
            .map_err(ApiError::from)?;
        let Some(account) = account.filter(|_| matches) else {
            // The same answer whether the email exists or not.
            return Err(ApiError::Unauthenticated("wrong email or password".into()).into());
        };
        self.throttle.succeeded(reservation).await;
        let session_id = uuid::Uuid::now_v7().to_string();
        let (refresh, record) = self.new_refresh();
        self.store
            .open_session(&account.id, &session_id, &record)
            .await
            .map_err(ApiError::from)?;
        let tokens = self
            .tokens(&account.id, &session_id, &account.roles, refresh, &record)
            .await?;
        let mut response = Response::new(pb::LoginResponse {
            user_id: account.id.clone(),
            tokens: Some(tokens),
        });
        self.devices.attach(response.metadata_mut(), &account.id);
        Ok(response)
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        let presented = request.into_inner().refresh_token;
        if presented.is_empty() {
            return Err(ApiError::invalid_field("refresh_token", "is required").into());
        }
        let (refresh, record) = self.new_refresh();
        let outcome = self
            .store
            .refresh(&token_hash(&presented), &record)
            .await
            .map_err(ApiError::from)?;
        match outcome {
            RefreshOutcome::Rotated {
                session_id,
                user_id,
                roles,
            } => {
                let tokens = self
                    .tokens(&user_id, &session_id, &roles, refresh, &record)
                    .await?;
                Ok(Response::new(pb::RefreshResponse {
                    tokens: Some(tokens),
                }))
            }
            RefreshOutcome::ReuseDetected => Err(ApiError::Unauthenticated(
                "this refresh token was already used; the session has been revoked".into(),
            )
            .into()),
            RefreshOutcome::Invalid => {
                Err(ApiError::Unauthenticated("invalid or expired refresh token".into()).into())
            }
        }
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let presented = request.into_inner().refresh_token;
        if presented.is_empty() {
            return Err(ApiError::invalid_field("refresh_token", "is required").into());
        }
        self.store
            .logout(&token_hash(&presented))
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn get_jwks(
        &self,
        _: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        // Verifiers ask only when they meet an unknown key id, which may come from a rotation on
        // another replica: read the keys afresh, and fall back to the ones held if that fails.
        if let Err(error) = self.keys.reload().await {
            tracing::warn!(error = format!("{error:#}"), "serving the cached key set");
        }
        Ok(Response::new(pb::GetJwksResponse {
            keys: self.keys.jwks().await,
        }))
    }

    async fn issue_service_token(
        &self,
        request: Request<pb::IssueServiceTokenRequest>,
    ) -> Result<Response<pb::IssueServiceTokenResponse>, Status> {
        let request = request.into_inner();
        let mut violations = FieldViolations::default();
        if request.client_id.is_empty() {
            violations.add("client_id", "is required");
        }
        if request.client_secret.is_empty() {
            violations.add("client_secret", "is required");
        }
        violations.finish()?;
        let known = self
            .settings
            .service_clients
            .get(&request.client_id)
            .is_some_and(|secret| same_secret(secret.expose_secret(), &request.client_secret));
        if !known {
            return Err(ApiError::Unauthenticated("unknown client or wrong secret".into()).into());
        }
        let (token, exp) = self
            .keys
            .sign(
                &request.client_id,
                vec![ROLE_SERVICE.to_owned()],
                None,
                self.settings.service_token_ttl,
            )
            .await
            .map_err(ApiError::internal)?;
        Ok(Response::new(pb::IssueServiceTokenResponse {
            access_token: token,
            expire_time: Some(timestamp(exp * 1_000_000)),
        }))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let user_id = Principal::of(&request)?.subject.clone();
        let sessions = self
            .store
            .sessions(&user_id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: sessions
                .into_iter()
                .map(|s| pb::Session {
                    session_id: s.id,
                    create_time: Some(timestamp(s.created_at)),
                    last_refresh_time: Some(timestamp(s.last_refresh_at)),
                    expire_time: Some(timestamp(s.expires_at)),
                })
                .collect(),
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        let user_id = Principal::of(&request)?.subject.clone();
        let mut violations = FieldViolations::default();
        let session_id = parse_uuid("session_id", &request.get_ref().session_id, &mut violations);
        violations.finish()?;
        let Some(session_id) = session_id else {
            return Err(ApiError::internal(anyhow::anyhow!("parsed id missing")).into());
        };
        if !self
            .store
            .revoke_session(&user_id, &session_id)
            .await
            .map_err(ApiError::from)?
        {
            return Err(ApiError::NotFound {
                resource: "session",
                id: session_id,
            }
            .into());
        }
        Ok(Response::new(pb::RevokeSessionResponse {}))
    }

    async fn set_user_roles(
        &self,
        request: Request<pb::SetUserRolesRequest>,
    ) -> Result<Response<pb::SetUserRolesResponse>, Status> {
        let request = request.into_inner();
        let mut violations = FieldViolations::default();
        let user_id = parse_uuid("user_id", &request.user_id, &mut violations);
        let mut roles = Vec::new();
        for (i, role) in request.roles.iter().enumerate() {
            match pb::Role::try_from(*role) {
                Ok(pb::Role::Admin) => roles.push(Role::Admin),
                _ => violations.add(format!("roles[{i}]"), "must be a known role"),
            }
        }
        violations.finish()?;
        let Some(user_id) = user_id else {
            return Err(ApiError::internal(anyhow::anyhow!("parsed id missing")).into());
        };
        if !self
            .store
            .set_roles(&user_id, &roles)
            .await
            .map_err(ApiError::from)?
        {
            return Err(ApiError::NotFound {
                resource: "user",
                id: user_id,
            }
            .into());
        }
        roles.sort();
        roles.dedup();
        Ok(Response::new(pb::SetUserRolesResponse {
            roles: roles
                .into_iter()
                .map(|role| match role {
                    Role::Admin => pb::Role::Admin as i32,
                })
                .collect(),
        }))
    }

    async fn rotate_signing_key(
        &self,
        _: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        match self.keys.rotate().await.map_err(ApiError::internal)? {
            Some(kid) => Ok(Response::new(pb::RotateSigningKeyResponse { kid })),
            None => Err(ApiError::FailedPrecondition {
                reason: "KEYS_FROM_CONFIGURATION",
                message: "the signing key comes from configuration; rotate it there".into(),
            }
            .into()),
        }
    }
}

#[cfg(test)]
mod client_address_tests {
    use super::*;

    fn from(peer: &str, forwarded: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        let addr: std::net::SocketAddr = peer.parse().expect("an address");
        request
            .extensions_mut()
            .insert(tonic::transport::server::TcpConnectInfo {
                local_addr: None,
                remote_addr: Some(addr),
            });
        if let Some(forwarded) = forwarded {
            request
                .metadata_mut()
                .insert("x-forwarded-for", forwarded.parse().expect("ascii"));
        }
        request
    }

    fn trusted() -> Vec<ipnet::IpNet> {
        vec![
            "127.0.0.1/32".parse().expect("a net"),
            "10.0.0.0/8".parse().expect("a net"),
        ]
    }

    #[test]
    fn behind_a_trusted_proxy_the_forwarded_client_is_the_address() {
        let request = from("127.0.0.1:9000", Some("203.0.113.9"));
        assert_eq!(
            client_address(&request, &trusted()).as_deref(),
            Some("203.0.113.9")
        );
        // The nearest untrusted hop wins: what the client itself wrote further left is not
        // believed.
        let request = from("10.1.1.1:9000", Some("198.51.100.1, 203.0.113.9, 10.2.2.2"));
        assert_eq!(
            client_address(&request, &trusted()).as_deref(),
            Some("203.0.113.9")
        );
    }

    #[test]
    fn anyone_elses_forwarded_for_is_ignored() {
        let request = from("192.0.2.4:9000", Some("203.0.113.9"));
        assert_eq!(
            client_address(&request, &trusted()).as_deref(),
            Some("192.0.2.4")
        );
        let request = from("127.0.0.1:9000", Some("not an address"));
        assert_eq!(
            client_address(&request, &trusted()).as_deref(),
            Some("127.0.0.1")
        );
    }
}
