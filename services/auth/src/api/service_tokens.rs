//! Service tokens: IssueServiceToken, for the services configured as clients.

use agora_contracts::agora::auth::v1 as pb;
use agora_platform::access::ROLE_SERVICE;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::AuthApi;
use crate::{
    error::ServiceError,
    wire::{self, ClientCredentials},
};

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// IssueServiceToken: a service token for a configured client with the right secret.
pub(super) async fn issue_service_token(
    api: &AuthApi,
    request: Request<pb::IssueServiceTokenRequest>,
) -> Result<Response<pb::IssueServiceTokenResponse>, Status> {
    let client = ClientCredentials::try_from(request.into_inner())?;
    let (token, exp) = issue(api, &client).await?;
    Ok(Response::new(wire::service_token(token, exp)))
}

/// A service token for `client` and its expiry (Unix seconds), if its secret is the
/// configured one.
async fn issue(api: &AuthApi, client: &ClientCredentials) -> Result<(String, i64), ServiceError> {
    let known = api
        .settings
        .service_clients
        .get(&client.client_id)
        .is_some_and(|secret| same_secret(secret.expose_secret(), client.secret()));
    if !known {
        return Err(ServiceError::UnknownClient);
    }
    let roles = vec![ROLE_SERVICE.to_owned()];
    let ttl = api.settings.service_token_ttl;
    api.keys
        .sign(&client.client_id, roles, None, ttl)
        .await
        .map_err(ServiceError::Keys)
}
