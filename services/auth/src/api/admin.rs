//! Administration of accounts: SetUserRoles.

use agora_contracts::agora::auth::v1 as pb;
use tonic::{Request, Response, Status};

use super::{AuthApi, ensure_found};
use crate::wire::{self, RoleChange};

/// SetUserRoles: replaces a user's roles.
pub(super) async fn set_user_roles(
    api: &AuthApi,
    request: Request<pb::SetUserRolesRequest>,
) -> Result<Response<pb::SetUserRolesResponse>, Status> {
    let RoleChange { user_id, roles } = RoleChange::try_from(request.into_inner())?;
    let found = api.store.set_roles(&user_id, &roles).await;
    ensure_found(found, "user", user_id)?;
    Ok(Response::new(pb::SetUserRolesResponse {
        roles: wire::roles(roles),
    }))
}
