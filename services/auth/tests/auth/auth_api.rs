//! The auth service through its real gRPC surface, on SQLite and on PostgreSQL + Redis.

use agora_platform::on_both_backends;

use std::time::Duration;

use crate::common::{ADMIN_EMAIL, ORDER_SECRET, TestAuth, authed, email};
use agora_contracts::agora::auth::v1 as pb;
use agora_platform::testing::TestBackend;
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(
    registering_signs_the_account_in_with_tokens_the_services_accept,
    registration_lists_every_invalid_field_at_once,
    registering_a_taken_email_in_another_case_is_already_exists,
    a_wrong_password_and_an_unknown_email_get_the_same_answer,
    repeated_failed_logins_are_throttled_with_a_retry_delay,
    refresh_rotates_the_token_and_reuse_revokes_the_session,
    logout_ends_the_session_and_is_harmless_twice,
    users_list_and_revoke_only_their_own_sessions,
    services_get_tokens_with_their_secret_only,
    only_admins_set_roles_and_new_roles_reach_the_next_token,
    a_rotated_key_signs_new_tokens_while_old_ones_stay_valid,
    calls_in_flight_finish_while_the_server_drains,
    failed_logins_from_one_address_are_throttled_across_accounts,
    a_retired_key_leaves_the_jwks_once_its_tokens_have_expired,
);

async fn registering_signs_the_account_in_with_tokens_the_services_accept(backend: TestBackend) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let (user_id, tokens) = auth.register(&email("ada")).await;
    assert!(uuid::Uuid::parse_str(&user_id).is_ok());
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 15 * 60);
    assert!(!tokens.refresh_token.is_empty());

    let sessions = auth
        .sessions(&tokens.access_token)
        .await
        .expect("the access token is accepted");
    assert_eq!(sessions.len(), 1);

    let anonymous = auth
        .client()
        .list_sessions(pb::ListSessionsRequest {})
        .await
        .expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

async fn registration_lists_every_invalid_field_at_once(backend: TestBackend) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let status = auth
        .client()
        .register(pb::RegisterRequest {
            email: "not-an-email".into(),
            password: "short".into(),
        })
        .await
        .expect_err("both fields are invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let violations = &details.bad_request().expect("BadRequest").field_violations;
    let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["email", "password"]);
    assert!(violations[1].description.contains("at least 8"));

    for (password, rule) in [
        ("onlyletters", "mix letters"),
        ("12345678901", "mix letters"),
        (&"ab1".repeat(50)[..], "at most 128"),
    ] {
        let status = auth
            .client()
            .register(pb::RegisterRequest {
                email: email("weak"),
                password: password.into(),
            })
            .await
            .expect_err("weak password");
        let details = status.get_error_details();
        let violation = &details.bad_request().expect("BadRequest").field_violations[0];
        assert_eq!(violation.field, "password");
        assert!(
            violation.description.contains(rule),
            "{}",
            violation.description
        );
    }
}

async fn registering_a_taken_email_in_another_case_is_already_exists(backend: TestBackend) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let address = email("grace");
    auth.register(&address).await;
    let status = auth
        .client()
        .register(pb::RegisterRequest {
            email: format!("  {}  ", address.to_uppercase()),
            password: "another horse 8".into(),
        })
        .await
        .expect_err("taken");
    assert_eq!(status.code(), Code::AlreadyExists);
    let details = status.get_error_details();
    assert_eq!(
        details.error_info().expect("ErrorInfo").reason,
        "EMAIL_TAKEN"
    );

    let login = auth.login(&address.to_uppercase(), "correct horse 7").await;
    assert!(login.is_ok(), "login normalises the email too");
}

async fn a_wrong_password_and_an_unknown_email_get_the_same_answer(backend: TestBackend) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let address = email("alan");
    auth.register(&address).await;
    let wrong = auth
        .login(&address, "wrong horse 7")
        .await
        .expect_err("wrong");
    let unknown = auth
        .login(&email("nobody"), "correct horse 7")
        .await
        .expect_err("unknown");
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!(unknown.code(), Code::Unauthenticated);
    assert_eq!(wrong.message(), unknown.message());

    let empty = auth.login("", "").await.expect_err("empty");
    assert_eq!(empty.code(), Code::InvalidArgument);
}

