//! Device tokens and the login throttle through auth's real gRPC surface, on SQLite + memory and
//! on PostgreSQL + Redis: an attacker's failures cannot lock the owner's known device out, and
//! their guesses stay within the documented budget whatever addresses they come from.

use std::time::Duration;

use crate::common::{TestAuth, email, login_on, wait_until_serving};
use agora_platform::{on_both_backends, testing::TestBackend};
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(
    the_owners_known_device_signs_in_while_an_attacker_fails_from_50_addresses,
    a_known_device_is_locked_out_only_by_its_own_failures,
    a_token_for_another_account_or_a_tampered_one_is_an_unknown_device,
    a_success_neither_refreshes_nor_spends_the_accounts_budget,
    replicas_share_the_generated_device_secret,
    the_device_that_registered_is_a_known_device_from_the_start,
);

const PASSWORD: &str = "correct horse 7";
/// `auth.max_failed_logins_per_account` and `..._per_device` by default.
const BUDGET: usize = 5;

fn assert_refused_with_a_delay(status: &tonic::Status) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let delay = status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(15 * 60),
        "{delay:?}"
    );
}

async fn the_owners_known_device_signs_in_while_an_attacker_fails_from_50_addresses(
    backend: TestBackend,
) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let owner = email("owner");
    auth.register(&owner).await;
    let (_, device) = auth
        .login_from(&owner, PASSWORD, "192.0.2.10", None)
        .await
        .expect("the owner's first sign-in on this device");
    // The attacker holds a valid device token too, of an account of its own.
    let attacker = email("attacker");
    auth.register(&attacker).await;
    let (_, attackers_device) = auth
        .login_from(&attacker, PASSWORD, "198.51.100.200", None)
        .await
        .expect("the attacker's own account");

    // Three rounds of wrong passwords from 50 addresses, every other one with its token.
    let (mut checked, mut refused) = (0, 0);
    for round in 0..3 {
        for i in 0..50 {
            let address = format!("198.51.100.{}", i + 1);
            let token = (i % 2 == 0).then_some(attackers_device.as_str());
            let guess = format!("guess {round} {i} x");
            match auth.login_from(&owner, &guess, &address, token).await {
                Err(status) if status.code() == Code::Unauthenticated => checked += 1,
                Err(status) => {
                    assert_refused_with_a_delay(&status);
                    refused += 1;
                }
                Ok(_) => panic!("a wrong password signed in"),
            }
        }
    }
    assert_eq!(checked, BUDGET, "guesses that reached the password check");
    assert_eq!(refused, 150 - BUDGET);

    // The owner's known device signs in, and gets a fresh token that works as well.
    let (signed_in, fresh) = auth
        .login_from(&owner, PASSWORD, "192.0.2.10", Some(&device))
        .await
        .expect("the known device is not locked out");
    assert!(signed_in.tokens.is_some());
    assert_ne!(fresh, device);
    auth.login_from(&owner, PASSWORD, "192.0.2.11", Some(&fresh))
        .await
        .expect("the fresh token is a known device too");

    // A new device of the owner's is refused while the account is under attack: the trade-off.
    let new_device = auth
        .login_from(&owner, PASSWORD, "192.0.2.10", None)
        .await
        .expect_err("an unknown device waits for the window to end");
    assert_refused_with_a_delay(&new_device);
}

async fn a_known_device_is_locked_out_only_by_its_own_failures(backend: TestBackend) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let owner = email("owner");
    auth.register(&owner).await;
    let (_, phone) = auth
        .login_from(&owner, PASSWORD, "192.0.2.10", None)
        .await
        .expect("signs in");
    let (_, laptop) = auth
        .login_from(&owner, PASSWORD, "192.0.2.20", None)
        .await
        .expect("signs in");

    // Someone with the phone's token (or the owner, typing badly).
    for _ in 0..BUDGET {
        let status = auth
            .login_from(&owner, "wrong horse 7", "203.0.113.5", Some(&phone))
            .await
            .expect_err("wrong");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let locked = auth
        .login_from(&owner, PASSWORD, "192.0.2.10", Some(&phone))
        .await
        .expect_err("the phone's budget is spent");
    assert_refused_with_a_delay(&locked);

    auth.login_from(&owner, PASSWORD, "192.0.2.20", Some(&laptop))
        .await
        .expect("another known device is not affected");
    auth.login_from(&owner, PASSWORD, "192.0.2.30", None)
        .await
        .expect("nor is the account's budget for unknown devices");
}

