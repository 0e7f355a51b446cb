//! The signing keys: GetJwks (the public keys every verifier reads) and RotateSigningKey.

use agora_contracts::agora::auth::v1 as pb;
use tonic::{Request, Response, Status};

use super::AuthApi;
use crate::error::ServiceError;

/// GetJwks: the public keys tokens are verified with.
pub(super) async fn get_jwks(
    api: &AuthApi,
    _: Request<pb::GetJwksRequest>,
) -> Result<Response<pb::GetJwksResponse>, Status> {
    // Verifiers ask only when they meet an unknown key id, which may come from a rotation on
    // another replica: read the keys afresh, and fall back to the ones held if that fails.
    if let Err(error) = api.keys.reload().await {
        tracing::warn!(error = format!("{error:#}"), "serving the cached key set");
    }
    Ok(Response::new(pb::GetJwksResponse {
        keys: api.keys.jwks().await,
    }))
}

/// RotateSigningKey: a new signing key, unless the key comes from configuration.
pub(super) async fn rotate_signing_key(
    api: &AuthApi,
    _: Request<pb::RotateSigningKeyRequest>,
) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
    let rotated = api.keys.rotate().await.map_err(ServiceError::Keys)?;
    let kid = rotated.ok_or(ServiceError::KeysFromConfiguration)?;
    Ok(Response::new(pb::RotateSigningKeyResponse { kid }))
}
