//! The gRPC handlers of `agora.user.v1.UserService`. Each parses its request into domain types
//! (collecting every field violation), calls the store, and maps the result.
//!
//! The "My" methods take the user id from the verified token only, never from the request, so a
//! user can neither read nor change another user's profile; GetUser and ListUsers are for
//! administrators, which the access layer enforces from the contract before a handler runs.

use agora_contracts::agora::user::v1::{self as pb, user_service_server::UserService};
use agora_platform::{
    access::Principal,
    error::{ApiError, FieldViolations},
    time::timestamp,
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{
        AddressFields, Addresses, CurrencyCode, Cursor, DisplayName, EmailPrefix, Language,
        PageToken, Profile, ProfileChange, Selection, page_size,
    },
    store::{Store, StoreError},
};

/// The user service's handlers and what they share.
#[derive(Debug)]
pub struct UserApi {
    store: Store,
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::internal(error)
    }
}

fn store_error(error: StoreError) -> Status {
    ApiError::from(error).into()
}

/// The answer for a signed-in user whose profile does not exist (yet).
fn no_profile(user_id: &str) -> Status {
    // Right after registration the event may still be on its way: the contract says NOT_FOUND,
    // and the client retries.
    ApiError::NotFound {
        resource: "profile",
        id: user_id.to_owned(),
    }
    .into()
}

fn to_pb(profile: Profile) -> pb::Profile {
    pb::Profile {
        user_id: profile.user_id,
        email: profile.email,
        display_name: profile.display_name,
        addresses: profile
            .addresses
            .iter()
            .map(|address| {
                let a = address.fields().clone();
                pb::Address {
                    label: a.label,
                    recipient: a.recipient,
                    line1: a.line1,
                    line2: a.line2,
                    city: a.city,
                    region: a.region,
                    postal_code: a.postal_code,
                    country_code: a.country_code,
                }
            })
            .collect(),
        preferences: Some(pb::Preferences {
            language: profile.language,
            currency_code: profile.currency_code,
            marketing_emails: profile.marketing_emails,
        }),
        create_time: Some(timestamp(profile.created_at)),
        update_time: Some(timestamp(profile.updated_at)),
    }
}

fn address_fields(address: &pb::Address) -> AddressFields {
    AddressFields {
        label: address.label.clone(),
        recipient: address.recipient.clone(),
        line1: address.line1.clone(),
        line2: address.line2.clone(),
        city: address.city.clone(),
        region: address.region.clone(),
        postal_code: address.postal_code.clone(),
        country_code: address.country_code.clone(),
    }
}

/// The fields an update changes: those its mask names, or, without a mask, those set (non-empty)
/// in `profile`.
fn selection(
    profile: &pb::Profile,
    mask: Option<&prost_types::FieldMask>,
    violations: &mut FieldViolations,
) -> Selection {
    let mut selection = Selection::default();
    match mask.filter(|mask| !mask.paths.is_empty()) {
        Some(mask) => {
            for (index, path) in mask.paths.iter().enumerate() {
                violations.take(
                    &format!("update_mask.paths[{index}]"),
                    selection.add_path(path),
                );
            }
        }
        None => {
            let preferences = profile.preferences.clone().unwrap_or_default();
            selection.display_name = !profile.display_name.is_empty();
            selection.addresses = !profile.addresses.is_empty();
            selection.language = !preferences.language.is_empty();
            selection.currency_code = !preferences.currency_code.is_empty();
            selection.marketing_emails = preferences.marketing_emails;
        }
    }
    selection
}

/// Parses an UpdateMyProfile request of `caller` into the change it asks for, reading only the
/// selected fields.
fn parse_update(
    caller: &str,
    request: pb::UpdateMyProfileRequest,
) -> Result<ProfileChange, ApiError> {
    let mut violations = FieldViolations::default();
    let profile = request.profile.unwrap_or_default();
    if !profile.user_id.is_empty() && !same_user(&profile.user_id, caller) {
        violations.add(
            "profile.user_id",
            "must be empty or your own user id: you can only change your own profile",
        );
    }
    let selected = selection(&profile, request.update_mask.as_ref(), &mut violations);
    let preferences = profile.preferences.unwrap_or_default();
    let mut change = ProfileChange::default();
    if selected.display_name {
        change.display_name = violations.take(
            "profile.display_name",
            DisplayName::parse(&profile.display_name),
        );
    }
    if selected.addresses {
        let raw: Vec<AddressFields> = profile.addresses.iter().map(address_fields).collect();
        match Addresses::parse(&raw) {
            Ok(addresses) => change.addresses = Some(addresses),
            Err(problems) => {
                for (path, problem) in problems {
                    violations.add(format!("profile.addresses{path}"), problem);
                }
            }
        }
    }
    if selected.language {
        change.language = violations.take(
            "profile.preferences.language",
            Language::parse(&preferences.language),
        );
    }
    if selected.currency_code {
        change.currency_code = violations.take(
            "profile.preferences.currency_code",
            CurrencyCode::parse(&preferences.currency_code),
        );
    }
    if selected.marketing_emails {
        change.marketing_emails = Some(preferences.marketing_emails);
    }
    violations.finish()?;
    Ok(change)
}

