//! Repairs sagas that did not finish: at start-up and then periodically, it releases the
//! reservations of claims whose order was never stored (the saga died between reserve and
//! persist; the reservation's TTL would return the stock too, this does it sooner), finishes
//! orders left PENDING (commit, or fail and release), and forgets expired idempotency keys.
//! Every step is idempotent, so several replicas may run it at once.

use std::time::Duration;

use agora_platform::events::Background;

use crate::{
    saga::Saga,
    store::{micros, now_micros},
};

/// Runs one pass; returns how many claims and orders it repaired.
///
/// # Errors
/// The database failed.
pub async fn run_once(saga: &Saga, stale_after: Duration) -> anyhow::Result<usize> {
    let before = now_micros() - micros(stale_after);
    let store = saga.store();
    let mut repaired = 0;
    for claim in store.stale_claims(before).await? {
        // Released first: a claim dropped before its release would strand the stock until TTL.
        if saga
            .release(&claim.order_id, "order not placed")
            .await
            .is_ok()
        {
            store
                .drop_claim(&claim.user_id, &claim.key, &claim.order_id)
                .await?;
            tracing::info!(order_id = %claim.order_id, "released the reservation of an unfinished saga");
            repaired += 1;
        }
    }
    for order in store.stuck(before).await? {
        saga.finish(&order).await;
        repaired += 1;
    }
    store.purge_expired_keys().await?;
    Ok(repaired)
}

/// Runs [`run_once`] now and every `interval`.
pub fn spawn(saga: Saga, interval: Duration, stale_after: Duration) -> Background {
    let mut tasks = Background::default();
    tasks.spawn(async move {
        loop {
            if let Err(error) = run_once(&saga, stale_after).await {
                tracing::warn!(error = %error, "order recovery pass failed");
            }
            tokio::time::sleep(interval).await;
        }
    });
    tasks
}
