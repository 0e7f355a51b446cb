//! Auth at the edge: the access option each method declares in the contracts
//! (`(agora.options.v1.access)`), enforced before a request is transcoded or forwarded.
//!
//! Tokens are checked by the platform's [`Verifier`] against the JWKS the auth service publishes
//! (cached by `kid`, fetched again when a token names an unknown key), and the decision is the
//! platform's [`authorize`], so the edge and the services can never disagree. The services check
//! again behind the edge (zero trust); the edge's check spares them the traffic and gives browsers
//! a proper `401` with `WWW-Authenticate` (RFC 6750) or `403`.
//!
//! A method from descriptors that do not know the access option (a service of another language
//! whose descriptors came from its reflection) is left to that service: the edge cannot know its
//! rules. A method of descriptors that do know the option but that declares none is denied, as in
//! the services.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

// The rule of a method is read by the platform, as in the services.
pub use agora_platform::access::{Rule, rule_of};
use agora_platform::{
    access::{Access, GrpcKeySource, Principal, TokenError, Verifier, authorize, bearer_token},
    config::{ServiceKind, Settings},
    events::Background,
};
use axum::{
    body::Body,
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use prost_reflect::{DescriptorPool, MethodDescriptor};
use tonic::{Code, Status};

use crate::rules::Binding;

/// The edge's auth: the verifier and each method's rule, read once.
///
/// Mount it inside CORS (preflights carry no token) and outside the rate limiter (which counts a
/// signed-in caller by user id). It needs the route's [`Binding`] in the request's extensions, so
/// it goes where the matched route is known, or after the layer that matches it:
///
/// ```ignore
/// let auth = auth::EdgeAuth::from_settings(&config.settings, pool.clone())?;
/// let app = routes
///     .layer(axum::middleware::from_fn_with_state(limiter, ratelimit::enforce))
///     // Check bearer tokens and the method's access option before anything goes upstream.
///     .layer(axum::middleware::from_fn_with_state(auth, auth::enforce));
/// ```
#[derive(Clone)]
pub struct EdgeAuth {
    verifier: Arc<Verifier>,
    /// For passed-through gRPC calls, which carry no binding: the method by path.
    pool: DescriptorPool,
    /// Rules by method full name: reading options decodes them, so each is read once.
    rules: Arc<RwLock<HashMap<String, Rule>>>,
    /// The task keeping the verifier's revocations current, stopped with the last clone.
    _following: Option<Arc<Background>>,
}

impl std::fmt::Debug for EdgeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeAuth").finish_non_exhaustive()
    }
}

/// Why a request was refused, and what to tell the client.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The gRPC status (UNAUTHENTICATED, PERMISSION_DENIED or UNAVAILABLE).
    pub status: Status,
    /// The `WWW-Authenticate` challenge, for 401 and 403.
    pub challenge: Option<HeaderValue>,
}

impl EdgeAuth {
    /// Enforces the rules of the methods in `pool`, verifying tokens with `verifier`.
    pub fn new(pool: DescriptorPool, verifier: Arc<Verifier>) -> Self {
        Self {
            verifier,
            pool,
            rules: Arc::default(),
            _following: None,
        }
    }

    /// Verifies tokens with the keys of the auth service configured in `settings`, fetched over
    /// gRPC when first needed (so the gateway may start before auth), and refuses those of
    /// revoked sessions and of accounts whose roles changed since, as auth's events on the bus
    /// tell (like every service). Call it within a Tokio runtime.
    ///
    /// # Errors
    /// The auth service's URL is malformed.
    pub fn from_settings(settings: &Settings, pool: DescriptorPool) -> anyhow::Result<Self> {
        let channel = agora_platform::client::service_channel(settings, ServiceKind::Auth)?;
        let (revocations, following) = agora_platform::revocation::follow(settings);
        let verifier = Verifier::new(Arc::new(GrpcKeySource::new(channel)), &settings.tokens)
            .with_revocations(revocations);
        let mut auth = Self::new(pool, Arc::new(verifier));
        auth._following = Some(following);
        Ok(auth)
    }

    /// The rule of a method, read from its options the first time.
    pub fn rule(&self, method: &MethodDescriptor) -> Rule {
        let read = self
            .rules
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(rule) = read.get(method.full_name()) {
            return *rule;
        }
        drop(read);
        let rule = rule_of(method);
        self.rules
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(method.full_name().to_owned(), rule);
        rule
    }

    /// The method a request calls: its route's binding, or for a gRPC call the method at its
    /// path. `None` for everything else (probes, documents, unknown paths).
    pub fn method_of(&self, request: &Request) -> Option<MethodDescriptor> {
        if let Some(binding) = request.extensions().get::<Binding>() {
            return Some(binding.method.clone());
        }
        if !is_grpc(request) {
            return None;
        }
        let (service, method) = request
            .uri()
            .path()
            .trim_start_matches('/')
            .split_once('/')?;
        self.pool
            .get_service_by_name(service)?
            .methods()
            .find(|m| m.name() == method)
    }

