use agora_contracts::agora::user::v1 as pb;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::{
    domain::{Cursor, EmailPrefix, Listing, PageToken, ProfileChange, UserId},
    error::ServiceError,
};

const CALLER: &str = "0190a4b2-7c3d-7e8f-9a0b-1c2d3e4f5a6b";

/// The field violations a refused parse answers with, as the client reads them.
fn violations(error: ServiceError) -> Vec<(String, String)> {
    let status = Status::from(error);
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn fields(error: ServiceError) -> Vec<String> {
    violations(error)
        .into_iter()
        .map(|(field, _)| field)
        .collect()
}

fn home() -> pb::Address {
    pb::Address {
        label: "Home".into(),
        recipient: "Ada Lovelace".into(),
        line1: "Unter den Linden 1".into(),
        city: "Berlin".into(),
        country_code: "de".into(),
        ..Default::default()
    }
}

fn update(profile: pb::Profile, paths: &[&str]) -> pb::UpdateMyProfileRequest {
    pb::UpdateMyProfileRequest {
        profile: Some(profile),
        update_mask: (!paths.is_empty()).then(|| prost_types::FieldMask {
            paths: paths.iter().map(|&path| path.to_owned()).collect(),
        }),
    }
}

#[test]
fn a_user_id_in_any_uuid_spelling_is_normalised() {
    let request = pb::GetUserRequest {
        user_id: " 0190A4B2-7C3D-7E8F-9A0B-1C2D3E4F5A6B ".into(),
    };
    let user_id = UserId::try_from(request).expect("valid");
    assert_eq!(user_id.as_str(), CALLER);
}

#[test]
fn a_missing_or_malformed_user_id_is_refused_by_name() {
    let missing = UserId::try_from(pb::GetUserRequest {
        user_id: "  ".into(),
    })
    .expect_err("empty");
    assert_eq!(
        violations(missing),
        [("user_id".to_owned(), "is required".to_owned())]
    );
    let malformed = UserId::try_from(pb::GetUserRequest {
        user_id: "42".into(),
    })
    .expect_err("not a UUID");
    assert_eq!(
        violations(malformed),
        [("user_id".to_owned(), "must be a UUID".to_owned())]
    );
}

#[test]
fn an_empty_list_request_asks_for_the_first_page_of_twenty_unfiltered() {
    let listing = Listing::try_from(pb::ListUsersRequest::default()).expect("valid");
    assert_eq!(
        listing,
        Listing {
            size: 20,
            filter: EmailPrefix::default(),
            after: None,
        }
    );
}

#[test]
fn a_page_token_continues_the_listing_it_was_issued_for() {
    let filter = EmailPrefix::parse("ada").expect("valid");
    let cursor = Cursor {
        created_at: 1_700_000_000_000_000,
        user_id: CALLER.into(),
    };
    let token = PageToken {
        cursor: cursor.clone(),
        filter: filter.clone(),
    };
    let listing = Listing::try_from(pb::ListUsersRequest {
        page_size: 5,
        page_token: token.encode(),
        email_prefix: " ADA ".into(),
    })
    .expect("valid");
    assert_eq!(
        listing,
        Listing {
            size: 5,
            filter,
            after: Some(cursor),
        }
    );
}

#[test]
fn a_list_request_with_every_field_wrong_reports_every_violation() {
    let error = Listing::try_from(pb::ListUsersRequest {
        page_size: -1,
        page_token: "garbage!".into(),
        email_prefix: String::new(),
    })
    .expect_err("invalid");
    assert_eq!(fields(error), ["page_size", "page_token"]);
}

#[test]
fn a_bad_email_prefix_leaves_the_page_token_unchecked() {
    // The token is bound to a filter: without a valid one there is nothing to check it against.
    let error = Listing::try_from(pb::ListUsersRequest {
        page_size: -1,
        page_token: "garbage!".into(),
        email_prefix: "a".repeat(255),
    })
    .expect_err("invalid");
    assert_eq!(fields(error), ["page_size", "email_prefix"]);
}

#[test]
fn an_update_without_a_mask_changes_only_the_fields_it_sets() {
    let profile = pb::Profile {
        display_name: "  Ada  ".into(),
        preferences: Some(pb::Preferences {
            language: "pt-br".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let change = ProfileChange::try_from((CALLER, update(profile, &[]))).expect("valid");
    assert_eq!(
        change.display_name.as_ref().map(|name| name.as_str()),
        Some("Ada")
    );
    assert_eq!(
        change.language.as_ref().map(|language| language.as_str()),
        Some("pt-BR")
    );
    assert_eq!(change.addresses, None);
    assert_eq!(change.currency_code, None);
    assert_eq!(change.marketing_emails, None);
}

#[test]
fn a_mask_selects_fields_even_when_they_are_empty() {
    let request = update(
        pb::Profile::default(),
        &["display_name", "preferences.marketing_emails"],
    );
    let change = ProfileChange::try_from((CALLER, request)).expect("valid");
    assert_eq!(
        change.display_name.as_ref().map(|name| name.as_str()),
        Some("")
    );
    assert_eq!(change.marketing_emails, Some(false));
    assert_eq!(change.language, None);
}

#[test]
fn an_update_may_name_the_callers_own_id_in_any_spelling() {
    let profile = pb::Profile {
        user_id: CALLER.to_uppercase(),
        addresses: vec![home()],
        ..Default::default()
    };
    let change = ProfileChange::try_from((CALLER, update(profile, &[]))).expect("valid");
    let addresses = change.addresses.expect("addresses selected");
    assert_eq!(addresses.as_slice()[0].fields().country_code, "DE");
}

#[test]
fn an_update_with_every_field_wrong_reports_every_violation() {
    let mut broken = home();
    broken.city = String::new();
    broken.label = "home".into();
    let profile = pb::Profile {
        user_id: "0190a4b2-0000-7e8f-9a0b-1c2d3e4f5a6b".into(),
        display_name: "a".repeat(101),
        addresses: vec![home(), broken],
        preferences: Some(pb::Preferences {
            language: "e".into(),
            currency_code: "XXX".into(),
            marketing_emails: true,
        }),
        ..Default::default()
    };
    let error =
        ProfileChange::try_from((CALLER, update(profile, &["*", "email", "addresses.city"])))
            .expect_err("invalid");
    assert_eq!(
        fields(error),
        [
            "profile.user_id",
            "update_mask.paths[1]",
            "update_mask.paths[2]",
            "profile.display_name",
            "profile.addresses[1].city",
            "profile.addresses[1].label",
            "profile.preferences.language",
            "profile.preferences.currency_code",
        ]
    );
}
