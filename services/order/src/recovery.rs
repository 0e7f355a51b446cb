//! Repairs sagas that did not finish: at start-up and then every `order.recovery_interval`
//! (registered by the service's start-up), it takes over the claims
//! whose holder's lease ran out before their order was stored (the saga died or gave up between
//! claim and store), releases their reservations and drops them; finishes orders left PENDING
//! (commit, or fail and release); and forgets expired idempotency keys.
//!
//! Recovery competes for a claim like any retrying call, through the claim's generation (see
//! [`crate::store::claims`]): whoever loses does nothing, so several replicas may run it at once
//! and a retry may arrive at any moment.

use std::time::Duration;

use agora_platform::time::span_micros;

use crate::{saga::Saga, store::now_micros};

/// Runs one pass; returns how many claims and orders it repaired.
///
/// # Errors
/// The database failed.
pub async fn run_once(saga: &Saga, stuck_after: Duration) -> anyhow::Result<usize> {
    let store = saga.store();
    let mut repaired = 0;
    for seen in store.lapsed_claims(now_micros()).await? {
        if saga.recover(&seen).await? {
            tracing::info!(order_id = %seen.order_id, "released the reservation of an unfinished saga");
            repaired += 1;
        }
    }
    for order in store.stuck(now_micros() - span_micros(stuck_after)).await? {
        saga.finish(&order).await;
        repaired += 1;
    }
    store.purge_expired_keys().await?;
    crate::metrics::metrics().recovered(repaired);
    Ok(repaired)
}
