//! Service tokens: IssueServiceToken, for the services configured as clients.

use agora_contracts::agora::auth::v1 as pb;
use agora_platform::{
    access::ROLE_SERVICE,
    error::{ApiError, FieldViolations},
    storage::timestamp,
};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::AuthApi;

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
    let request = request.into_inner();
    let mut violations = FieldViolations::default();
    if request.client_id.is_empty() {
        violations.add("client_id", "is required");
    }
    if request.client_secret.is_empty() {
        violations.add("client_secret", "is required");
    }
    violations.finish()?;
    let known = api
        .settings
        .service_clients
        .get(&request.client_id)
        .is_some_and(|secret| same_secret(secret.expose_secret(), &request.client_secret));
    if !known {
        return Err(ApiError::Unauthenticated("unknown client or wrong secret".into()).into());
    }
    let (token, exp) = api
        .keys
        .sign(
            &request.client_id,
            vec![ROLE_SERVICE.to_owned()],
            None,
            api.settings.service_token_ttl,
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(Response::new(pb::IssueServiceTokenResponse {
        access_token: token,
        expire_time: Some(timestamp(exp * 1_000_000)),
    }))
}
