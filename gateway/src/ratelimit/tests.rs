use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use super::*;

const QUOTA: Quota = Quota {
    limit: 3,
    window: Duration::from_secs(60),
};

#[test]
fn the_last_request_of_the_budget_passes_and_the_next_is_refused() {
    let last = Verdict::new(QUOTA, 3, Duration::from_secs(10));
    assert!(last.allowed);
    assert_eq!(last.remaining, 0);
    let over = Verdict::new(QUOTA, 4, Duration::from_secs(10));
    assert!(!over.allowed);
    assert_eq!(over.remaining, 0);
}

#[test]
fn the_reset_rounds_up_to_whole_seconds_and_is_never_zero() {
    let v = |millis| Verdict::new(QUOTA, 1, Duration::from_millis(millis)).reset_secs();
    assert_eq!(v(1), 1);
    assert_eq!(v(0), 1);
    assert_eq!(v(1000), 1);
    assert_eq!(v(1001), 2);
    assert_eq!(v(59_999), 60);
    assert_eq!(v(3_600_000), 60, "never past the window");
}

#[test]
fn refused_requests_say_when_to_retry_and_allowed_ones_do_not() {
    let mut headers = HeaderMap::new();
    Verdict::new(QUOTA, 2, Duration::from_millis(4500)).write_headers(&mut headers);
    assert_eq!(headers["ratelimit-limit"], "3");
    assert_eq!(headers["ratelimit-remaining"], "1");
    assert_eq!(headers["ratelimit-reset"], "5");
    assert!(!headers.contains_key("retry-after"));
    Verdict::new(QUOTA, 9, Duration::from_millis(4500)).write_headers(&mut headers);
    assert_eq!(headers["retry-after"], "5");
    assert_eq!(headers["ratelimit-remaining"], "0");
}

#[test]
fn login_and_register_draw_on_the_sign_in_budget() {
    let limiter = RateLimiter::new(Cache::memory("t:"), RateLimitSettings::default());
    assert_eq!(
        limiter.budget_of("agora.auth.v1.AuthService.Login"),
        Budget::SignIn
    );
    assert_eq!(
        limiter.budget_of("agora.auth.v1.AuthService.Register"),
        Budget::SignIn
    );
    assert_eq!(
        limiter.budget_of("agora.product.v1.ProductService.GetProduct"),
        Budget::General
    );
}

#[test]
fn signed_in_clients_are_counted_by_user_except_for_sign_in_which_counts_by_address() {
    let limiter = RateLimiter::new(Cache::memory("t:"), RateLimitSettings::default());
    let mut request = Request::new(axum::body::Body::empty());
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([10, 1, 2, 3], 4567))));
    request
        .headers_mut()
        .insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
    assert_eq!(
        limiter.client_of(&request, Budget::General),
        "addr:10.1.2.3",
        "the header is not trusted by default"
    );
    request.extensions_mut().insert(Principal {
        subject: "u-1".into(),
        roles: vec![],
    });
    assert_eq!(limiter.client_of(&request, Budget::General), "user:u-1");
    assert_eq!(
        limiter.client_of(&request, Budget::SignIn),
        "addr:10.1.2.3",
        "a token opens no sign-in budget of its own"
    );
    request
        .extensions_mut()
        .insert(ClientAddress([198, 51, 100, 7].into()));
    assert_eq!(
        limiter.client_of(&request, Budget::SignIn),
        "addr:198.51.100.7",
        "the address the edge decided"
    );
    request.extensions_mut().remove::<ClientAddress>();

    let trusting = RateLimiter::new(
        Cache::memory("t:"),
        RateLimitSettings {
            trust_forwarded_for: true,
            ..RateLimitSettings::default()
        },
    );
    assert_eq!(
        trusting.client_of(&request, Budget::SignIn),
        "addr:203.0.113.9"
    );
    request.extensions_mut().remove::<Principal>();
    assert_eq!(
        trusting.client_of(&request, Budget::General),
        "addr:203.0.113.9"
    );
}

