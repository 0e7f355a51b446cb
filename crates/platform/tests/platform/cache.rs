//! The cache and its counters behave the same in memory and on Redis.

use std::time::Duration;

use agora_platform::{
    cache::Cache,
    testing::{TestBackend, TestStore},
};

async fn cache_for(backend: TestBackend) -> Option<(TestStore, Cache)> {
    let store = TestStore::new(backend).await?;
    let cache = store.cache().await;
    Some((store, cache))
}

async fn values_expire_and_can_be_deleted(backend: TestBackend) {
    let Some((_store, cache)) = cache_for(backend).await else {
        return;
    };
    assert_eq!(cache.get("k").await.expect("get"), None);
    cache
        .set("k", b"v1", Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(
        cache.get("k").await.expect("get").as_deref(),
        Some(&b"v1"[..])
    );
    cache
        .set("k", b"v2", Duration::from_secs(60))
        .await
        .expect("overwrite");
    assert_eq!(
        cache.get("k").await.expect("get").as_deref(),
        Some(&b"v2"[..])
    );
    cache.delete("k").await.expect("delete");
    assert_eq!(cache.get("k").await.expect("get"), None);

    cache
        .set("short", b"x", Duration::from_millis(100))
        .await
        .expect("set");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(cache.get("short").await.expect("get"), None, "expired");
}

async fn counters_count_within_their_window_then_start_again(backend: TestBackend) {
    let Some((_store, cache)) = cache_for(backend).await else {
        return;
    };
    let window = Duration::from_millis(400);
    for expected in 1..=3 {
        let hit = cache.hit("c", window).await.expect("hit");
        assert_eq!(hit.count, expected);
        assert!(hit.reset_after <= window && hit.reset_after > Duration::ZERO);
    }
    assert_eq!(cache.count("c").await.expect("count").count, 3);
    assert_eq!(cache.count("absent").await.expect("count").count, 0);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        cache.hit("c", window).await.expect("hit").count,
        1,
        "a new window"
    );
}

async fn prefixes_keep_tenants_apart(backend: TestBackend) {
    let Some((store, cache)) = cache_for(backend).await else {
        return;
    };
    let other = Cache::connect(
        store.redis_url.as_deref(),
        format!("{}other:", store.prefix),
    )
    .await
    .expect("connect");
    cache
        .set("shared-name", b"mine", Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(other.get("shared-name").await.expect("get"), None);
    assert_eq!(cache.is_shared(), backend == TestBackend::Distributed);
}

async fn concurrent_hits_are_all_counted(backend: TestBackend) {
    let Some((_store, cache)) = cache_for(backend).await else {
        return;
    };
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.hit("burst", Duration::from_secs(30)).await })
        })
        .collect();
    let mut counts = Vec::new();
    for task in tasks {
        counts.push(task.await.expect("joined").expect("hit").count);
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=50).collect::<Vec<_>>(),
        "each hit saw a distinct count"
    );
}

async fn a_hit_taken_back_leaves_the_count_and_never_goes_below_zero(backend: TestBackend) {
    let Some((_store, cache)) = cache_for(backend).await else {
        return;
    };
    let window = Duration::from_secs(30);
    cache.hits("u", 2, window).await.expect("hits");
    cache.unhit("u").await.expect("unhit");
    assert_eq!(cache.count("u").await.expect("count").count, 1);
    cache.unhit("u").await.expect("unhit");
    cache.unhit("u").await.expect("unhit at zero");
    assert_eq!(cache.count("u").await.expect("count").count, 0);
    assert_eq!(cache.hit("u", window).await.expect("hit").count, 1);

    cache.unhit("never-hit").await.expect("unhit of nothing");
    assert_eq!(cache.count("never-hit").await.expect("count").count, 0);
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $name() { super::$name(agora_platform::testing::TestBackend::Embedded).await; })*
        }
        mod redis {
            $(#[tokio::test] async fn $name() { super::$name(agora_platform::testing::TestBackend::Distributed).await; })*
        }
    };
}

on_both_backends!(
    values_expire_and_can_be_deleted,
    counters_count_within_their_window_then_start_again,
    prefixes_keep_tenants_apart,
    concurrent_hits_are_all_counted,
    a_hit_taken_back_leaves_the_count_and_never_goes_below_zero,
);
