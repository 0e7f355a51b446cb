//! GetUser and ListUsers through the real gRPC surface: administrators only, keyset pagination
//! that stays stable while users register, the email prefix filter, and token checks.

use std::collections::HashSet;

use crate::common::{member, start, update, users, violated_fields, wait_for_profile};
use agora_contracts::agora::user::v1::{self as pb, user_service_client::UserServiceClient};
use agora_platform::config::ServiceKind;
use agora_testkit::{ADMIN_EMAIL, TestBackend, TestMesh, authed, email, on_both_backends};
use tonic::{Code, transport::Channel};

on_both_backends!(
    an_admin_reads_any_users_profile,
    get_user_refuses_malformed_ids_and_answers_not_found_for_unknown_ones,
    only_admins_may_call_get_user_and_list_users,
    list_users_pages_newest_first_and_stays_stable_while_users_register,
    the_email_prefix_filter_matches_lower_cased_literal_prefixes,
    a_page_token_only_works_with_the_filter_it_was_issued_for,
    list_users_reports_every_invalid_argument_at_once,
);

async fn list(
    client: &mut UserServiceClient<Channel>,
    token: &str,
    page_size: i32,
    page_token: &str,
    email_prefix: &str,
) -> Result<pb::ListUsersResponse, tonic::Status> {
    client
        .list_users(authed(
            pb::ListUsersRequest {
                page_size,
                page_token: page_token.into(),
                email_prefix: email_prefix.into(),
            },
            token,
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// Every profile matching `email_prefix`, page by page.
async fn list_all(mesh: &TestMesh, token: &str, page_size: i32, email_prefix: &str) -> Vec<String> {
    let mut client = users(mesh);
    let mut emails = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = list(&mut client, token, page_size, &page_token, email_prefix)
            .await
            .expect("ListUsers succeeds");
        emails.extend(page.profiles.into_iter().map(|p| p.email));
        if page.next_page_token.is_empty() {
            return emails;
        }
        page_token = page.next_page_token;
    }
}

async fn an_admin_reads_any_users_profile(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let ada = member(&mesh, "ada").await;
    let own = update(
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
    let admin = mesh.admin_token().await;
    let seen = users(&mesh)
        .get_user(authed(
            pb::GetUserRequest {
                user_id: ada.id.to_uppercase(),
            },
            &admin,
        ))
        .await
        .expect("an admin reads it")
        .into_inner()
        .profile;
    assert_eq!(seen, Some(own), "the same profile its owner sees");
}

async fn get_user_refuses_malformed_ids_and_answers_not_found_for_unknown_ones(
    backend: TestBackend,
) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let admin = mesh.admin_token().await;
    let mut client = users(&mesh);
    for malformed in ["", "42", "not-a-uuid"] {
        let status = client
            .get_user(authed(
                pb::GetUserRequest {
                    user_id: malformed.into(),
                },
                &admin,
            ))
            .await
            .expect_err("malformed");
        assert_eq!(violated_fields(&status), ["user_id"], "{malformed:?}");
    }
    let unknown = uuid::Uuid::now_v7().to_string();
    let status = client
        .get_user(authed(pb::GetUserRequest { user_id: unknown }, &admin))
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
}

async fn only_admins_may_call_get_user_and_list_users(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let ada = member(&mesh, "ada").await;
    let bob = member(&mesh, "bob").await;
    let service = mesh.service_token(ServiceKind::Order).await;
    let mut client = users(&mesh);

    let status = client
        .get_user(pb::GetUserRequest {
            user_id: ada.id.clone(),
        })
        .await
        .expect_err("anonymous");
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect_err("anonymous");
    assert_eq!(status.code(), Code::Unauthenticated);

    for token in [&bob.token, &ada.token, &service] {
        let status = client
            .get_user(authed(
                pb::GetUserRequest {
                    user_id: ada.id.clone(),
                },
                token,
            ))
            .await
            .expect_err("not an admin");
        assert_eq!(status.code(), Code::PermissionDenied);
        let status = list(&mut client, token, 0, "", "")
            .await
            .expect_err("not an admin");
        assert_eq!(status.code(), Code::PermissionDenied);
    }
}

async fn list_users_pages_newest_first_and_stays_stable_while_users_register(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let admin = mesh.admin_token().await;
    // The administrator's registration makes a profile too; it is the oldest.
    wait_for_profile(&mesh, &admin).await;
    let mut registered = Vec::new();
    for i in 0..5 {
        registered.push(member(&mesh, &format!("early{i}")).await.email);
    }
    let mut expected: Vec<String> = registered.iter().rev().cloned().collect();
    expected.push(ADMIN_EMAIL.to_owned());

    let mut client = users(&mesh);
    let first = list(&mut client, &admin, 2, "", "")
        .await
        .expect("the first page");
    let mut seen: Vec<String> = first.profiles.iter().map(|p| p.email.clone()).collect();
    assert_eq!(seen, expected[..2]);
    assert!(!first.next_page_token.is_empty());

    // Newer accounts sort before the first page: they neither shift nor repeat later pages.
    let late = member(&mesh, "late").await;
    let mut page_token = first.next_page_token;
    while !page_token.is_empty() {
        let page = list(&mut client, &admin, 2, &page_token, "")
            .await
            .expect("a later page");
        assert!(page.profiles.len() <= 2);
        seen.extend(page.profiles.into_iter().map(|p| p.email));
        page_token = page.next_page_token;
    }
    assert_eq!(seen, expected, "every profile once, newest first");

    // A fresh listing sees the late account first; the default page size holds all seven.
    let fresh = list(&mut client, &admin, 0, "", "")
        .await
        .expect("a fresh listing");
    assert_eq!(fresh.profiles.len(), 7);
    assert_eq!(fresh.profiles[0].email, late.email);
    assert!(fresh.next_page_token.is_empty(), "one page holds them all");
    assert_eq!(
        list_all(&mesh, &admin, 1000, "").await.len(),
        7,
        "size is capped, not refused"
    );
}

async fn the_email_prefix_filter_matches_lower_cased_literal_prefixes(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let admin = mesh.admin_token().await;
    let ada = member(&mesh, "ada").await;
    let adam = member(&mesh, "adam").await;
    let underscore = member(&mesh, "a_b").await;
    let abe = member(&mesh, "axb").await;
    member(&mesh, "bob").await;

    let as_set = |emails: Vec<String>| emails.into_iter().collect::<HashSet<_>>();
    assert_eq!(
        as_set(list_all(&mesh, &admin, 1, "ada").await),
        as_set(vec![ada.email.clone(), adam.email.clone()])
    );
    assert_eq!(
        list_all(&mesh, &admin, 1, "  ADA. ").await,
        [ada.email],
        "trimmed and compared lower-cased"
    );
    // `_` and `%` are literal characters of the prefix, not LIKE wildcards.
    assert_eq!(list_all(&mesh, &admin, 10, "a_").await, [underscore.email]);
    assert!(list_all(&mesh, &admin, 10, "a%").await.is_empty());
    assert_eq!(list_all(&mesh, &admin, 10, "axb.").await, [abe.email]);
    assert!(list_all(&mesh, &admin, 10, "nobody").await.is_empty());
    assert_eq!(
        list_all(&mesh, &admin, 10, "").await.len(),
        6,
        "five users and the admin"
    );
}

async fn a_page_token_only_works_with_the_filter_it_was_issued_for(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let admin = mesh.admin_token().await;
    for name in ["ada", "adam", "adele"] {
        member(&mesh, name).await;
    }
    let mut client = users(&mesh);
    let page = list(&mut client, &admin, 1, "", "ad")
        .await
        .expect("the first page");
    assert!(!page.next_page_token.is_empty());
    for other_filter in ["", "ada", "a"] {
        let status = list(&mut client, &admin, 1, &page.next_page_token, other_filter)
            .await
            .expect_err("another filter");
        assert_eq!(violated_fields(&status), ["page_token"], "{other_filter:?}");
    }
    // The same filter, spelled with other case and spaces, is the same filter.
    list(&mut client, &admin, 1, &page.next_page_token, " AD ")
        .await
        .expect("the same filter");
}

async fn list_users_reports_every_invalid_argument_at_once(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let admin = mesh.admin_token().await;
    let mut client = users(&mesh);
    let status = list(&mut client, &admin, -1, "bm90IGEgdG9rZW4", "")
        .await
        .expect_err("invalid");
    assert_eq!(violated_fields(&status), ["page_size", "page_token"]);
    let status = list(&mut client, &admin, 5, "", &"a".repeat(255))
        .await
        .expect_err("a prefix longer than any email");
    assert_eq!(violated_fields(&status), ["email_prefix"]);
    for garbage in ["%%%", "djF8MXwyfDM", &email("x")] {
        let status = list(&mut client, &admin, 5, garbage, "")
            .await
            .expect_err("malformed");
        assert_eq!(violated_fields(&status), ["page_token"], "{garbage}");
    }
}
