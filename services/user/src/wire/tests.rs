use agora_platform::error::FieldViolations;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use super::*;
use crate::{domain::Address, store::StoreError};

fn ada() -> Profile {
    Profile {
        user_id: "0190a4b2-7c3d-7e8f-9a0b-1c2d3e4f5a6b".into(),
        email: "ada@example.com".into(),
        display_name: "Ada".into(),
        addresses: vec![Address::from_stored(AddressFields {
            label: "Home".into(),
            city: "Berlin".into(),
            country_code: "DE".into(),
            ..Default::default()
        })],
        language: "en".into(),
        currency_code: "EUR".into(),
        marketing_emails: true,
        created_at: 1_700_000_000_000_000,
        updated_at: 1_700_000_000_000_001,
    }
}

#[test]
fn a_profile_is_written_with_its_addresses_preferences_and_times() {
    let profile = pb::Profile::from(ada());
    assert_eq!(profile.user_id, "0190a4b2-7c3d-7e8f-9a0b-1c2d3e4f5a6b");
    assert_eq!(profile.addresses.len(), 1);
    assert_eq!(profile.addresses[0].city, "Berlin");
    let preferences = profile.preferences.expect("preferences");
    assert_eq!(preferences.currency_code, "EUR");
    assert!(preferences.marketing_emails);
    let created = profile.create_time.expect("create_time");
    assert_eq!((created.seconds, created.nanos), (1_700_000_000, 0));
    let updated = profile.update_time.expect("update_time");
    assert_eq!((updated.seconds, updated.nanos), (1_700_000_000, 1_000));
}

#[test]
fn a_last_page_has_an_empty_next_page_token() {
    let response = pb::ListUsersResponse::from(Page {
        profiles: vec![ada()],
        next: None,
    });
    assert_eq!(response.profiles.len(), 1);
    assert!(response.next_page_token.is_empty());
}

#[test]
fn violations_are_answered_as_invalid_argument_with_every_field() {
    let mut violations = FieldViolations::default();
    violations.add("page_size", "must not be negative");
    violations.add("email_prefix", "must be at most 254 characters");
    let status = Status::from(ServiceError::from(violations));
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "2 invalid fields");
    let details = status.get_error_details();
    let bad_request = details.bad_request().expect("BadRequest");
    assert_eq!(bad_request.field_violations.len(), 2);
}

#[test]
fn a_missing_profile_or_user_is_not_found_with_its_resource() {
    for (error, resource) in [
        (
            ServiceError::NoProfile {
                user_id: "u1".into(),
            },
            "profile",
        ),
        (
            ServiceError::NoUser {
                user_id: "u1".into(),
            },
            "user",
        ),
    ] {
        let status = Status::from(error);
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), format!("{resource} not found"));
        let details = status.get_error_details();
        let info = details.resource_info().expect("ResourceInfo");
        assert_eq!(
            (info.resource_type.as_str(), info.resource_name.as_str()),
            (resource, "u1")
        );
    }
}

#[test]
fn store_failures_are_internal_and_hide_their_cause() {
    let corrupt = serde_json::from_str::<AddressFields>("{").expect_err("not JSON");
    let status = Status::from(ServiceError::from(StoreError::from(corrupt)));
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(status.message(), "internal error");
    assert!(!format!("{:?}", status.details()).contains("decode"));
}