async fn a_token_for_another_account_or_a_tampered_one_is_an_unknown_device(backend: TestBackend) {
    let tweak = [("auth.max_failed_logins_per_account", serde_json::json!(3))];
    let Some(auth) = TestAuth::spawn_with(backend, &tweak).await else {
        return;
    };
    let victim = email("victim");
    auth.register(&victim).await;
    let (_, victims_device) = auth
        .login_from(&victim, PASSWORD, "192.0.2.10", None)
        .await
        .expect("signs in");
    let attacker = email("attacker");
    auth.register(&attacker).await;
    let (_, attackers_device) = auth
        .login_from(&attacker, PASSWORD, "198.51.100.1", None)
        .await
        .expect("signs in");

    let mut codes = Vec::new();
    for _ in 0..4 {
        let status = auth
            .login_from(
                &victim,
                "wrong horse 7",
                "198.51.100.1",
                Some(&attackers_device),
            )
            .await
            .expect_err("wrong");
        codes.push(status.code());
    }
    assert_eq!(
        codes,
        [
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::ResourceExhausted
        ],
        "counted against the victim's account, not as a device of its own"
    );

    // One character of the signature changed.
    let (payload, mac) = victims_device.rsplit_once('.').expect("a signed token");
    let first = if mac.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{payload}.{first}{}", &mac[1..]);
    let refused = auth
        .login_from(&victim, PASSWORD, "192.0.2.10", Some(&tampered))
        .await
        .expect_err("a tampered token is no device");
    assert_refused_with_a_delay(&refused);
    auth.login_from(&victim, PASSWORD, "192.0.2.10", Some(&victims_device))
        .await
        .expect("the real one is");
}

async fn a_success_neither_refreshes_nor_spends_the_accounts_budget(backend: TestBackend) {
    let tweak = [("auth.max_failed_logins_per_account", serde_json::json!(3))];
    let Some(auth) = TestAuth::spawn_with(backend, &tweak).await else {
        return;
    };
    let owner = email("owner");
    auth.register(&owner).await;
    let wrong = |address: &'static str| auth.login_from(&owner, "wrong horse 7", address, None);
    for address in ["198.51.100.1", "198.51.100.2"] {
        let status = wrong(address).await.expect_err("wrong");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    auth.login_from(&owner, PASSWORD, "192.0.2.10", None)
        .await
        .expect("one failure left, and the owner takes it back");
    let status = wrong("198.51.100.3").await.expect_err("wrong");
    assert_eq!(status.code(), Code::Unauthenticated, "the last failure");
    assert_refused_with_a_delay(&wrong("198.51.100.4").await.expect_err("spent"));
}

async fn replicas_share_the_generated_device_secret(backend: TestBackend) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let owner = email("owner");
    auth.register(&owner).await;
    let (_, device) = auth
        .login_from(&owner, PASSWORD, "192.0.2.10", None)
        .await
        .expect("signs in on the first replica");

    // The second replica locks the account for unknown devices after one failure.
    let tweak = [("auth.max_failed_logins_per_account", serde_json::json!(1))];
    let replica = auth.replica(&tweak).await;
    wait_until_serving(&replica.channel).await;
    let status = login_on(
        &replica.channel,
        &owner,
        "wrong horse 7",
        "198.51.100.1",
        None,
    )
    .await
    .expect_err("wrong");
    assert_eq!(status.code(), Code::Unauthenticated);
    let refused = login_on(&replica.channel, &owner, PASSWORD, "192.0.2.10", None)
        .await
        .expect_err("locked for unknown devices");
    assert_refused_with_a_delay(&refused);
    login_on(
        &replica.channel,
        &owner,
        PASSWORD,
        "192.0.2.10",
        Some(&device),
    )
    .await
    .expect("the first replica's token is a known device here too");

    // A configured secret too short to be a key stops start-up, naming the setting.
    let short = [("auth.device_secret", serde_json::json!("short"))];
    let failed = auth.replica(&short).await;
    let error = tokio::time::timeout(Duration::from_secs(30), failed.task)
        .await
        .expect("start-up gives up")
        .expect("joined")
        .expect_err("a short secret is refused");
    assert!(
        format!("{error:#}").contains("auth.device_secret"),
        "{error:#}"
    );
}

async fn the_device_that_registered_is_a_known_device_from_the_start(backend: TestBackend) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let owner = email("newcomer");
    let registered = auth
        .client()
        .register(agora_contracts::agora::auth::v1::RegisterRequest {
            email: owner.clone(),
            password: PASSWORD.into(),
        })
        .await
        .expect("registered");
    let device = registered
        .metadata()
        .get("agora-device")
        .and_then(|value| value.to_str().ok())
        .expect("Register answers with a device token")
        .to_owned();
    // Someone spends the account's budget for unknown devices at once.
    for i in 0..BUDGET + 2 {
        let address = format!("198.51.100.{}", i + 1);
        let refused = auth
            .login_from(&owner, "wrong guess 1", &address, None)
            .await
            .expect_err("a wrong password");
        assert!(matches!(
            refused.code(),
            Code::Unauthenticated | Code::ResourceExhausted
        ));
    }
    let unknown = auth
        .login_from(&owner, PASSWORD, "192.0.2.7", None)
        .await
        .expect_err("unknown devices wait out the window");
    assert_refused_with_a_delay(&unknown);
    auth.login_from(&owner, PASSWORD, "192.0.2.7", Some(&device))
        .await
        .expect("the registering device signs in");
}