/// Spends a budget of three, checks the count and the refusal, then checks that the window
/// starts again once it has passed.
async fn a_budget_is_spent_refused_and_renewed(cache: Cache) {
    let settings = RateLimitSettings {
        sign_in_requests: 3,
        sign_in_window: Duration::from_millis(400),
        ..RateLimitSettings::default()
    };
    let limiter = RateLimiter::new(cache, settings);
    for remaining in [2, 1, 0] {
        let verdict = limiter
            .check("addr:a", Budget::SignIn)
            .await
            .expect("counted");
        assert!(verdict.allowed);
        assert_eq!(verdict.remaining, remaining);
        assert!(verdict.reset_after <= Duration::from_millis(400));
    }
    let refused = limiter
        .check("addr:a", Budget::SignIn)
        .await
        .expect("counted");
    assert!(!refused.allowed);
    let other = limiter
        .check("addr:b", Budget::SignIn)
        .await
        .expect("counted");
    assert!(other.allowed, "another client has its own budget");
    let general = limiter
        .check("addr:a", Budget::General)
        .await
        .expect("counted");
    assert!(general.allowed, "the general budget is separate");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let renewed = limiter
        .check("addr:a", Budget::SignIn)
        .await
        .expect("counted");
    assert!(renewed.allowed, "a new window");
    assert_eq!(renewed.remaining, 2);
}

#[tokio::test]
async fn in_memory_a_budget_is_spent_refused_and_renewed() {
    a_budget_is_spent_refused_and_renewed(Cache::memory("t:")).await;
}

/// A connection to the test Redis under `prefix`; `None` (skipped, loudly) when it is down,
/// except under `CI=true`, where that fails the test.
async fn redis(prefix: &str) -> Option<Cache> {
    let url = agora_platform::testing::redis_url();
    match Cache::redis(&url, prefix).await {
        Ok(cache) => Some(cache),
        Err(error) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "CI=true and Redis is unreachable: {error:#}");
            eprintln!("SKIPPED: Redis is unreachable ({error:#})");
            None
        }
    }
}

fn unique_prefix() -> String {
    format!("test:gateway:{}:", uuid::Uuid::now_v7().simple())
}

#[tokio::test]
async fn on_redis_a_budget_is_spent_refused_and_renewed() {
    let Some(cache) = redis(&unique_prefix()).await else {
        return;
    };
    a_budget_is_spent_refused_and_renewed(cache).await;
}

#[tokio::test]
async fn on_redis_replicas_share_one_budget() {
    let prefix = unique_prefix();
    // Two gateways: two connections to one Redis, with the deployment's one prefix.
    let (Some(one), Some(two)) = (redis(&prefix).await, redis(&prefix).await) else {
        return;
    };
    let settings = RateLimitSettings {
        requests: 2,
        ..RateLimitSettings::default()
    };
    let first = RateLimiter::new(one, settings.clone());
    let second = RateLimiter::new(two, settings);
    assert!(
        first
            .check("user:u", Budget::General)
            .await
            .expect("counted")
            .allowed
    );
    assert!(
        second
            .check("user:u", Budget::General)
            .await
            .expect("counted")
            .allowed
    );
    assert!(
        !first
            .check("user:u", Budget::General)
            .await
            .expect("counted")
            .allowed
    );
    assert!(
        !second
            .check("user:u", Budget::General)
            .await
            .expect("counted")
            .allowed
    );
}

/// A large budget is counted in Redis a lease at a time, yet each verdict counts exactly.
#[tokio::test]
async fn on_redis_a_replica_leases_counts_and_spends_them_locally() {
    let prefix = unique_prefix();
    let Some(cache) = redis(&prefix).await else {
        return;
    };
    let settings = RateLimitSettings {
        requests: 640,
        ..RateLimitSettings::default()
    };
    let size = lease_size(640);
    assert_eq!(size, 20);
    let limiter = RateLimiter::new(cache.clone(), settings);
    for n in 1..=101u64 {
        let verdict = limiter
            .check("user:u", Budget::General)
            .await
            .expect("counted");
        assert!(verdict.allowed);
        assert_eq!(
            verdict.remaining,
            640 - n,
            "request {n} counts exactly once"
        );
    }
    let counted = cache.count("ratelimit:general:user:u").await.expect("read");
    assert_eq!(
        counted.count,
        6 * size,
        "101 requests took six leases of {size}"
    );
}

