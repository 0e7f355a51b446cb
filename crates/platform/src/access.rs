//! Who may call what, read from the contracts and enforced the same way everywhere.
//!
//! Every method in `proto/` declares `(agora.options.v1.access)`. [`AccessPolicy`] reads those
//! options from the descriptor set; [`Verifier`] checks bearer JWTs against the auth service's
//! JWKS; [`AccessLayer`] puts both in front of a service and hands the handler a [`Principal`].
//! A method without an access option is denied to everyone (secure by default).
//!
//! Over mTLS, the caller's certificate identity ([`PeerIdentity`]) is in the request's extensions
//! too, and `mtls.service_access` says whether a SERVICE-only method wants a service token, a
//! service certificate, both or either ([`authorize_service`]).

use std::{
    collections::HashMap,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use agora_contracts::agora::auth::v1::Jwk;
use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use prost_reflect::DescriptorPool;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};
use tonic::{Status, body::Body};

use crate::{
    config::{ServiceAccess, TokenSettings},
    events::Background,
    mtls::PeerIdentity,
    revocation::Revocations,
};

mod bearer;
mod rule;

pub use bearer::{BearerError, bearer_token};
pub use rule::{ACCESS_OPTION, Rule, rule_of};

/// The access levels of `agora.options.v1.Access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; a token, when sent, must be valid.
    Public,
    /// A signed-in user.
    User,
    /// A user with the `admin` role.
    Admin,
    /// Another Agora service, with its service token or certificate (`mtls.service_access`).
    Service,
}

/// The role claim of administrators.
pub const ROLE_ADMIN: &str = "admin";
/// The role claim of service tokens.
pub const ROLE_SERVICE: &str = "service";

/// The claims of every Agora access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Issuer: the auth service.
    pub iss: String,
    /// Audience: the mesh.
    pub aud: String,
    /// Subject: a user id, or a service's client id.
    pub sub: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before (seconds since the epoch).
    pub nbf: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Token id.
    pub jti: String,
    /// Roles: `admin` for administrators, `service` for service tokens.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The session the token was issued to (absent on service tokens): a revoked session's
    /// tokens are refused by every verifier that follows the revocations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// The verified caller of a method, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// A user id, or a service's client id.
    pub subject: String,
    /// The roles the token carries.
    pub roles: Vec<String>,
}

impl Principal {
    /// Whether the caller holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the caller is an administrator.
    pub fn is_admin(&self) -> bool {
        self.has_role(ROLE_ADMIN)
    }

    /// Whether the caller is another service.
    pub fn is_service(&self) -> bool {
        self.has_role(ROLE_SERVICE)
    }

    /// The verified caller of a request, put there by [`AccessLayer`].
    ///
    /// # Errors
    /// UNAUTHENTICATED when the call carried no valid token.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Principal, Status> {
        request
            .extensions()
            .get::<Principal>()
            .ok_or_else(|| Status::unauthenticated("sign in first"))
    }
}

/// The access rule of every method in a descriptor set, by gRPC path (`/pkg.Service/Method`).
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    methods: HashMap<String, Option<Access>>,
}

/// Services every server hosts for probes and tools, callable by anyone.
const INFRASTRUCTURE: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

impl AccessPolicy {
    /// Reads `(agora.options.v1.access)` from every method of an encoded descriptor set.
    ///
    /// # Errors
    /// The set does not decode or does not declare the access option.
    pub fn from_descriptors(encoded: &[u8]) -> anyhow::Result<Self> {
        let pool = DescriptorPool::decode(encoded)?;
        if pool.get_extension_by_name(ACCESS_OPTION).is_none() {
            anyhow::bail!("the descriptor set lacks {ACCESS_OPTION}");
        }
        let mut methods = HashMap::new();
        for service in pool.services() {
            for method in service.methods() {
                // A method that cannot declare the option (its file does not import it) is
                // denied like one that declares none: a service is secure by default.
                let access = match rule_of(&method) {
                    Rule::Declared(access) => Some(access),
                    Rule::Undeclared | Rule::Foreign => None,
                };
                methods.insert(
                    format!("/{}/{}", service.full_name(), method.name()),
                    access,
                );
            }
        }
        Ok(Self { methods })
    }

    /// The rule for a gRPC path: `Ok(None)` for health and reflection (open to all), `Ok(Some)`
    /// for a declared method, and an error status for a method with no rule or an unknown path.
    ///
    /// # Errors
    /// PERMISSION_DENIED for a method without an access option; UNIMPLEMENTED for an unknown one.
    pub fn rule(&self, path: &str) -> Result<Option<Access>, Status> {
        if INFRASTRUCTURE.iter().any(|prefix| path.starts_with(prefix)) {
            return Ok(None);
        }
        match self.methods.get(path) {
            Some(Some(access)) => Ok(Some(*access)),
            Some(None) => Err(Status::permission_denied(
                "this method declares no access rule, so nobody may call it",
            )),
            None => Err(Status::unimplemented(format!("unknown method {path}"))),
        }
    }

