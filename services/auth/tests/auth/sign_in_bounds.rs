//! What one client may spend on the sign-in methods, through auth's real gRPC surface with no
//! edge in front, on SQLite and on PostgreSQL + Redis: registrations per client address whatever
//! token the caller sends, and a password bounded on every method before anything is hashed.

use std::time::Duration;

use crate::common::{TestAuth, authed, email};
use agora_contracts::agora::auth::v1 as pb;
use agora_platform::{on_both_backends, testing::TestBackend};
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(
    registrations_from_one_address_stop_at_the_default_budget_whatever_token_is_sent,
    the_registration_budget_renews_when_its_window_ends,
    a_password_longer_than_the_policy_is_refused_on_login_before_any_lookup,
);

/// The default of `auth.max_registrations_per_address` (per hour).
const DEFAULT_BUDGET: usize = 20;

/// Just under tonic's default 4 MiB limit on a decoded message, so the call reaches the handler.
const HUGE: usize = 4 * 1024 * 1024 - 1024;

fn registration(email: &str) -> pb::RegisterRequest {
    pb::RegisterRequest {
        email: email.into(),
        password: "correct horse 7".into(),
    }
}

async fn registrations_from_one_address_stop_at_the_default_budget_whatever_token_is_sent(
    backend: TestBackend,
) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    // The first anonymously, then each with the token of the account made just before.
    let mut token: Option<String> = None;
    for n in 0..DEFAULT_BUDGET {
        let request = registration(&email(&format!("mint{n}")));
        let request = match &token {
            Some(token) => authed(request, token),
            None => tonic::Request::new(request),
        };
        let registered = auth
            .client()
            .register(request)
            .await
            .unwrap_or_else(|status| panic!("registration {n} is within the budget: {status:?}"))
            .into_inner();
        token = registered.tokens.map(|t| t.access_token);
    }
    let token = token.expect("tokens");

    let refused_email = email("one-too-many");
    let refused = auth
        .client()
        .register(authed(registration(&refused_email), &token))
        .await
        .expect_err("past the budget of the address");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let delay = refused
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("a retry delay");
    assert!(
        delay >= Duration::from_secs(1) && delay <= Duration::from_secs(3600),
        "{delay:?}"
    );
    assert_eq!(
        refused.get_details_error_info().map(|info| info.reason),
        Some("REGISTRATIONS_THROTTLED".to_owned())
    );
    let absent = auth
        .login(&refused_email, "correct horse 7")
        .await
        .expect_err("the refused account was not made");
    assert_eq!(absent.code(), Code::Unauthenticated);

    // Behind the edge (a trusted proxy), another client has a budget of its own.
    let mut behind_the_edge = tonic::Request::new(registration(&email("neighbour")));
    behind_the_edge
        .metadata_mut()
        .insert("x-forwarded-for", "198.51.100.20".parse().expect("ASCII"));
    auth.client()
        .register(behind_the_edge)
        .await
        .expect("another address registers");
}

async fn the_registration_budget_renews_when_its_window_ends(backend: TestBackend) {
    let tweak = [
        ("auth.max_registrations_per_address", serde_json::json!(2)),
        ("auth.registration_window", serde_json::json!("2s")),
    ];
    let Some(auth) = TestAuth::spawn_with(backend, &tweak).await else {
        return;
    };
    auth.register(&email("first")).await;
    auth.register(&email("second")).await;
    let refused = auth
        .client()
        .register(registration(&email("third")))
        .await
        .expect_err("past the budget");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    let delay = refused
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("a retry delay");
    assert!(delay <= Duration::from_secs(2), "{delay:?}");
    tokio::time::sleep(delay + Duration::from_millis(200)).await;
    auth.register(&email("third")).await;
}

async fn a_password_longer_than_the_policy_is_refused_on_login_before_any_lookup(
    backend: TestBackend,
) {
    // Two failures would lock the account: refusals that counted would show.
    let tweak = [("auth.max_failed_logins_per_account", serde_json::json!(2))];
    let Some(auth) = TestAuth::spawn_with(backend, &tweak).await else {
        return;
    };
    let known = email("known");
    auth.register(&known).await;
    let huge = "x1".repeat(HUGE / 2);
    let longest_allowed = "x1".repeat(64);
    let just_over = format!("{longest_allowed}x");

    let mut answers = Vec::new();
    for (who, password) in [
        (known.as_str(), huge.as_str()),
        ("nobody@example.com", huge.as_str()),
        (known.as_str(), just_over.as_str()),
    ] {
        let status = auth
            .login(who, password)
            .await
            .expect_err("too long to be anyone's password");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let violations = status
            .get_details_bad_request()
            .expect("field violations")
            .field_violations;
        let violations: Vec<_> = violations
            .into_iter()
            .map(|v| (v.field, v.description))
            .collect();
        answers.push((status.message().to_owned(), violations));
    }
    assert_eq!(
        answers[0].1,
        [(
            "password".to_owned(),
            "must be at most 128 characters".to_owned()
        )]
    );
    assert!(
        answers.iter().all(|answer| *answer == answers[0]),
        "the same answer whether the account exists or not: {answers:?}"
    );

    // None of those counted as a failed attempt: the account still signs in.
    auth.login(&known, "correct horse 7")
        .await
        .expect("the refusals were not failed attempts");
    // A password of the longest length allowed is checked (and here wrong), as before.
    let wrong = auth
        .login(&known, &longest_allowed)
        .await
        .expect_err("wrong password");
    assert_eq!(wrong.code(), Code::Unauthenticated);

    // Register has the same bound.
    let refused = auth
        .client()
        .register(pb::RegisterRequest {
            email: email("huge"),
            password: huge,
        })
        .await
        .expect_err("too long");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<_> = refused
        .get_details_bad_request()
        .expect("field violations")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["password"]);
}
