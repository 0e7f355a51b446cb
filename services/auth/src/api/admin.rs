//! Administration of accounts: SetUserRoles.

use agora_contracts::agora::auth::v1 as pb;
use agora_platform::error::{ApiError, FieldViolations};
use tonic::{Request, Response, Status};

use super::{AuthApi, parse_uuid};
use crate::domain::Role;

/// SetUserRoles: replaces a user's roles.
pub(super) async fn set_user_roles(
    api: &AuthApi,
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
    if !api
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