    /// Every method path and its rule (`None`: no rule declared).
    pub fn methods(&self) -> impl Iterator<Item = (&str, Option<Access>)> {
        self.methods
            .iter()
            .map(|(path, access)| (path.as_str(), *access))
    }
}

/// Decides whether `principal` may call a method with rule `access`.
///
/// # Errors
/// UNAUTHENTICATED without a principal where one is needed; PERMISSION_DENIED when the principal
/// lacks the role.
pub fn authorize(access: Access, principal: Option<&Principal>) -> Result<(), Status> {
    let need = |what: &str| Status::permission_denied(format!("this method is for {what}"));
    match (access, principal) {
        (Access::Public, _) => Ok(()),
        (_, None) => Err(Status::unauthenticated(
            "sign in first: send a bearer access token",
        )),
        (Access::User, Some(p)) if p.is_service() => Err(need("signed-in users")),
        (Access::User, Some(_)) => Ok(()),
        (Access::Admin, Some(p)) if p.is_admin() => Ok(()),
        (Access::Admin, Some(_)) => Err(need("administrators")),
        (Access::Service, Some(p)) if p.is_service() => Ok(()),
        (Access::Service, Some(_)) => Err(need("Agora services")),
    }
}

/// Decides who calls a SERVICE-only method under `mode`, from the verified token's principal
/// and the certificate's identity: a service certificate stands for a principal with the
/// service's name as subject and the `service` role.
///
/// # Errors
/// UNAUTHENTICATED when the call shows nothing the mode asks for; PERMISSION_DENIED when what it
/// shows is not a service's, or (`both`) the token and the certificate name different services.
pub fn authorize_service(
    mode: ServiceAccess,
    token: Option<Principal>,
    peer: Option<&PeerIdentity>,
) -> Result<Principal, Status> {
    let by_token = || match token.clone() {
        Some(principal) if principal.is_service() => Ok(principal),
        Some(_) => Err(Status::permission_denied(
            "this method is for Agora services",
        )),
        None => Err(Status::unauthenticated(
            "this method is for Agora services: send a service token",
        )),
    };
    let by_certificate = || match peer {
        Some(PeerIdentity {
            service: Some(service),
            ..
        }) => Ok(Principal {
            subject: service.clone(),
            roles: vec![ROLE_SERVICE.to_owned()],
        }),
        Some(_) => Err(Status::permission_denied(
            "this method is for Agora services: the client certificate names no service",
        )),
        None => Err(Status::unauthenticated(
            "this method is for Agora services: present a service certificate",
        )),
    };
    match mode {
        ServiceAccess::Token => by_token(),
        ServiceAccess::Certificate => by_certificate(),
        ServiceAccess::Either => by_token().or_else(|_| by_certificate()),
        ServiceAccess::Both => {
            let principal = by_token()?;
            let certified = by_certificate()?;
            if principal.subject != certified.subject {
                return Err(Status::permission_denied(
                    "the service token and the client certificate name different services",
                ));
            }
            Ok(principal)
        }
    }
}

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
        tonic::transport::Channel,
    >,
}

