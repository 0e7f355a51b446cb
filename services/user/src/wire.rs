//! The user service's side of the contract: requests parsed into domain values (`TryFrom`
//! implementations in `wire/requests.rs` that collect every field violation), domain values
//! written as `agora.user.v1` messages, and the one table from [`ServiceError`] to
//! `tonic::Status`.

use agora_contracts::agora::user::v1 as pb;
use agora_platform::{error::ApiError, time::timestamp};
use tonic::Status;

use crate::{
    domain::{AddressFields, Page, Profile},
    error::ServiceError,
};

mod requests;

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        let error = match error {
            ServiceError::InvalidArgument(violations) => violations.into_error(),
            ServiceError::NoProfile { user_id } => ApiError::NotFound {
                resource: "profile",
                id: user_id,
            },
            ServiceError::NoUser { user_id } => ApiError::NotFound {
                resource: "user",
                id: user_id,
            },
            // Logged with its chain by the platform; the client sees INTERNAL and the request id.
            ServiceError::Store(error) => ApiError::internal(error),
        };
        error.into()
    }
}

impl From<Profile> for pb::Profile {
    fn from(profile: Profile) -> Self {
        Self {
            user_id: profile.user_id,
            email: profile.email,
            display_name: profile.display_name,
            addresses: profile
                .addresses
                .iter()
                .map(|address| address.fields().clone().into())
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
}

impl From<AddressFields> for pb::Address {
    fn from(address: AddressFields) -> Self {
        Self {
            label: address.label,
            recipient: address.recipient,
            line1: address.line1,
            line2: address.line2,
            city: address.city,
            region: address.region,
            postal_code: address.postal_code,
            country_code: address.country_code,
        }
    }
}

impl From<&pb::Address> for AddressFields {
    fn from(address: &pb::Address) -> Self {
        Self {
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
}

impl From<Page> for pb::ListUsersResponse {
    fn from(page: Page) -> Self {
        Self {
            profiles: page.profiles.into_iter().map(Into::into).collect(),
            // The contract's "no next page" is an empty token.
            next_page_token: page.next.map(|token| token.encode()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests;