/// Whether two spellings of a user id name the same user (UUIDs compare case-insensitively).
fn same_user(given: &str, caller: &str) -> bool {
    match (uuid::Uuid::parse_str(given), uuid::Uuid::parse_str(caller)) {
        (Ok(given), Ok(caller)) => given == caller,
        _ => given == caller,
    }
}

impl UserApi {
    /// Builds the handlers over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn profile_of(&self, user_id: &str) -> Result<pb::Profile, Status> {
        match self.store.profile(user_id).await.map_err(store_error)? {
            Some(profile) => Ok(to_pb(profile)),
            None => Err(no_profile(user_id)),
        }
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn get_my_profile(
        &self,
        request: Request<pb::GetMyProfileRequest>,
    ) -> Result<Response<pb::GetMyProfileResponse>, Status> {
        let caller = Principal::of(&request)?.subject.clone();
        let profile = self.profile_of(&caller).await?;
        Ok(Response::new(pb::GetMyProfileResponse {
            profile: Some(profile),
        }))
    }

    async fn update_my_profile(
        &self,
        request: Request<pb::UpdateMyProfileRequest>,
    ) -> Result<Response<pb::UpdateMyProfileResponse>, Status> {
        let caller = Principal::of(&request)?.subject.clone();
        let change = parse_update(&caller, request.into_inner())?;
        let profile = if change.is_empty() {
            // Nothing selected: answer with the profile as it is, without touching update_time.
            self.profile_of(&caller).await?
        } else {
            match self
                .store
                .update_profile(&caller, &change)
                .await
                .map_err(store_error)?
            {
                Some(profile) => to_pb(profile),
                None => return Err(no_profile(&caller)),
            }
        };
        Ok(Response::new(pb::UpdateMyProfileResponse {
            profile: Some(profile),
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let raw = request.into_inner().user_id;
        let user_id = match uuid::Uuid::parse_str(raw.trim()) {
            Ok(id) => id.hyphenated().to_string(),
            Err(_) if raw.trim().is_empty() => {
                return Err(ApiError::invalid_field("user_id", "is required").into());
            }
            Err(_) => return Err(ApiError::invalid_field("user_id", "must be a UUID").into()),
        };
        match self.store.profile(&user_id).await.map_err(store_error)? {
            Some(profile) => Ok(Response::new(pb::GetUserResponse {
                profile: Some(to_pb(profile)),
            })),
            None => Err(ApiError::NotFound {
                resource: "user",
                id: user_id,
            }
            .into()),
        }
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let request = request.into_inner();
        let mut violations = FieldViolations::default();
        let size = violations.take("page_size", page_size(request.page_size));
        let filter = violations.take("email_prefix", EmailPrefix::parse(&request.email_prefix));
        let cursor = match (&filter, request.page_token.trim().is_empty()) {
            (Some(filter), false) => violations
                .take("page_token", PageToken::decode(&request.page_token, filter))
                .map(Some),
            _ => Some(None),
        };
        violations.finish()?;
        let (Some(size), Some(filter), Some(cursor)) = (size, filter, cursor) else {
            return Err(ApiError::internal(anyhow::anyhow!("parsed fields missing")).into());
        };
        // One more than asked tells whether a next page exists without a second query.
        let mut profiles = self
            .store
            .list_profiles(&filter, cursor.as_ref(), size + 1)
            .await
            .map_err(store_error)?;
        let more = profiles.len() > size;
        profiles.truncate(size);
        let next_page_token = match profiles.last() {
            Some(last) if more => PageToken {
                cursor: Cursor {
                    created_at: last.created_at,
                    user_id: last.user_id.clone(),
                },
                filter,
            }
            .encode(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListUsersResponse {
            profiles: profiles.into_iter().map(to_pb).collect(),
            next_page_token,
        }))
    }
}