impl GrpcKeySource {
    /// Fetches keys from the auth service behind `channel`.
    pub fn new(channel: tonic::transport::Channel) -> Self {
        Self {
            client: agora_contracts::agora::auth::v1::auth_service_client::AuthServiceClient::new(
                channel,
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

/// A tower layer that enforces the access rule of every call before the service sees it.
#[derive(Clone)]
pub struct AccessLayer {
    policy: Arc<AccessPolicy>,
    verifier: Arc<Verifier>,
    transport: Arc<Transport>,
    /// The task keeping the verifier's revocations current, stopped with the last clone.
    _following: Option<Arc<Background>>,
}

impl AccessLayer {
    /// Enforces `policy`, verifying tokens with `verifier`.
    pub fn new(policy: Arc<AccessPolicy>, verifier: Arc<Verifier>) -> Self {
        Self {
            policy,
            verifier,
            transport: Arc::new(Transport::default()),
            _following: None,
        }
    }

    /// Lets SERVICE-only methods be called as `mode` says, reading certificate identities
    /// against `trust_domain` (the default: service tokens, trust domain `agora`).
    #[must_use]
    pub fn with_service_access(mut self, mode: ServiceAccess, trust_domain: &str) -> Self {
        self.transport = Arc::new(Transport {
            service_access: mode,
            trust_domain: trust_domain.into(),
        });
        self
    }

    /// Keeps `following` (the task that fills the verifier's revocations) running as long as
    /// the layer.
    #[must_use]
    pub fn keeping(mut self, following: Arc<Background>) -> Self {
        self._following = Some(following);
        self
    }

    /// The access layer of every service but auth: the rules of Agora's contracts, and tokens
    /// verified with the keys auth publishes, fetched over gRPC when first needed (zero trust: a
    /// caller may reach the service's port without going through the gateway), and refused once
    /// auth's events say their session was revoked or their roles changed. Call it within a
    /// Tokio runtime: it starts following those events.
    ///
    /// SERVICE-only methods want what `mtls.service_access` says.
    ///
    /// # Errors
    /// The contracts' rules do not load, auth's URL is malformed, or the `mtls` settings are bad.
    pub fn with_auth_keys(settings: &crate::config::Settings) -> anyhow::Result<Self> {
        settings.mtls.validate()?;
        let policy = AccessPolicy::from_descriptors(agora_contracts::FILE_DESCRIPTOR_SET)?;
        let auth = crate::client::service_channel(settings, crate::config::ServiceKind::Auth)?;
        let (revocations, following) = crate::revocation::follow(settings);
        let verifier = Verifier::new(Arc::new(GrpcKeySource::new(auth)), &settings.tokens)
            .with_revocations(revocations);
        Ok(Self::new(Arc::new(policy), Arc::new(verifier))
            .with_service_access(settings.mtls.service_access, &settings.mtls.trust_domain)
            .keeping(following))
    }
}

/// What the access layer reads of the connection.
#[derive(Debug)]
struct Transport {
    /// What SERVICE-only methods want.
    service_access: ServiceAccess,
    /// The trust domain of the service identities in client certificates.
    trust_domain: String,
}

impl Default for Transport {
    fn default() -> Self {
        Self {
            service_access: ServiceAccess::Token,
            trust_domain: crate::config::MtlsSettings::default().trust_domain,
        }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessService {
            inner,
            policy: self.policy.clone(),
            verifier: self.verifier.clone(),
            transport: self.transport.clone(),
        }
    }
}

/// The service [`AccessLayer`] makes.
#[derive(Clone)]
pub struct AccessService<S> {
    inner: S,
    policy: Arc<AccessPolicy>,
    verifier: Arc<Verifier>,
    transport: Arc<Transport>,
}

impl<S> tower::Service<http::Request<Body>> for AccessService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let policy = self.policy.clone();
        let verifier = self.verifier.clone();
        let transport = self.transport.clone();
        Box::pin(async move {
            match admit(&policy, &verifier, &transport, &mut request).await {
                Ok(()) => inner.call(request).await,
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

/// Checks one request against the policy, attaching its [`Principal`] when it has one, and its
/// caller's [`PeerIdentity`] when the connection presented one.
async fn admit(
    policy: &AccessPolicy,
    verifier: &Verifier,
    transport: &Transport,
    request: &mut http::Request<Body>,
) -> Result<(), Status> {
    let peer = PeerIdentity::from_extensions(request.extensions(), &transport.trust_domain);
    if let Some(peer) = &peer {
        request.extensions_mut().insert(peer.clone());
    }
    let Some(access) = policy.rule(request.uri().path())? else {
        return Ok(());
    };
    let principal = match bearer_token(request.headers())? {
        None => None,
        Some(token) => match verifier.verify(token).await {
            Ok(principal) => Some(principal),
            Err(TokenError::KeysUnavailable(error)) => {
                tracing::error!(error = format!("{error:#}"), "cannot fetch signing keys");
                return Err(Status::unavailable("token verification is unavailable"));
            }
            Err(error) => {
                tracing::info!(%error, "refused a token");
                return Err(Status::unauthenticated("invalid or expired access token"));
            }
        },
    };
    let principal = if access == Access::Service {
        Some(authorize_service(
            transport.service_access,
            principal,
            peer.as_ref(),
        )?)
    } else {
        authorize(access, principal.as_ref())?;
        principal
    };
    if let Some(principal) = principal {
        request.extensions_mut().insert(principal);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(roles: &[&str]) -> Principal {
        Principal {
            subject: "u".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn every_method_in_the_contracts_declares_an_access_rule() {
        let policy = AccessPolicy::from_descriptors(agora_contracts::FILE_DESCRIPTOR_SET)
            .expect("the contracts decode");
        let missing: Vec<_> = policy
            .methods()
            .filter(|(_, access)| access.is_none())
            .map(|(path, _)| path.to_owned())
            .collect();
        assert!(
            policy.methods().count() > 20,
            "the contracts define the mesh's methods"
        );
        assert!(
            missing.is_empty(),
            "methods without an access option: {missing:?}"
        );
    }

    #[test]
    fn the_policy_reads_each_level_from_the_contracts() {
        let policy = AccessPolicy::from_descriptors(agora_contracts::FILE_DESCRIPTOR_SET)
            .expect("the contracts decode");
        let rule = |path: &str| policy.rule(path).expect("declared");
        assert_eq!(
            rule("/agora.auth.v1.AuthService/Login"),
            Some(Access::Public)
        );
        assert_eq!(
            rule("/agora.auth.v1.AuthService/ListSessions"),
            Some(Access::User)
        );
        assert_eq!(
            rule("/agora.auth.v1.AuthService/SetUserRoles"),
            Some(Access::Admin)
        );
        assert_eq!(
            rule("/agora.inventory.v1.InventoryService/Reserve"),
            Some(Access::Service)
        );
        assert_eq!(rule("/grpc.health.v1.Health/Check"), None);
        let unknown = policy
            .rule("/agora.auth.v1.AuthService/Nope")
            .expect_err("unknown");
        assert_eq!(unknown.code(), tonic::Code::Unimplemented);
    }

    #[test]
    fn a_method_without_a_rule_is_denied() {
        let policy = AccessPolicy {
            methods: HashMap::from([("/x.v1.S/M".to_owned(), None)]),
        };
        let denied = policy.rule("/x.v1.S/M").expect_err("no rule");
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    }

    #[test]
    fn each_level_admits_exactly_its_callers() {
        use tonic::Code::{PermissionDenied, Unauthenticated};
        let code = |access, principal: Option<Principal>| {
            authorize(access, principal.as_ref())
                .err()
                .map(|s| s.code())
        };
        assert_eq!(code(Access::Public, None), None);
        assert_eq!(code(Access::User, None), Some(Unauthenticated));
        assert_eq!(code(Access::User, Some(user(&[]))), None);
        assert_eq!(
            code(Access::User, Some(user(&["service"]))),
            Some(PermissionDenied)
        );
        assert_eq!(code(Access::Admin, Some(user(&[]))), Some(PermissionDenied));
        assert_eq!(code(Access::Admin, Some(user(&["admin"]))), None);
        assert_eq!(
            code(Access::Service, Some(user(&["admin"]))),
            Some(PermissionDenied)
        );
        assert_eq!(code(Access::Service, Some(user(&["service"]))), None);
    }

    #[test]
    fn service_methods_want_what_the_service_access_mode_says() {
        use ServiceAccess::{Both, Certificate, Either, Token};
        use tonic::Code::{PermissionDenied, Unauthenticated};
        let certificate = |id: &str, service: Option<&str>| PeerIdentity {
            spiffe_id: id.into(),
            service: service.map(str::to_owned),
        };
        let order = certificate("spiffe://agora/service/order", Some("order"));
        let edge = certificate("spiffe://agora/edge/gateway", None);
        let token = |subject: &str, roles: &[&str]| {
            Some(Principal {
                subject: subject.into(),
                ..user(roles)
            })
        };
        let who = |mode, token: Option<Principal>, peer: Option<&PeerIdentity>| {
            authorize_service(mode, token, peer).map(|p| p.subject)
        };
        let code = |result: Result<String, Status>| result.err().map(|s| s.code());

        assert_eq!(
            who(Token, token("order", &["service"]), None)
                .ok()
                .as_deref(),
            Some("order")
        );
        assert_eq!(code(who(Token, None, Some(&order))), Some(Unauthenticated));
        assert_eq!(
            who(Certificate, None, Some(&order)).ok().as_deref(),
            Some("order")
        );
        assert_eq!(
            code(who(Certificate, None, Some(&edge))),
            Some(PermissionDenied)
        );
        assert_eq!(
            code(who(Certificate, token("order", &["service"]), None)),
            Some(Unauthenticated)
        );
        assert_eq!(
            who(Either, None, Some(&order)).ok().as_deref(),
            Some("order")
        );
        assert_eq!(
            who(Either, token("order", &["service"]), Some(&edge))
                .ok()
                .as_deref(),
            Some("order")
        );
        assert!(who(Either, token("u", &[]), Some(&edge)).is_err());
        assert_eq!(
            who(Both, token("order", &["service"]), Some(&order))
                .ok()
                .as_deref(),
            Some("order")
        );
        assert_eq!(
            code(who(Both, token("product", &["service"]), Some(&order))),
            Some(PermissionDenied)
        );
        assert_eq!(code(who(Both, None, Some(&order))), Some(Unauthenticated));
    }
}