async fn repeated_failed_logins_are_throttled_with_a_retry_delay(backend: TestBackend) {
    let tweak = [("auth.max_failed_logins_per_account", serde_json::json!(3))];
    let Some(auth) = TestAuth::spawn_with(backend, &tweak).await else {
        return;
    };
    let address = email("mallory-target");
    auth.register(&address).await;
    for _ in 0..3 {
        let status = auth
            .login(&address, "guess horse 1")
            .await
            .expect_err("wrong");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let throttled = auth
        .login(&address, "correct horse 7")
        .await
        .expect_err("an unknown device is throttled even with the right password");
    assert_eq!(throttled.code(), Code::ResourceExhausted);
    let details = throttled.get_error_details();
    let delay = details
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(15 * 60),
        "{delay:?}"
    );

    // Another account from the same address is not locked by this one's failures.
    let other = email("bystander");
    auth.register(&other).await;
    assert!(auth.login(&other, "correct horse 7").await.is_ok());
}

async fn refresh_rotates_the_token_and_reuse_revokes_the_session(backend: TestBackend) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let (_, first) = auth.register(&email("rot")).await;
    let second = auth
        .refresh(&first.refresh_token)
        .await
        .expect("live token");
    assert_ne!(second.refresh_token, first.refresh_token);
    let third = auth
        .refresh(&second.refresh_token)
        .await
        .expect("successor is live");

    let reused = auth.refresh(&first.refresh_token).await.expect_err("spent");
    assert_eq!(reused.code(), Code::Unauthenticated);
    // The reuse revoked the whole family: even the newest token is dead now.
    let after = auth
        .refresh(&third.refresh_token)
        .await
        .expect_err("family revoked");
    assert_eq!(after.code(), Code::Unauthenticated);

    let unknown = auth.refresh("made-up").await.expect_err("unknown");
    assert_eq!(unknown.code(), Code::Unauthenticated);
    let empty = auth.refresh("").await.expect_err("empty");
    assert_eq!(empty.code(), Code::InvalidArgument);
}

async fn logout_ends_the_session_and_is_harmless_twice(backend: TestBackend) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let address = email("bye");
    let (_, tokens) = auth.register(&address).await;
    // A second device's session, to look at the first from: the first's access tokens are
    // refused as soon as its revocation reaches the verifiers.
    let other = auth
        .login(&address, "correct horse 7")
        .await
        .expect("second device")
        .tokens
        .expect("tokens");
    let before = auth.sessions(&other.access_token).await.expect("sessions");
    assert_eq!(before.len(), 2, "both devices are signed in");
    for _ in 0..2 {
        auth.client()
            .logout(pb::LogoutRequest {
                refresh_token: tokens.refresh_token.clone(),
            })
            .await
            .expect("logout succeeds, twice too");
    }
    let refreshed = auth
        .refresh(&tokens.refresh_token)
        .await
        .expect_err("the session is over");
    assert_eq!(refreshed.code(), Code::Unauthenticated);
    let after = auth
        .sessions(&other.access_token)
        .await
        .expect("the other device's session goes on");
    assert_eq!(after.len(), 1, "only the other device's session is left");
    auth.refresh(&other.refresh_token)
        .await
        .expect("the other device still refreshes");
}

