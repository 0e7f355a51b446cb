//! GetMyProfile and UpdateMyProfile through the real gRPC surface: profiles created from auth's
//! registrations, field-mask semantics, validation, and that a user only ever reaches their own
//! profile.

use crate::common::{address, member, my_profile, start, update, users, violated_fields};
use agora_contracts::agora::user::v1::{self as pb, user_service_client::UserServiceClient};
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, authed, on_both_backends};
use tonic::{Code, Request};

on_both_backends!(
    a_registered_user_gets_a_profile_with_the_account_id_and_email,
    a_mask_changes_only_the_fields_it_names,
    without_a_mask_only_the_non_empty_fields_change,
    a_masked_empty_value_clears_the_field,
    preferences_sub_fields_change_one_at_a_time,
    values_are_normalised_before_they_are_stored,
    every_validation_error_is_reported_at_once_and_nothing_changes,
    read_only_and_unknown_mask_paths_are_refused,
    fields_outside_the_mask_are_neither_read_nor_checked,
    an_empty_update_returns_the_profile_unchanged,
    anonymous_callers_and_services_cannot_use_the_my_methods,
    a_user_never_reads_or_changes_another_users_profile,
);

async fn a_registered_user_gets_a_profile_with_the_account_id_and_email(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let ada = member(&mesh, "Ada").await;
    let profile = my_profile(&mesh, &ada.token).await;
    assert_eq!(profile.user_id, ada.id);
    assert_eq!(profile.email, ada.email.to_lowercase());
    assert_eq!(profile.display_name, "");
    assert!(profile.addresses.is_empty());
    assert_eq!(profile.preferences, Some(pb::Preferences::default()));
    let created = profile.create_time.expect("a create time");
    assert!(created.seconds > 1_700_000_000, "a real registration time");
    assert_eq!(profile.update_time, Some(created));
}

async fn a_mask_changes_only_the_fields_it_names(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let ada = member(&mesh, "ada").await;
    let before = my_profile(&mesh, &ada.token).await;
    let asked = pb::Profile {
        display_name: "Ada Lovelace".into(),
        addresses: vec![address("Home", "London", "GB")],
        preferences: Some(pb::Preferences {
            language: "en".into(),
            currency_code: "GBP".into(),
            marketing_emails: true,
        }),
        ..pb::Profile::default()
    };
    let after = update(&mesh, &ada.token, asked, &["display_name"])
        .await
        .expect("the update succeeds");
    assert_eq!(after.display_name, "Ada Lovelace");
    assert!(after.addresses.is_empty(), "addresses were not named");
    assert_eq!(after.preferences, Some(pb::Preferences::default()));
    assert_eq!(after.create_time, before.create_time);
    let seconds_and_nanos = |t: Option<prost_types::Timestamp>| t.map(|t| (t.seconds, t.nanos));
    assert!(
        seconds_and_nanos(after.update_time) > seconds_and_nanos(before.update_time),
        "update_time moves"
    );
    assert_eq!(
        my_profile(&mesh, &ada.token).await,
        after,
        "the change is stored"
    );
}

async fn without_a_mask_only_the_non_empty_fields_change(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let ada = member(&mesh, "ada").await;
    let full = pb::Profile {
        display_name: "Ada".into(),
        addresses: vec![address("Home", "London", "GB")],
        preferences: Some(pb::Preferences {
            language: "en".into(),
            currency_code: "GBP".into(),
            marketing_emails: true,
        }),
        ..pb::Profile::default()
    };
    update(&mesh, &ada.token, full.clone(), &[])
        .await
        .expect("the first update succeeds");

    // Only the currency is set: the name, addresses, language and consent stay, and the
    // read-only email sent along is ignored rather than refused.
    let partial = pb::Profile {
        email: "someone.else@example.com".into(),
        preferences: Some(pb::Preferences {
            currency_code: "EUR".into(),
            ..pb::Preferences::default()
        }),
        ..pb::Profile::default()
    };
    let after = update(&mesh, &ada.token, partial, &[])
        .await
        .expect("the second update succeeds");
    assert_eq!(after.display_name, "Ada");
    assert_eq!(after.email, ada.email.to_lowercase());
    assert_eq!(after.addresses, full.addresses);
    assert_eq!(
        after.preferences,
        Some(pb::Preferences {
            language: "en".into(),
            currency_code: "EUR".into(),
            marketing_emails: true,
        })
    );
}

async fn a_masked_empty_value_clears_the_field(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let ada = member(&mesh, "ada").await;
    let full = pb::Profile {
        display_name: "Ada".into(),
        addresses: vec![address("Home", "London", "GB"), address("", "Paris", "FR")],
        preferences: Some(pb::Preferences {
            language: "en".into(),
            currency_code: "GBP".into(),
            marketing_emails: true,
        }),
        ..pb::Profile::default()
    };
    update(&mesh, &ada.token, full, &[])
        .await
        .expect("setting succeeds");
    let cleared = update(
        &mesh,
        &ada.token,
        pb::Profile::default(),
        &["display_name", "addresses", "preferences"],
    )
    .await
    .expect("clearing succeeds");
    assert_eq!(cleared.display_name, "");
    assert!(cleared.addresses.is_empty());
    assert_eq!(cleared.preferences, Some(pb::Preferences::default()));
    assert_eq!(my_profile(&mesh, &ada.token).await, cleared);
}

