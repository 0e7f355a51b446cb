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
//!
//! # Layout
//! - `rule`: the access option of a method, read from its descriptor.
//! - `bearer`: the bearer token of a request's `authorization` header.
//! - `verify`: [`Verifier`] and where its keys come from ([`KeySource`]).
//! - `layer`: [`AccessLayer`], which puts the rule and the verifier in front of a service.

use std::collections::HashMap;

use prost_reflect::DescriptorPool;
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::{config::ServiceAccess, mtls::PeerIdentity};

mod bearer;
mod layer;
mod rule;
mod verify;

pub use bearer::{BearerError, bearer_token};
pub use layer::{AccessLayer, AccessService};
pub use rule::{ACCESS_OPTION, Rule, rule_of};
pub use verify::{GrpcKeySource, KeySource, TokenError, Verifier};

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

#[cfg(test)]
mod tests;