async fn users_list_and_revoke_only_their_own_sessions(backend: TestBackend) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let address = email("multi");
    let (_, first) = auth.register(&address).await;
    let second = auth
        .login(&address, "correct horse 7")
        .await
        .expect("second device")
        .tokens
        .expect("tokens");
    let sessions = auth.sessions(&second.access_token).await.expect("listed");
    assert_eq!(sessions.len(), 2);
    let newest = sessions[0].session_id.clone();
    let oldest = sessions[1].session_id.clone();

    let (_, stranger) = auth.register(&email("stranger")).await;
    let foreign = auth
        .client()
        .revoke_session(authed(
            pb::RevokeSessionRequest {
                session_id: oldest.clone(),
            },
            &stranger.access_token,
        ))
        .await
        .expect_err("not theirs");
    assert_eq!(foreign.code(), Code::NotFound);

    let malformed = auth
        .client()
        .revoke_session(authed(
            pb::RevokeSessionRequest {
                session_id: "nope".into(),
            },
            &second.access_token,
        ))
        .await
        .expect_err("malformed");
    assert_eq!(malformed.code(), Code::InvalidArgument);

    auth.client()
        .revoke_session(authed(
            pb::RevokeSessionRequest { session_id: oldest },
            &second.access_token,
        ))
        .await
        .expect("own session");
    let dead = auth
        .refresh(&first.refresh_token)
        .await
        .expect_err("revoked session");
    assert_eq!(dead.code(), Code::Unauthenticated);
    let left = auth.sessions(&second.access_token).await.expect("listed");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].session_id, newest);
}

async fn services_get_tokens_with_their_secret_only(backend: TestBackend) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let issued = auth
        .client()
        .issue_service_token(pb::IssueServiceTokenRequest {
            client_id: "order".into(),
            client_secret: ORDER_SECRET.into(),
        })
        .await
        .expect("right secret")
        .into_inner();
    assert!(issued.expire_time.is_some());
    // A service token is not a user: user methods refuse it with PERMISSION_DENIED (it was
    // authenticated, so not UNAUTHENTICATED).
    let denied = auth
        .sessions(&issued.access_token)
        .await
        .expect_err("services are not users");
    assert_eq!(denied.code(), Code::PermissionDenied);

    for (client_id, secret) in [("order", "wrong"), ("nobody", ORDER_SECRET)] {
        let refused = auth
            .client()
            .issue_service_token(pb::IssueServiceTokenRequest {
                client_id: client_id.into(),
                client_secret: secret.into(),
            })
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), Code::Unauthenticated);
    }
    let empty = auth
        .client()
        .issue_service_token(pb::IssueServiceTokenRequest::default())
        .await
        .expect_err("empty");
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert_eq!(
        empty
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.len()),
        Some(2)
    );
}

async fn only_admins_set_roles_and_new_roles_reach_the_next_token(backend: TestBackend) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let address = email("promoted");
    let (user_id, tokens) = auth.register(&address).await;
    let request = |token: &str| {
        authed(
            pb::SetUserRolesRequest {
                user_id: user_id.clone(),
                roles: vec![pb::Role::Admin as i32],
            },
            token,
        )
    };
    let denied = auth
        .client()
        .set_user_roles(request(&tokens.access_token))
        .await
        .expect_err("users cannot promote themselves");
    assert_eq!(denied.code(), Code::PermissionDenied);

    let admin = auth.admin_token().await;
    let roles = auth
        .client()
        .set_user_roles(request(&admin))
        .await
        .expect("the admin can")
        .into_inner()
        .roles;
    assert_eq!(roles, [pb::Role::Admin as i32]);

    let unknown = auth
        .client()
        .set_user_roles(authed(
            pb::SetUserRolesRequest {
                user_id: uuid::Uuid::now_v7().to_string(),
                roles: vec![],
            },
            &admin,
        ))
        .await
        .expect_err("no such user");
    assert_eq!(unknown.code(), Code::NotFound);
    let unspecified = auth
        .client()
        .set_user_roles(authed(
            pb::SetUserRolesRequest {
                user_id: user_id.clone(),
                roles: vec![0],
            },
            &admin,
        ))
        .await
        .expect_err("unspecified role");
    assert_eq!(unspecified.code(), Code::InvalidArgument);

    let promoted = auth
        .login(&address, "correct horse 7")
        .await
        .expect("login")
        .tokens
        .expect("tokens")
        .access_token;
    auth.client()
        .set_user_roles(authed(
            pb::SetUserRolesRequest {
                user_id,
                roles: vec![],
            },
            &promoted,
        ))
        .await
        .expect("the new token carries the admin role");
    assert_ne!(ADMIN_EMAIL, address);
}