async fn preferences_sub_fields_change_one_at_a_time(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let ada = member(&mesh, "ada").await;
    let preferences = |language: &str, currency: &str, marketing: bool| pb::Profile {
        preferences: Some(pb::Preferences {
            language: language.into(),
            currency_code: currency.into(),
            marketing_emails: marketing,
        }),
        ..pb::Profile::default()
    };
    update(
        &mesh,
        &ada.token,
        preferences("en", "GBP", true),
        &["preferences"],
    )
    .await
    .expect("setting succeeds");
    let after = update(
        &mesh,
        &ada.token,
        preferences("de", "EUR", false),
        &["preferences.currency_code"],
    )
    .await
    .expect("one sub-field changes");
    assert_eq!(
        after.preferences,
        preferences("en", "EUR", true).preferences
    );
    let after = update(
        &mesh,
        &ada.token,
        preferences("", "", false),
        &["preferences.marketing_emails"],
    )
    .await
    .expect("consent is withdrawn with a mask");
    assert_eq!(
        after.preferences,
        preferences("en", "EUR", false).preferences
    );
}

async fn values_are_normalised_before_they_are_stored(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let ada = member(&mesh, "ada").await;
    let mut home = address(" Home ", " Berlin ", "de");
    home.line2 = "  2nd floor ".into();
    let asked = pb::Profile {
        display_name: "  Ada  ".into(),
        addresses: vec![home],
        preferences: Some(pb::Preferences {
            language: "PT-br".into(),
            currency_code: "eur".into(),
            marketing_emails: false,
        }),
        ..pb::Profile::default()
    };
    let after = update(&mesh, &ada.token, asked, &[])
        .await
        .expect("the update succeeds");
    assert_eq!(after.display_name, "Ada");
    let stored = &after.addresses[0];
    assert_eq!(
        (
            stored.label.as_str(),
            stored.city.as_str(),
            stored.line2.as_str(),
            stored.country_code.as_str()
        ),
        ("Home", "Berlin", "2nd floor", "DE")
    );
    let preferences = after.preferences.expect("preferences");
    assert_eq!(preferences.language, "pt-BR");
    assert_eq!(preferences.currency_code, "EUR");
}

async fn every_validation_error_is_reported_at_once_and_nothing_changes(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let ada = member(&mesh, "ada").await;
    let before = update(
        &mesh,
        &ada.token,
        pb::Profile {
            display_name: "Ada".into(),
            ..pb::Profile::default()
        },
        &[],
    )
    .await
    .expect("a valid update succeeds");
    let mut no_city = address("Work", "", "GB");
    no_city.recipient = String::new();
    let bad = pb::Profile {
        display_name: "x".repeat(101),
        addresses: vec![
            address("Home", "London", "XX"),
            no_city,
            address("home", "Paris", "FR"),
        ],
        preferences: Some(pb::Preferences {
            language: "english_UK".into(),
            currency_code: "EURO".into(),
            marketing_emails: true,
        }),
        ..pb::Profile::default()
    };
    let status = update(&mesh, &ada.token, bad, &[])
        .await
        .expect_err("the update is refused");
    assert_eq!(
        violated_fields(&status),
        [
            "profile.display_name",
            "profile.addresses[0].country_code",
            "profile.addresses[1].recipient",
            "profile.addresses[1].city",
            "profile.addresses[2].label",
            "profile.preferences.language",
            "profile.preferences.currency_code",
        ]
    );

    let eleven = pb::Profile {
        addresses: (0..11)
            .map(|i| address(&format!("A{i}"), "Rome", "IT"))
            .collect(),
        display_name: "Ada\u{7}".into(),
        ..pb::Profile::default()
    };
    let status = update(&mesh, &ada.token, eleven, &["addresses", "display_name"])
        .await
        .expect_err("too many addresses");
    assert_eq!(
        violated_fields(&status),
        ["profile.display_name", "profile.addresses"]
    );
    assert_eq!(
        my_profile(&mesh, &ada.token).await,
        before,
        "refused updates change nothing"
    );
}

