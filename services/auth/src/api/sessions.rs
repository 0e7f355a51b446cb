//! Sessions: Refresh (rotation, with reuse detection), Logout, ListSessions and RevokeSession.

use agora_contracts::agora::auth::v1 as pb;
use agora_platform::{
    access::Principal,
    error::{ApiError, FieldViolations},
    storage::timestamp,
};
use tonic::{Request, Response, Status};

use super::{AuthApi, parse_uuid, token_hash};
use crate::store::RefreshOutcome;

/// Refresh: rotates a refresh token; presenting a used one revokes its whole session.
pub(super) async fn refresh(
    api: &AuthApi,
    request: Request<pb::RefreshRequest>,
) -> Result<Response<pb::RefreshResponse>, Status> {
    let presented = request.into_inner().refresh_token;
    if presented.is_empty() {
        return Err(ApiError::invalid_field("refresh_token", "is required").into());
    }
    let (refresh, record) = api.new_refresh();
    let outcome = api
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
            let tokens = api
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

/// Logout: ends the session of a refresh token.
pub(super) async fn logout(
    api: &AuthApi,
    request: Request<pb::LogoutRequest>,
) -> Result<Response<pb::LogoutResponse>, Status> {
    let presented = request.into_inner().refresh_token;
    if presented.is_empty() {
        return Err(ApiError::invalid_field("refresh_token", "is required").into());
    }
    api.store
        .logout(&token_hash(&presented))
        .await
        .map_err(ApiError::from)?;
    Ok(Response::new(pb::LogoutResponse {}))
}

/// ListSessions: the caller's open sessions.
pub(super) async fn list_sessions(
    api: &AuthApi,
    request: Request<pb::ListSessionsRequest>,
) -> Result<Response<pb::ListSessionsResponse>, Status> {
    let user_id = Principal::of(&request)?.subject.clone();
    let sessions = api.store.sessions(&user_id).await.map_err(ApiError::from)?;
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

/// RevokeSession: ends one of the caller's sessions.
pub(super) async fn revoke_session(
    api: &AuthApi,
    request: Request<pb::RevokeSessionRequest>,
) -> Result<Response<pb::RevokeSessionResponse>, Status> {
    let user_id = Principal::of(&request)?.subject.clone();
    let mut violations = FieldViolations::default();
    let session_id = parse_uuid("session_id", &request.get_ref().session_id, &mut violations);
    violations.finish()?;
    let Some(session_id) = session_id else {
        return Err(ApiError::internal(anyhow::anyhow!("parsed id missing")).into());
    };
    if !api
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