async fn a_rotated_key_signs_new_tokens_while_old_ones_stay_valid(backend: TestBackend) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let (_, before) = auth.register(&email("rotation")).await;
    let old_keys = auth.jwks().await;
    assert_eq!(old_keys.len(), 1);
    let old_kid = old_keys[0].kid.clone();
    assert_eq!(
        (old_keys[0].kty.as_str(), old_keys[0].crv.as_str()),
        ("OKP", "Ed25519")
    );

    let forbidden = auth
        .rotate(&before.access_token)
        .await
        .expect_err("users cannot rotate");
    assert_eq!(forbidden.code(), Code::PermissionDenied);

    let admin = auth.admin_token().await;
    let new_kid = auth.rotate(&admin).await.expect("rotated");
    assert_ne!(new_kid, old_kid);

    let keys = auth.jwks().await;
    let kids: Vec<_> = keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(
        kids,
        [new_kid.as_str(), old_kid.as_str()],
        "current key first, old kept"
    );

    auth.sessions(&before.access_token)
        .await
        .expect("a token signed before the rotation still works");
    let (_, after) = auth.register(&email("rotation-after")).await;
    let header = jsonwebtoken::decode_header(&after.access_token).expect("a JWT");
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
    auth.sessions(&after.access_token)
        .await
        .expect("a token signed by the new key works");
}

async fn calls_in_flight_finish_while_the_server_drains(backend: TestBackend) {
    let tweak = [("server.drain_delay", serde_json::json!("300ms"))];
    let Some(mut auth) = TestAuth::spawn_with(backend, &tweak).await else {
        return;
    };
    let address = email("drain");
    // Registration hashes a password: a call that takes a while.
    let mut client = auth.client();
    let in_flight = tokio::spawn({
        let address = address.clone();
        async move {
            client
                .register(pb::RegisterRequest {
                    email: address,
                    password: "correct horse 7".into(),
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(auth.channel.clone());
    let stopping = tokio::spawn(async move { auth.stop().await });
    // Health turns NOT_SERVING as soon as draining starts, while the server still answers.
    let mut saw_not_serving = false;
    for _ in 0..50 {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await;
        if status.map(|r| r.into_inner().status).ok()
            == Some(tonic_health::ServingStatus::NotServing as i32)
        {
            saw_not_serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw_not_serving, "health said NOT_SERVING while draining");
    let registered = in_flight.await.expect("joined");
    assert!(
        registered.is_ok(),
        "the in-flight call completed: {registered:?}"
    );
    stopping.await.expect("joined").expect("clean stop");
}

async fn failed_logins_from_one_address_are_throttled_across_accounts(backend: TestBackend) {
    let tweak = [
        ("auth.max_failed_logins_per_address", serde_json::json!(3)),
        ("auth.max_failed_logins_per_account", serde_json::json!(100)),
    ];
    let Some(auth) = TestAuth::spawn_with(backend, &tweak).await else {
        return;
    };
    let target = email("sprayed");
    auth.register(&target).await;
    // Password spraying: one wrong guess each on several accounts, from one address.
    for i in 0..3 {
        let status = auth
            .login(&email(&format!("guess{i}")), "spray horse 1")
            .await
            .expect_err("no such account");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let throttled = auth
        .login(&target, "correct horse 7")
        .await
        .expect_err("this address is throttled");
    assert_eq!(throttled.code(), Code::ResourceExhausted);
}

async fn a_retired_key_leaves_the_jwks_once_its_tokens_have_expired(backend: TestBackend) {
    let tweak = [
        ("auth.access_ttl", serde_json::json!("1s")),
        ("auth.service_token_ttl", serde_json::json!("1s")),
        ("tokens.leeway", serde_json::json!("0s")),
    ];
    let Some(auth) = TestAuth::spawn_with(backend, &tweak).await else {
        return;
    };
    let jwks = || async {
        auth.jwks()
            .await
            .into_iter()
            .map(|k| k.kid)
            .collect::<Vec<_>>()
    };
    let old = jwks().await;
    let admin = auth.admin_token().await;
    let new_kid = auth.rotate(&admin).await.expect("rotated");
    assert_eq!(jwks().await, [new_kid.clone(), old[0].clone()]);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        jwks().await,
        [new_kid],
        "every token of the old key has expired"
    );
}