/// Two replicas drawing on one budget in leases admit at most the budget, lose at most one
/// lease to the other, and a remembered refusal costs no Redis call.
#[tokio::test]
async fn on_redis_leases_never_admit_more_than_the_budget() {
    let prefix = unique_prefix();
    let (Some(one), Some(two)) = (redis(&prefix).await, redis(&prefix).await) else {
        return;
    };
    let settings = RateLimitSettings {
        requests: 96,
        ..RateLimitSettings::default()
    };
    let size = lease_size(96);
    assert_eq!(size, 3);
    let replicas = [
        RateLimiter::new(one.clone(), settings.clone()),
        RateLimiter::new(two, settings),
    ];
    let mut admitted = 0;
    // An uneven interleaving: the first replica serves two requests for each of the second.
    for n in 0..300 {
        let verdict = replicas[usize::from(n % 3 == 2)]
            .check("addr:x", Budget::General)
            .await
            .expect("counted");
        admitted += u64::from(verdict.allowed);
    }
    assert!(admitted <= 96, "{admitted} admitted past a budget of 96");
    assert!(admitted > 96 - size, "{admitted}: more than one lease lost");
    let key = "ratelimit:general:addr:x";
    let before = one.count(key).await.expect("read").count;
    for replica in &replicas {
        let verdict = replica
            .check("addr:x", Budget::General)
            .await
            .expect("counted");
        assert!(!verdict.allowed);
    }
    assert_eq!(
        one.count(key).await.expect("read").count,
        before,
        "a refusal remembered until the window ends asks Redis nothing"
    );
}

/// Sends a gRPC call of `method` (`agora.auth.v1.AuthService/Login`) through `app`; its HTTP
/// status and `grpc-status`.
async fn grpc_call(app: &axum::Router, method: &str) -> (u16, Option<String>) {
    use tower::ServiceExt as _;
    let request = Request::builder()
        .method("POST")
        .uri(format!("/{method}"))
        .header("content-type", "application/grpc")
        .body(axum::body::Body::empty())
        .expect("a request");
    let response = app.clone().oneshot(request).await.expect("answered");
    let status = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (response.status().as_u16(), status)
}

#[tokio::test]
async fn each_refusal_is_counted_under_the_budget_that_refused_it() {
    let metrics = agora_platform::metrics::Metrics::private();
    let limiter = RateLimiter::with_meter(
        Cache::memory("t:"),
        RateLimitSettings {
            sign_in_requests: 2,
            requests: 100,
            ..RateLimitSettings::default()
        },
        &metrics.meter(),
    );
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::any(|| async { "" }))
        .layer(axum::middleware::from_fn_with_state(limiter, enforce));
    let mut refused = 0;
    for _ in 0..5 {
        if grpc_call(&app, "agora.auth.v1.AuthService/Login").await.1 == Some("8".into()) {
            refused += 1;
        }
    }
    assert_eq!(refused, 3, "two logins pass, three are RESOURCE_EXHAUSTED");
    for _ in 0..4 {
        let (status, grpc) = grpc_call(&app, "agora.product.v1.ProductService/GetProduct").await;
        assert_eq!((status, grpc), (200, None), "within the general budget");
    }

    let text = metrics.render().expect("rendered");
    let samples = agora_platform::metrics::exposition::parse(&text).expect("the text format");
    let counted = agora_platform::metrics::exposition::matching(
        &samples,
        "agora_edge_rate_limited_total",
        &[],
    );
    assert_eq!(counted.len(), 1, "{text}");
    assert!(counted[0].has(&[("agora_rate_limit_policy", "sign_in")]));
    assert_eq!(counted[0].value, 3.0);
}