    /// Decides on a call of `method` with `headers`: the verified caller (if any) or a refusal.
    ///
    /// # Errors
    /// The refusal to send instead of calling the method.
    pub async fn admit(
        &self,
        method: &MethodDescriptor,
        headers: &HeaderMap,
    ) -> Result<Option<Principal>, Refusal> {
        let access = match self.rule(method) {
            Rule::Foreign => return Ok(None),
            Rule::Undeclared => {
                return Err(Refusal {
                    status: Status::permission_denied(
                        "this method declares no access rule, so nobody may call it",
                    ),
                    challenge: None,
                });
            }
            Rule::Declared(access) => access,
        };
        self.admit_access(access, headers).await
    }

    /// Decides on a caller of something that asks for `access` (a method's rule, or the
    /// console's admin): the verified caller (if any) or a refusal.
    ///
    /// # Errors
    /// The refusal to send instead of answering.
    pub async fn admit_access(
        &self,
        access: Access,
        headers: &HeaderMap,
    ) -> Result<Option<Principal>, Refusal> {
        let principal = match bearer_token(headers) {
            Err(error) => {
                return Err(challenge(
                    Code::Unauthenticated,
                    "invalid_request",
                    &error.to_string(),
                ));
            }
            Ok(None) => None,
            Ok(Some(token)) => match self.verifier.verify(token).await {
                Ok(principal) => Some(principal),
                Err(TokenError::KeysUnavailable(error)) => {
                    tracing::error!(error = format!("{error:#}"), "cannot fetch signing keys");
                    return Err(Refusal {
                        status: Status::unavailable("token verification is unavailable"),
                        challenge: None,
                    });
                }
                Err(error) => {
                    tracing::info!(%error, "refused a token at the edge");
                    return Err(challenge(
                        Code::Unauthenticated,
                        "invalid_token",
                        "invalid or expired access token",
                    ));
                }
            },
        };
        match authorize(access, principal.as_ref()) {
            Ok(()) => Ok(principal),
            Err(status) if status.code() == Code::Unauthenticated => Err(Refusal {
                // No token at all: RFC 6750 says the challenge then carries no error code.
                challenge: Some(HeaderValue::from_static("Bearer realm=\"agora\"")),
                status,
            }),
            Err(status) => Err(Refusal {
                challenge: Some(HeaderValue::from_static(
                    "Bearer realm=\"agora\", error=\"insufficient_scope\"",
                )),
                status,
            }),
        }
    }
}

fn challenge(code: Code, error: &str, description: &str) -> Refusal {
    let header =
        format!("Bearer realm=\"agora\", error=\"{error}\", error_description=\"{description}\"");
    Refusal {
        status: Status::new(code, description),
        // The parts are fixed ASCII strings of this file, always a valid header value.
        challenge: HeaderValue::from_str(&header).ok(),
    }
}

/// The middleware: refuses calls the method's access rule does not admit, and hands the verified
/// [`Principal`] to the layers inside (the rate limiter counts by it).
pub async fn enforce(State(auth): State<EdgeAuth>, mut request: Request, next: Next) -> Response {
    match auth.check(&mut request).await {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal,
    }
}

impl EdgeAuth {
    /// [`enforce`]'s check: admits `request` (its verified caller, if any, put in its
    /// extensions) or refuses it.
    ///
    /// # Errors
    /// The refusal to send back: 401 with a challenge, 403, or their gRPC statuses.
    pub async fn check(&self, request: &mut Request) -> Result<(), Response> {
        let Some(method) = self.method_of(request) else {
            return Ok(());
        };
        match self.admit(&method, request.headers()).await {
            Ok(principal) => {
                if let Some(principal) = principal {
                    request.extensions_mut().insert(principal);
                }
                Ok(())
            }
            Err(refusal) => Err(refusal.answer(request)),
        }
    }
}

impl Refusal {
    /// The answer to `request`: [`refuse`]'s, with the challenge on REST.
    pub fn answer<B>(self, request: &http::Request<B>) -> Response {
        let mut response = refuse(request, &self.status);
        if let Some(challenge) = self.challenge
            && !is_grpc(request)
        {
            response
                .headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// Whether a request is a gRPC or gRPC-Web call (answered in gRPC's own error form).
pub fn is_grpc<B>(request: &http::Request<B>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The answer to a request the edge refuses: a `google.rpc.Status` JSON body by the one status
/// table for REST, a gRPC status for gRPC calls.
pub fn refuse<B>(request: &http::Request<B>, status: &Status) -> Response {
    if is_grpc(request) {
        let mut response = status.clone().into_http::<Body>();
        if let Some(content_type) = request.headers().get(http::header::CONTENT_TYPE)
            && content_type.as_bytes().starts_with(b"application/grpc-web")
        {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, content_type.clone());
        }
        *response.status_mut() = StatusCode::OK;
        return response;
    }
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    crate::status::error_response(status, request_id)
}

#[cfg(test)]
mod tests;
