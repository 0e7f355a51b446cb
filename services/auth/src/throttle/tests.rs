use agora_platform::error::ApiError;

use super::*;

const LIMITS: Limits = Limits {
    per_device: 3,
    per_account: 5,
    per_address: 8,
    total: 12,
    window: Duration::from_secs(900),
};

fn throttle() -> LoginThrottle {
    LoginThrottle::new(Cache::memory("test:"), LIMITS)
}

fn email(name: &str) -> Email {
    Email::parse(&format!("{name}@example.com")).expect("a valid email")
}

fn unknown<'a>(email: &'a Email, address: &'a str) -> Attempt<'a> {
    Attempt::Unknown {
        email,
        address: Some(address),
    }
}

/// Fails `attempt` until it is refused; how many got through to the password check.
async fn fail_until_refused(throttle: &LoginThrottle, attempt: Attempt<'_>) -> u64 {
    let mut admitted = 0;
    while throttle.admit(attempt).await.is_ok() {
        admitted += 1;
        assert!(admitted <= 100, "never refused");
    }
    admitted
}

#[tokio::test]
async fn an_account_allows_its_unknown_device_failures_from_all_addresses_together() {
    let throttle = throttle();
    let victim = email("victim");
    for i in 0..LIMITS.per_account {
        let address = format!("198.51.100.{i}");
        let _failed = throttle
            .admit(unknown(&victim, &address))
            .await
            .expect("within the budget");
    }
    let refused = throttle
        .admit(unknown(&victim, "203.0.113.1"))
        .await
        .expect_err("the account's budget is spent");
    let ApiError::ResourceExhausted { retry_after, .. } = ApiError::from(refused) else {
        panic!("refused with a retry delay: {refused:?}");
    };
    assert!(retry_after > Duration::ZERO && retry_after <= LIMITS.window);
    // Another account is not affected.
    let _other = throttle
        .admit(unknown(&email("bystander"), "203.0.113.1"))
        .await
        .expect("another account");
}

#[tokio::test]
async fn a_known_device_is_not_locked_by_the_accounts_failures_only_by_its_own() {
    let throttle = throttle();
    let victim = email("victim");
    fail_until_refused(&throttle, unknown(&victim, "198.51.100.1")).await;
    let reservation = throttle
        .admit(Attempt::KnownDevice("owner-nonce"))
        .await
        .expect("the owner's device is its own budget");
    throttle.succeeded(reservation).await;

    let admitted = fail_until_refused(&throttle, Attempt::KnownDevice("stolen-nonce")).await;
    assert_eq!(admitted, LIMITS.per_device);
    let _owner = throttle
        .admit(Attempt::KnownDevice("owner-nonce"))
        .await
        .expect("one device's failures do not lock another");
}

#[tokio::test]
async fn a_success_takes_back_only_its_own_hit_and_clears_a_known_devices_count() {
    let throttle = throttle();
    let victim = email("victim");
    for _ in 0..LIMITS.per_account - 1 {
        let _failed = throttle.admit(unknown(&victim, "198.51.100.1")).await;
    }
    // The owner signs in from a new device: no failure, but the attacker's stay.
    let owner = throttle
        .admit(unknown(&victim, "192.0.2.1"))
        .await
        .expect("one left");
    throttle.succeeded(owner).await;
    assert_eq!(
        fail_until_refused(&throttle, unknown(&victim, "198.51.100.2")).await,
        1,
        "the success did not refresh the budget, nor spend it"
    );

    for _ in 0..LIMITS.per_device - 1 {
        let _typo = throttle.admit(Attempt::KnownDevice("owner")).await;
    }
    let signed_in = throttle
        .admit(Attempt::KnownDevice("owner"))
        .await
        .expect("one left");
    throttle.succeeded(signed_in).await;
    assert_eq!(
        fail_until_refused(&throttle, Attempt::KnownDevice("owner")).await,
        LIMITS.per_device,
        "the device's own count starts again"
    );
}

#[tokio::test]
async fn an_address_and_all_unknown_devices_together_have_budgets_across_accounts() {
    let throttle = throttle();
    for i in 0..LIMITS.per_address {
        let _failed = throttle
            .admit(unknown(&email(&format!("spray{i}")), "198.51.100.1"))
            .await
            .expect("within the address's budget");
    }
    throttle
        .admit(unknown(&email("next"), "198.51.100.1"))
        .await
        .expect_err("the address's budget is spent");

    let left = LIMITS.total - LIMITS.per_address;
    for i in 0..left {
        let _failed = throttle
            .admit(unknown(
                &email(&format!("far{i}")),
                &format!("203.0.113.{i}"),
            ))
            .await
            .expect("within the total");
    }
    throttle
        .admit(unknown(&email("fresh"), "192.0.2.200"))
        .await
        .expect_err("the total is spent");
    let _known = throttle
        .admit(Attempt::KnownDevice("owner"))
        .await
        .expect("known devices are outside the total");
}

#[tokio::test]
async fn refused_attempts_spend_no_wider_budget() {
    let throttle = throttle();
    let victim = email("victim");
    fail_until_refused(&throttle, unknown(&victim, "198.51.100.1")).await;
    for _ in 0..50 {
        let _refused = throttle.admit(unknown(&victim, "198.51.100.1")).await;
    }
    // The address spent only the account's 5 on this account, so 3 more are left for it.
    let spent = LIMITS.per_account;
    for i in 0..LIMITS.per_address - spent {
        let _failed = throttle
            .admit(unknown(&email(&format!("other{i}")), "198.51.100.1"))
            .await
            .expect("the address still has budget");
    }
}

#[tokio::test]
async fn concurrent_guesses_get_no_more_than_the_limit_through() {
    let throttle = throttle();
    let victim = email("victim");
    let guesses = (0..40).map(|i| {
        let (throttle, victim) = (throttle.clone(), victim.clone());
        tokio::spawn(async move {
            let address = format!("198.51.100.{i}");
            throttle.admit(unknown(&victim, &address)).await.is_ok()
        })
    });
    let mut admitted = 0;
    for guess in guesses.collect::<Vec<_>>() {
        admitted += u64::from(guess.await.expect("joined"));
    }
    assert_eq!(admitted, LIMITS.per_account);
}
