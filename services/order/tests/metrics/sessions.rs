//! Logins and refreshes by outcome, and the product cache's hits and misses.

use std::time::Duration;

use crate::{common::Shop, reading::Scrape, reading::one_at_a_time};
use agora_contracts::agora::{
    auth::v1::{self as auth, auth_service_client::AuthServiceClient},
    product::v1::{self as prod, product_service_client::ProductServiceClient},
};
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, USER_PASSWORD, email, on_both_backends};
use tonic::Code;

const LOGINS: &str = "agora_auth_logins_total";
const REFRESHES: &str = "agora_auth_refreshes_total";

fn outcome(value: &str) -> [(&'static str, &str); 1] {
    [("agora_auth_outcome", value)]
}

async fn failed_throttled_and_good_logins_and_a_reused_refresh_are_counted(backend: TestBackend) {
    let _one = one_at_a_time().await;
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let mut auth = AuthServiceClient::new(shop.mesh.channel(ServiceKind::Auth));
    let (victim, ada) = (email("victim"), email("ada"));
    for address in [&victim, &ada] {
        auth.register(auth::RegisterRequest {
            email: address.clone(),
            password: USER_PASSWORD.into(),
        })
        .await
        .expect("registered");
    }
    let before = Scrape::now();
    // An account allows five failures from unknown devices; the sixth attempt is throttled.
    for _ in 0..5 {
        let wrong = shop.mesh.login(&victim, "wrong password 1").await;
        assert_eq!(wrong.expect_err("wrong").code(), Code::Unauthenticated);
    }
    let throttled = shop.mesh.login(&victim, "wrong password 1").await;
    assert_eq!(
        throttled.expect_err("throttled").code(),
        Code::ResourceExhausted
    );
    let tokens = auth
        .login(auth::LoginRequest {
            email: ada.clone(),
            password: USER_PASSWORD.into(),
        })
        .await
        .expect("signed in")
        .into_inner()
        .tokens
        .expect("tokens");
    // A malformed request is refused before it is a login at all.
    let malformed = shop.mesh.login("not an email", "").await;
    assert_eq!(
        malformed.expect_err("malformed").code(),
        Code::InvalidArgument
    );
    let refresh = |token: String| {
        let mut auth = auth.clone();
        async move {
            auth.refresh(auth::RefreshRequest {
                refresh_token: token,
            })
            .await
        }
    };
    let rotated = refresh(tokens.refresh_token.clone())
        .await
        .expect("rotated")
        .into_inner()
        .tokens
        .expect("tokens");
    let reused = refresh(tokens.refresh_token).await.expect_err("reused");
    assert_eq!(reused.code(), Code::Unauthenticated);
    // Reuse revoked the session: its newest token fails too.
    refresh(rotated.refresh_token).await.expect_err("revoked");
    let after = Scrape::now();
    assert_eq!(after.added(&before, LOGINS, &outcome("failed")), 5.0);
    assert_eq!(after.added(&before, LOGINS, &outcome("throttled")), 1.0);
    assert_eq!(after.added(&before, LOGINS, &outcome("succeeded")), 1.0);
    assert_eq!(after.added(&before, REFRESHES, &outcome("succeeded")), 1.0);
    assert_eq!(
        after.added(&before, REFRESHES, &outcome("reuse_detected")),
        1.0
    );
    assert_eq!(after.added(&before, REFRESHES, &outcome("failed")), 1.0);
}

async fn a_product_read_twice_is_one_cache_miss_then_one_hit(backend: TestBackend) {
    let _one = one_at_a_time().await;
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let item = shop.product("Lamp", 2000, 0).await;
    // A write deletes its cache entry twice, the second time 250 ms after it: let that pass.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut products = ProductServiceClient::new(shop.mesh.channel(ServiceKind::Product));
    let get = prod::GetProductRequest {
        product_id: item.clone(),
    };
    const CACHE: &str = "agora_product_cache_requests_total";
    let before = Scrape::now();
    products.get_product(get.clone()).await.expect("found");
    let missed = Scrape::now();
    assert_eq!(
        missed.added(&before, CACHE, &[("agora_cache_result", "miss")]),
        1.0
    );
    assert_eq!(
        missed.added(&before, CACHE, &[("agora_cache_result", "hit")]),
        0.0
    );
    products.get_product(get).await.expect("found");
    let after = Scrape::now();
    assert_eq!(
        after.added(&before, CACHE, &[("agora_cache_result", "miss")]),
        1.0
    );
    assert_eq!(
        after.added(&before, CACHE, &[("agora_cache_result", "hit")]),
        1.0
    );
}

on_both_backends!(
    failed_throttled_and_good_logins_and_a_reused_refresh_are_counted,
    a_product_read_twice_is_one_cache_miss_then_one_hit,
);
