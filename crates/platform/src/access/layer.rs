//! The tower layer that enforces each method's access rule before its handler runs.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use tonic::{Status, body::Body};

use super::{
    Access, AccessPolicy, GrpcKeySource, TokenError, Verifier, authorize, authorize_service,
    bearer_token,
};
use crate::{config::ServiceAccess, events::Background, mtls::PeerIdentity};

/// A tower layer that enforces the access rule of every call before the service sees it.
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
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
