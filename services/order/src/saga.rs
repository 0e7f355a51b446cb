//! The order saga: read prices from product, reserve in inventory, store the order with its
//! event, commit the reservation; release the reservation when a step after it fails.
//!
//! Idempotency rests on a claim row written before any stock is touched (see
//! [`crate::store::claims`]): the first call with a key wins the claim and runs the saga under the
//! order id the claim names; concurrent duplicates find the claim and wait for that order. Every
//! holder of a claim holds one generation of it under a lease, and storing the order is
//! conditional on the generation, so a holder that lost its claim stores nothing.
//!
//! A saga that fails after its reservation releases it at once and drops its claim, so a retry
//! starts anew. A saga that dies half-way leaves its claim: when its lease runs out, the next
//! retry with the key takes the claim over in the call (releasing the dead generation's
//! reservation and running the saga again under a fresh order id), and [`crate::recovery`] does
//! the same for keys nobody retries. Each order id belongs to one generation only, so releasing
//! the reservation of a generation whose order was not stored can never return sold units.
//!
//! # Layout
//! This file takes the claim and waits for duplicates; the steps live by job: `run` (price,
//! reserve, store, commit under a claim), `compensation` (releases, take-overs, recovery of
//! lapsed claims), `settle` (commit and cancel a stored order), `hooks` (test interleavings) and
//! `statuses` (upstream answers in the order's terms). The money itself
//! is computed by [`crate::domain::money`].

use std::{sync::Arc, time::Duration};

use agora_contracts::agora::{
    inventory::v1::inventory_service_client::InventoryServiceClient,
    product::v1::product_service_client::ProductServiceClient,
};
use agora_platform::{
    client::{BreakerSettings, Propagate, Resilient, RetrySettings},
    context::CallContext,
};
use tonic::transport::Channel;

mod compensation;
mod hooks;
mod run;
mod settle;
mod statuses;

pub use hooks::{Hooks, Pause, Step};

use crate::{
    domain::{OrderId, Status as OrderStatus},
    error::ServiceError,
    store::{Claim, Held, OrderRow, Store, now_micros},
    wire::PlaceOrder,
};

/// A channel to an upstream that carries the caller's deadline, request id, trace context and
/// this service's token.
pub type Upstream = Propagate<Channel>;

/// How a saga under a claim ended when it did not fail.
enum Ran {
    /// Its order is stored (and committed, unless that is left to recovery).
    Placed(Box<OrderRow>),
    /// It lost its claim to a retry or recovery, which decides the key's outcome.
    Superseded,
}

/// What the saga needs: its store, its upstreams and its timing.
#[derive(Debug, Clone)]
pub struct Saga {
    store: Store,
    product: ProductServiceClient<Upstream>,
    inventory: InventoryServiceClient<Upstream>,
    /// Retries and circuit breaking per upstream. Every call the saga makes is idempotent:
    /// reads, and inventory calls keyed by the order id.
    product_calls: Arc<Resilient>,
    inventory_calls: Arc<Resilient>,
    timing: Timing,
    hooks: Hooks,
}

/// The saga's timing.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The TTL asked for each reservation.
    pub reservation_ttl: Duration,
    /// How long idempotency keys are remembered.
    pub key_retention: Duration,
    /// The longest a claim's holder may work before its claim can be taken over (shortened to
    /// the call's deadline, after which the call is gone anyway).
    pub claim_lease: Duration,
}

impl Saga {
    /// The saga over `store` and the two upstream channels.
    pub fn new(
        store: Store,
        product: Upstream,
        inventory: Upstream,
        timing: Timing,
        hooks: Hooks,
    ) -> Self {
        Self {
            store,
            product: ProductServiceClient::new(product),
            inventory: InventoryServiceClient::new(inventory),
            product_calls: Arc::new(Resilient::new(
                "product",
                RetrySettings::default(),
                BreakerSettings::default(),
            )),
            inventory_calls: Arc::new(Resilient::new(
                "inventory",
                RetrySettings::default(),
                BreakerSettings::default(),
            )),
            timing,
            hooks,
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The test hooks (disarmed outside tests).
    pub(crate) fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// The lease of a claim taken now: the call's remaining time, at most the claim lease.
    fn lease(&self) -> Duration {
        CallContext::current()
            .and_then(|c| c.remaining())
            .map_or(self.timing.claim_lease, |r| r.min(self.timing.claim_lease))
    }

    /// Places an order for `user_id`, or returns the order a previous call with the same key
    /// placed.
    ///
    /// # Errors
    /// See the contract of CreateOrder.
    pub async fn place(
        &self,
        user_id: &str,
        request: &PlaceOrder,
    ) -> Result<OrderRow, ServiceError> {
        let key = &request.idempotency_key;
        // A duplicate waits for the first call's order for as long as the call may last, and at
        // most a little longer than a lease, after which it can take a dead holder's claim.
        let longest = self.timing.claim_lease + Duration::from_secs(1);
        let wait_until = tokio::time::Instant::now()
            + CallContext::current()
                .and_then(|c| c.remaining())
                .map_or(longest, |r| r.min(longest));
        loop {
            if tokio::time::Instant::now() >= wait_until {
                return Err(ServiceError::KeyInProgress);
            }
            let claim = self
                .store
                .claim(
                    user_id,
                    key,
                    &request.fingerprint,
                    &OrderId::generate(),
                    self.timing.key_retention,
                    self.lease(),
                )
                .await?;
            let mut seen = match claim {
                Claim::Won(hold) => match self.run(request, hold).await? {
                    Ran::Placed(order) => return Ok(*order),
                    Ran::Superseded => continue,
                },
                Claim::Held(held) => held,
            };
            if seen.fingerprint != request.fingerprint {
                return Err(ServiceError::KeyReused);
            }
            // Another call holds the key: wait for its order, or take its claim over once its
            // holder's lease ran out (it died or gave up).
            loop {
                if seen.placed {
                    return self.placed(&seen).await;
                }
                if seen.lapsed(now_micros())
                    && let Some(hold) = self.store.take_over(&seen, self.lease()).await?
                {
                    match self.resume(request, hold).await? {
                        Ran::Placed(order) => return Ok(*order),
                        Ran::Superseded => break,
                    }
                }
                if tokio::time::Instant::now() >= wait_until {
                    return Err(ServiceError::KeyInProgress);
                }
                self.hooks.at(Step::DuplicateWaiting).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                match self.store.claim_of(user_id, key).await? {
                    Some(next) => seen = next,
                    // The holder failed and stored nothing: claim the key again.
                    None => break,
                }
            }
        }
    }

    /// The order of a placed claim; one its holder left PENDING past its lease is finished here.
    async fn placed(&self, seen: &Held) -> Result<OrderRow, ServiceError> {
        let order = self
            .store
            .get(&seen.order_id)
            .await?
            .ok_or_else(|| ServiceError::internal("a placed claim has no order"))?;
        if order.status != OrderStatus::Pending || seen.lease_until > now_micros() {
            return Ok(order);
        }
        self.finish(&order).await;
        Ok(self.store.get(&order.id).await?.unwrap_or(order))
    }
}
