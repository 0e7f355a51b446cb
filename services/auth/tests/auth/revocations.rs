//! What auth announces so that every verifier refuses tokens before they expire, on SQLite +
//! memory and on PostgreSQL + Redis: a reused refresh token kills its session's access tokens,
//! and a verifier that starts after a revocation rebuilds it from auth's outbox.

use std::time::{Duration, Instant};

use crate::common::{TestAuth, email};
use agora_platform::{access::Claims, on_both_backends, testing::TestBackend};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use tonic::Code;

on_both_backends!(
    a_reused_refresh_token_kills_the_sessions_access_tokens,
    a_verifier_that_starts_after_a_logout_still_refuses_the_sessions_tokens,
);

/// Auth on a bus of its own (named by the returned prefix), so the replays a test asks for stay
/// within it.
async fn auth(backend: TestBackend) -> Option<(TestAuth, String)> {
    let prefix = format!("test:{}:events:", uuid::Uuid::now_v7().simple());
    let auth = TestAuth::spawn_with(backend, &[("events.prefix", prefix.clone().into())]).await?;
    Some((auth, prefix))
}

fn claims(token: &str) -> Claims {
    let payload = token.split('.').nth(1).expect("a JWT");
    let json = URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    serde_json::from_slice(&json).expect("Agora's claims")
}

async fn a_reused_refresh_token_kills_the_sessions_access_tokens(backend: TestBackend) {
    let Some((auth, _)) = auth(backend).await else {
        return;
    };
    let (_, first) = auth.register(&email("replayed")).await;
    let second = auth
        .refresh(&first.refresh_token)
        .await
        .expect("the first refresh");
    assert!(
        claims(&second.access_token).sid.is_some(),
        "tokens name their session"
    );
    auth.sessions(&second.access_token)
        .await
        .expect("the live token works");
    // Someone replays the spent token: the whole session is revoked, its access tokens too.
    let replay = auth
        .refresh(&first.refresh_token)
        .await
        .expect_err("a spent token");
    assert_eq!(replay.code(), Code::Unauthenticated);
    let started = Instant::now();
    loop {
        match auth.sessions(&second.access_token).await {
            Err(status) if status.code() == Code::Unauthenticated => break,
            _ => {
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "the stolen session's access token still works"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn a_verifier_that_starts_after_a_logout_still_refuses_the_sessions_tokens(
    backend: TestBackend,
) {
    let Some((auth, prefix)) = auth(backend).await else {
        return;
    };
    let (_, tokens) = auth.register(&email("gone")).await;
    let (_, other) = auth.register(&email("stays")).await;
    auth.client()
        .logout(agora_contracts::agora::auth::v1::LogoutRequest {
            refresh_token: tokens.refresh_token.clone(),
        })
        .await
        .expect("logged out");
    // Auth itself refuses it (it follows its own announcements), so the event is out.
    let started = Instant::now();
    while auth.sessions(&tokens.access_token).await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "auth still accepts it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A verifier started now, on the same bus, knows nothing yet: it asks auth to publish its
    // recent events again, and refuses the token once they arrive.
    let config = crate::common::config(&auth.store, &[("events.prefix", prefix.into())]);
    let (revocations, _following) = agora_platform::revocation::follow(&config.settings);
    let revoked = claims(&tokens.access_token);
    let started = Instant::now();
    while !revocations.refuses(&revoked) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a late verifier never learned of the logout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !revocations.refuses(&claims(&other.access_token)),
        "other sessions are untouched"
    );
}
