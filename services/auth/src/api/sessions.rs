//! Sessions: Refresh (rotation, with reuse detection), Logout, ListSessions and RevokeSession.

use agora_contracts::agora::auth::v1 as pb;
use agora_platform::access::Principal;
use tonic::{Request, Response, Status};

use super::{AuthApi, ensure_found, token_hash};
use crate::{
    error::ServiceError,
    metrics::{Refresh, metrics},
    store::RefreshOutcome,
    wire,
    wire::{RefreshToken, SessionToRevoke},
};

/// Refresh: rotates a refresh token; presenting a used one revokes its whole session.
pub(super) async fn refresh(
    api: &AuthApi,
    request: Request<pb::RefreshRequest>,
) -> Result<Response<pb::RefreshResponse>, Status> {
    let presented = RefreshToken::try_from(request.into_inner())?;
    let rotated = rotate(api, &presented).await;
    metrics().refresh(match &rotated {
        Ok(_) => Refresh::Succeeded,
        Err(ServiceError::RefreshReused) => Refresh::ReuseDetected,
        Err(_) => Refresh::Failed,
    });
    let tokens = rotated?;
    Ok(Response::new(pb::RefreshResponse {
        tokens: Some(tokens),
    }))
}

/// Logout: ends the session of a refresh token.
pub(super) async fn logout(
    api: &AuthApi,
    request: Request<pb::LogoutRequest>,
) -> Result<Response<pb::LogoutResponse>, Status> {
    let presented = RefreshToken::try_from(request.into_inner())?;
    api.store.logout(&token_hash(presented.expose())).await?;
    Ok(Response::new(pb::LogoutResponse {}))
}

/// ListSessions: the caller's open sessions.
pub(super) async fn list_sessions(
    api: &AuthApi,
    request: Request<pb::ListSessionsRequest>,
) -> Result<Response<pb::ListSessionsResponse>, Status> {
    let user_id = &Principal::of(&request)?.subject;
    let sessions = api.store.sessions(user_id).await?;
    Ok(Response::new(pb::ListSessionsResponse {
        sessions: sessions.into_iter().map(wire::session).collect(),
    }))
}

/// RevokeSession: ends one of the caller's sessions.
pub(super) async fn revoke_session(
    api: &AuthApi,
    request: Request<pb::RevokeSessionRequest>,
) -> Result<Response<pb::RevokeSessionResponse>, Status> {
    // Who asks is checked before what is asked.
    let user_id = Principal::of(&request)?.subject.clone();
    let SessionToRevoke { session_id } = SessionToRevoke::try_from(request.into_inner())?;
    let found = api.store.revoke_session(&user_id, &session_id).await;
    ensure_found(found, "session", session_id)?;
    Ok(Response::new(pb::RevokeSessionResponse {}))
}

/// Spends `presented` for new tokens of the same session; a token spent before revokes its
/// session.
async fn rotate(api: &AuthApi, presented: &RefreshToken) -> Result<pb::Tokens, ServiceError> {
    let (refresh, record) = api.new_refresh();
    let outcome = api
        .store
        .refresh(&token_hash(presented.expose()), &record)
        .await?;
    match outcome {
        RefreshOutcome::Rotated {
            session_id,
            user_id,
            roles,
        } => {
            api.tokens(&user_id, &session_id, &roles, refresh, &record)
                .await
        }
        RefreshOutcome::ReuseDetected => Err(ServiceError::RefreshReused),
        RefreshOutcome::Invalid => Err(ServiceError::RefreshInvalid),
    }
}
