//! Each request with fields to check, parsed once into the domain value its handler needs.
//! A parse reports every field violation of the request at once, named by its path in the
//! request (`profile.addresses[1].city`), so a client fixes them in one round trip.

use agora_contracts::agora::user::v1 as pb;
use agora_platform::error::FieldViolations;

use crate::{
    domain::{
        AddressFields, Addresses, CurrencyCode, DisplayName, EmailPrefix, Language, Listing,
        PageToken, ProfileChange, Selection, UserId, page_size,
    },
    error::ServiceError,
};

impl TryFrom<pb::GetUserRequest> for UserId {
    type Error = ServiceError;

    fn try_from(request: pb::GetUserRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let Some(user_id) = violations.take("user_id", UserId::parse(&request.user_id)) else {
            return Err(violations.into());
        };
        Ok(user_id)
    }
}

impl TryFrom<pb::ListUsersRequest> for Listing {
    type Error = ServiceError;

    fn try_from(request: pb::ListUsersRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let size = violations.take("page_size", page_size(request.page_size));
        let filter = violations.take("email_prefix", EmailPrefix::parse(&request.email_prefix));
        // A token is checked against the filter it must have been issued for, so a bad filter
        // leaves nothing to check it against; an empty token is the first page.
        let after = match (&filter, request.page_token.trim().is_empty()) {
            (Some(filter), false) => violations
                .take("page_token", PageToken::decode(&request.page_token, filter))
                .map(Some),
            _ => Some(None),
        };
        let (Some(size), Some(filter), Some(after)) = (size, filter, after) else {
            return Err(violations.into());
        };
        Ok(Self {
            size,
            filter,
            after,
        })
    }
}

/// An UpdateMyProfile request from the signed-in user `caller` (the token's subject), who may
/// only name their own profile.
impl TryFrom<(&str, pb::UpdateMyProfileRequest)> for ProfileChange {
    type Error = ServiceError;

    /// Reads only the fields the update selects.
    fn try_from(
        (caller, request): (&str, pb::UpdateMyProfileRequest),
    ) -> Result<Self, Self::Error> {
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
            let raw: Vec<AddressFields> = profile.addresses.iter().map(Into::into).collect();
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
        // A refused field leaves its part of the change unset, which would silently narrow the
        // update: any violation refuses the whole request.
        if !violations.is_empty() {
            return Err(violations.into());
        }
        Ok(change)
    }
}

/// The fields an update changes: those its mask names, or, without a mask, those set (non-empty)
/// in `profile`, as proto3 has no presence for them.
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

/// Whether two spellings of a user id name the same user (UUIDs compare case-insensitively).
fn same_user(given: &str, caller: &str) -> bool {
    match (uuid::Uuid::parse_str(given), uuid::Uuid::parse_str(caller)) {
        (Ok(given), Ok(caller)) => given == caller,
        _ => given == caller,
    }
}

#[cfg(test)]
mod tests;
