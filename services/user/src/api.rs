//! The gRPC handlers of `agora.user.v1.UserService`. Each parses its request into a domain value
//! (see [`crate::wire`]), calls the store, and maps the result; every failure is a
//! [`ServiceError`], turned into a status in one place.
//!
//! The "My" methods take the user id from the verified token only, never from the request, so a
//! user can neither read nor change another user's profile; GetUser and ListUsers are for
//! administrators, which the access layer enforces from the contract before a handler runs.

use agora_contracts::agora::user::v1::{self as pb, user_service_server::UserService};
use agora_platform::access::Principal;
use tonic::{Request, Response, Status};

use crate::{
    domain::{Listing, Page, Profile, ProfileChange, UserId},
    error::ServiceError,
    store::Store,
};

/// The user service's handlers and what they share.
#[derive(Debug)]
pub struct UserApi {
    store: Store,
}

impl UserApi {
    /// Builds the handlers over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The signed-in caller's own profile.
    async fn own_profile(&self, caller: &str) -> Result<Profile, ServiceError> {
        self.store
            .profile(caller)
            .await?
            .ok_or_else(|| no_profile(caller))
    }

    /// Applies `change` to the caller's profile; a change of nothing answers with the profile as
    /// it is, without touching its update_time.
    async fn update(&self, caller: &str, change: &ProfileChange) -> Result<Profile, ServiceError> {
        if change.is_empty() {
            return self.own_profile(caller).await;
        }
        self.store
            .update_profile(caller, change)
            .await?
            .ok_or_else(|| no_profile(caller))
    }

    /// Anyone's profile, for an administrator.
    async fn user(&self, user_id: UserId) -> Result<Profile, ServiceError> {
        self.store
            .profile(user_id.as_str())
            .await?
            .ok_or_else(|| ServiceError::NoUser {
                user_id: user_id.as_str().to_owned(),
            })
    }

    /// One page of profiles.
    async fn list(&self, listing: Listing) -> Result<Page, ServiceError> {
        let profiles = self
            .store
            .list_profiles(
                &listing.filter,
                listing.after.as_ref(),
                listing.fetch_limit(),
            )
            .await?;
        Ok(listing.page(profiles))
    }
}

/// The failure of a "My" method whose caller has no profile (yet).
fn no_profile(caller: &str) -> ServiceError {
    ServiceError::NoProfile {
        user_id: caller.to_owned(),
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn get_my_profile(
        &self,
        request: Request<pb::GetMyProfileRequest>,
    ) -> Result<Response<pb::GetMyProfileResponse>, Status> {
        let caller = &Principal::of(&request)?.subject;
        let profile = self.own_profile(caller).await?;
        Ok(Response::new(pb::GetMyProfileResponse {
            profile: Some(profile.into()),
        }))
    }

    async fn update_my_profile(
        &self,
        request: Request<pb::UpdateMyProfileRequest>,
    ) -> Result<Response<pb::UpdateMyProfileResponse>, Status> {
        let caller = Principal::of(&request)?.subject.clone();
        let change = ProfileChange::try_from((caller.as_str(), request.into_inner()))?;
        let profile = self.update(&caller, &change).await?;
        Ok(Response::new(pb::UpdateMyProfileResponse {
            profile: Some(profile.into()),
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let user_id = UserId::try_from(request.into_inner())?;
        let profile = self.user(user_id).await?;
        Ok(Response::new(pb::GetUserResponse {
            profile: Some(profile.into()),
        }))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let listing = Listing::try_from(request.into_inner())?;
        let page = self.list(listing).await?;
        Ok(Response::new(page.into()))
    }
}