async fn read_only_and_unknown_mask_paths_are_refused(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let ada = member(&mesh, "ada").await;
    let before = my_profile(&mesh, &ada.token).await;
    let status = update(
        &mesh,
        &ada.token,
        pb::Profile {
            display_name: "Ada".into(),
            email: "other@example.com".into(),
            ..pb::Profile::default()
        },
        &[
            "display_name",
            "email",
            "user_id",
            "create_time",
            "update_time",
            "nickname",
            "addresses.city",
            "preferences.theme",
        ],
    )
    .await
    .expect_err("the mask is refused");
    assert_eq!(
        violated_fields(&status),
        [
            "update_mask.paths[1]",
            "update_mask.paths[2]",
            "update_mask.paths[3]",
            "update_mask.paths[4]",
            "update_mask.paths[5]",
            "update_mask.paths[6]",
            "update_mask.paths[7]",
        ]
    );
    assert_eq!(my_profile(&mesh, &ada.token).await, before);
}

async fn fields_outside_the_mask_are_neither_read_nor_checked(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let ada = member(&mesh, "ada").await;
    let asked = pb::Profile {
        display_name: "Ada".into(),
        addresses: vec![address("Home", "", "??")],
        preferences: Some(pb::Preferences {
            language: "!!".into(),
            currency_code: "???".into(),
            marketing_emails: true,
        }),
        ..pb::Profile::default()
    };
    let after = update(&mesh, &ada.token, asked, &["display_name"])
        .await
        .expect("only display_name is read");
    assert_eq!(after.display_name, "Ada");
    assert!(after.addresses.is_empty());
}

async fn an_empty_update_returns_the_profile_unchanged(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let ada = member(&mesh, "ada").await;
    let before = my_profile(&mesh, &ada.token).await;
    let response = users(&mesh)
        .update_my_profile(authed(pb::UpdateMyProfileRequest::default(), &ada.token))
        .await
        .expect("an empty update succeeds")
        .into_inner();
    assert_eq!(response.profile, Some(before.clone()));
    let after = update(&mesh, &ada.token, pb::Profile::default(), &[])
        .await
        .expect("an update of empty values without a mask succeeds");
    assert_eq!(after, before, "nothing changed, not even update_time");
}

async fn anonymous_callers_and_services_cannot_use_the_my_methods(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let mut client = users(&mesh);
    let status = client
        .get_my_profile(pb::GetMyProfileRequest {})
        .await
        .expect_err("anonymous");
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client
        .update_my_profile(pb::UpdateMyProfileRequest::default())
        .await
        .expect_err("anonymous");
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client
        .get_my_profile(authed(pb::GetMyProfileRequest {}, "not.a.token"))
        .await
        .expect_err("a forged token");
    assert_eq!(status.code(), Code::Unauthenticated);

    // A service token is not a user: it has no profile of its own to read or change.
    let service = mesh.service_token(ServiceKind::Order).await;
    let status = client
        .get_my_profile(authed(pb::GetMyProfileRequest {}, &service))
        .await
        .expect_err("a service");
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = client
        .update_my_profile(authed(pb::UpdateMyProfileRequest::default(), &service))
        .await
        .expect_err("a service");
    assert_eq!(status.code(), Code::PermissionDenied);
}

async fn a_user_never_reads_or_changes_another_users_profile(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let ada = member(&mesh, "ada").await;
    let bob = member(&mesh, "bob").await;
    let ada_profile = update(
        &mesh,
        &ada.token,
        pb::Profile {
            display_name: "Ada".into(),
            ..pb::Profile::default()
        },
        &[],
    )
    .await
    .expect("ada names herself");

    let seen_by_bob = my_profile(&mesh, &bob.token).await;
    assert_eq!(seen_by_bob.user_id, bob.id);
    assert_eq!(seen_by_bob.display_name, "");

    // Naming Ada's id in Bob's update is refused, not applied to either profile.
    let status = update(
        &mesh,
        &bob.token,
        pb::Profile {
            user_id: ada.id.clone(),
            display_name: "Mallory".into(),
            ..pb::Profile::default()
        },
        &["display_name"],
    )
    .await
    .expect_err("another user's id");
    assert_eq!(violated_fields(&status), ["profile.user_id"]);
    assert_eq!(my_profile(&mesh, &ada.token).await, ada_profile);
    assert_eq!(my_profile(&mesh, &bob.token).await, seen_by_bob);

    // His own id (in any case) is fine.
    let renamed = update(
        &mesh,
        &bob.token,
        pb::Profile {
            user_id: bob.id.to_uppercase(),
            display_name: "Bob".into(),
            ..pb::Profile::default()
        },
        &["display_name"],
    )
    .await
    .expect("his own id");
    assert_eq!(renamed.user_id, bob.id);
    assert_eq!(my_profile(&mesh, &ada.token).await, ada_profile);

    // Request metadata cannot choose the profile either: only the token's subject counts.
    let mut request = Request::new(pb::GetMyProfileRequest {});
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", bob.token).parse().expect("header"),
    );
    request
        .metadata_mut()
        .insert("x-user-id", ada.id.parse().expect("header"));
    let profile = UserServiceClient::new(mesh.channel(ServiceKind::User))
        .get_my_profile(request)
        .await
        .expect("bob reads")
        .into_inner()
        .profile
        .expect("a profile");
    assert_eq!(profile.user_id, bob.id);
}
