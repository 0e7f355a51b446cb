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

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use agora_contracts::agora::{
    common::v1::Money,
    inventory::v1::{self as inv, inventory_service_client::InventoryServiceClient},
    order::v1 as pb,
    product::v1::{self as prod, product_service_client::ProductServiceClient},
};
use agora_platform::{
    client::{BreakerSettings, Idempotency, Propagate, Resilient, RetrySettings},
    context::CallContext,
    error::{ApiError, FieldViolations},
};
use tonic::{Code, Status, transport::Channel};

mod statuses;

use statuses::{is_transport, precondition, reserve_refused, unreachable};

use crate::{
    domain::{OrderId, PlaceOrder, Status as OrderStatus},
    store::{Claim, Held, Hold, OrderRow, Store, now_micros},
};

/// A channel to an upstream that carries the caller's deadline, request id, trace context and
/// this service's token.
pub type Upstream = Propagate<Channel>;

/// Points where a test can hold a saga or recovery, to force an interleaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// A saga holds its claim and is about to reserve.
    BeforeReserve,
    /// A saga reserved and is about to store its order.
    BeforeInsert,
    /// A call took a lapsed claim over and is about to release the old generation's stock.
    TakeOverBeforeRelease,
    /// Recovery took a lapsed claim over and is about to release its stock.
    RecoveryBeforeRelease,
    /// A duplicate call found the key held by a live holder and is about to wait for it.
    DuplicateWaiting,
    /// A WatchOrder call subscribed to its order's changes and read the order, and is about to
    /// start its stream.
    WatchAfterRead,
}

/// A held step: the code that reached it waits until [`Pause::resume`].
#[derive(Debug, Default)]
pub struct Pause {
    reached: tokio::sync::Notify,
    resume: tokio::sync::Notify,
}

impl Pause {
    /// Waits until the step is reached.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the held code go on.
    pub fn resume(&self) {
        self.resume.notify_one();
    }
}

/// Failure points tests can arm. [`crate::serve`] always passes the disarmed default, so no
/// configuration can enable them; only [`crate::serve_with_hooks`] takes armed ones.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// Fail the next saga after its reservation and before its order is stored (it compensates).
    pub fail_after_reserve: Arc<AtomicBool>,
    /// Abandon the next saga after its reservation, leaving everything as a crash would.
    pub crash_after_reserve: Arc<AtomicBool>,
    /// Hold the next saga after its order is stored (PENDING) until `resume` is notified.
    pub hold_before_commit: Arc<AtomicBool>,
    /// Lets a held saga go on to its commit.
    pub resume: Arc<tokio::sync::Notify>,
    pauses: Arc<Mutex<HashMap<Step, Arc<Pause>>>>,
}

impl Hooks {
    /// Holds the next saga (or recovery pass) that reaches `step`, once.
    pub fn pause_at(&self, step: Step) -> Arc<Pause> {
        let pause = Arc::new(Pause::default());
        self.pauses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(step, Arc::clone(&pause));
        pause
    }

    pub(crate) async fn at(&self, step: Step) {
        let pause = self
            .pauses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&step);
        if let Some(pause) = pause {
            pause.reached.notify_one();
            pause.resume.notified().await;
        }
    }
}

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
    pub async fn place(&self, user_id: &str, request: &PlaceOrder) -> Result<OrderRow, Status> {
        let key = &request.idempotency_key;
        // A duplicate waits for the first call's order for as long as the call may last, and at
        // most a little longer than a lease, after which it can take a dead holder's claim.
        let longest = self.timing.claim_lease + Duration::from_secs(1);
        let wait_until = tokio::time::Instant::now()
            + CallContext::current()
                .and_then(|c| c.remaining())
                .map_or(longest, |r| r.min(longest));
        let in_progress = || {
            Status::aborted("a call with this idempotency key is still in progress; retry shortly")
        };
        loop {
            if tokio::time::Instant::now() >= wait_until {
                return Err(in_progress());
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
                return Err(ApiError::FailedPrecondition {
                    reason: "IDEMPOTENCY_KEY_REUSED",
                    message: "this idempotency key was already used for a different request".into(),
                }
                .into());
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
                    return Err(in_progress());
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
    async fn placed(&self, seen: &Held) -> Result<OrderRow, Status> {
        let order = self
            .store
            .get(&seen.order_id)
            .await?
            .ok_or_else(|| Status::internal("a placed claim has no order"))?;
        if order.status != OrderStatus::Pending || seen.lease_until > now_micros() {
            return Ok(order);
        }
        self.finish(&order).await;
        Ok(self.store.get(&order.id).await?.unwrap_or(order))
    }

    /// Goes on with a claim taken over from a holder whose lease ran out: that generation's
    /// order can no longer be stored, so its stock goes back; then the saga runs again under a
    /// fresh order id.
    async fn resume(&self, request: &PlaceOrder, hold: Hold) -> Result<Ran, Status> {
        self.hooks.at(Step::TakeOverBeforeRelease).await;
        if let Err(status) = self
            .release(hold.order_id.as_str(), "order not placed")
            .await
        {
            self.store.let_go(&hold).await?;
            return Err(unreachable("inventory", &status));
        }
        match self
            .store
            .rekey(&hold, &OrderId::generate(), self.lease())
            .await?
        {
            Some(hold) => self.run(request, hold).await,
            None => Ok(Ran::Superseded),
        }
    }

    /// Repairs a claim whose holder's lease ran out before its order was stored, as seen by
    /// recovery: takes it over, releases its stock and drops it so the key starts anew. Returns
    /// whether it did (another caller may have been first).
    ///
    /// # Errors
    /// The database failed.
    pub async fn recover(&self, seen: &Held) -> Result<bool, Status> {
        let Some(hold) = self.store.take_over(seen, self.timing.claim_lease).await? else {
            return Ok(false);
        };
        self.hooks.at(Step::RecoveryBeforeRelease).await;
        if self
            .release(hold.order_id.as_str(), "order not placed")
            .await
            .is_err()
        {
            self.store.let_go(&hold).await?;
            return Ok(false);
        }
        Ok(self.store.drop_claim(&hold).await?)
    }

    /// Runs the saga under a claim this call holds.
    async fn run(&self, request: &PlaceOrder, hold: Hold) -> Result<Ran, Status> {
        // 1. Names and prices, from the product service only; then the whole order, so a
        // total that cannot be computed is refused before any stock is touched.
        let order = match self
            .price(request)
            .await
            .and_then(|body| order(&hold, body))
        {
            Ok(order) => order,
            Err(status) => {
                self.store.drop_claim(&hold).await?;
                return Err(status);
            }
        };
        // 2. Reserve every line at once.
        self.hooks.at(Step::BeforeReserve).await;
        if let Err(status) = self.reserve(&hold.order_id, request).await {
            if is_transport(&status) {
                // The reservation may have landed: give it back.
                self.give_up(&hold).await?;
                return Err(unreachable("inventory", &status));
            }
            self.store.drop_claim(&hold).await?;
            return Err(reserve_refused(&status));
        }
        if self.hooks.crash_after_reserve.swap(false, Ordering::SeqCst) {
            return Err(Status::unavailable(
                "the saga was abandoned after its reservation",
            ));
        }
        // 3. Store the order and its OrderPlaced event together, if the claim is still ours.
        self.hooks.at(Step::BeforeInsert).await;
        let stored = if self.hooks.fail_after_reserve.swap(false, Ordering::SeqCst) {
            Err(ApiError::internal(anyhow::anyhow!(
                "injected failure before the order was stored"
            ))
            .into())
        } else {
            self.store.insert(&order, &hold).await.map_err(Status::from)
        };
        match stored {
            Ok(true) => {}
            Ok(false) => {
                // The claim was taken over: this order id will never be stored, so its stock
                // goes back (if inventory cannot be reached now, its TTL returns it).
                let _ = self
                    .release(hold.order_id.as_str(), "order not placed")
                    .await;
                return Ok(Ran::Superseded);
            }
            Err(status) => {
                // Compensate at once: nothing was stored, so nothing may stay reserved.
                self.give_up(&hold).await?;
                return Err(status);
            }
        }
        if self.hooks.hold_before_commit.swap(false, Ordering::SeqCst) {
            self.hooks.resume.notified().await;
        }
        // 4. Commit; a commit that cannot finish now is finished by recovery or a retry.
        self.finish(&order).await;
        Ok(Ran::Placed(Box::new(
            self.store.get(&order.id).await?.unwrap_or(order),
        )))
    }

    /// Compensates a saga that stored nothing after its reservation may have landed: releases
    /// the reservation and drops the claim; when inventory cannot be reached, lets the claim go
    /// so the next retry (or recovery) takes it over at once.
    async fn give_up(&self, hold: &Hold) -> Result<(), Status> {
        if self
            .release(hold.order_id.as_str(), "order not placed")
            .await
            .is_ok()
        {
            self.store.drop_claim(hold).await?;
        } else {
            self.store.let_go(hold).await?;
        }
        Ok(())
    }

    /// Reads the products and builds the order's lines with their names and prices.
    async fn price(&self, request: &PlaceOrder) -> Result<pb::Order, Status> {
        let message = prod::BatchGetProductsRequest {
            product_ids: request.lines.iter().map(|l| l.product_id.clone()).collect(),
        };
        let response = self
            .product_calls
            .call(Idempotency::Idempotent, message, |request| {
                let mut client = self.product.clone();
                async move { client.batch_get_products(request).await }
            })
            .await
            .map_err(|status| unreachable("product", &status))?
            .into_inner();
        let unavailable: Vec<String> = request
            .lines
            .iter()
            .filter(|line| {
                !response.products.iter().any(|p| {
                    p.id == line.product_id && p.status == prod::ProductStatus::Active as i32
                })
            })
            .map(|line| line.product_id.clone())
            .collect();
        if !unavailable.is_empty() {
            let named: Vec<(String, String)> = unavailable
                .iter()
                .map(|id| (id.clone(), "unknown or archived".to_owned()))
                .collect();
            return Err(precondition(
                "PRODUCT_UNAVAILABLE",
                format!("unknown or archived products: {}", unavailable.join(", ")),
                "PRODUCT",
                &named,
            ));
        }
        let mut lines = Vec::with_capacity(request.lines.len());
        for line in &request.lines {
            let product = response
                .products
                .iter()
                .find(|p| p.id == line.product_id)
                .ok_or_else(|| Status::internal("a checked product vanished"))?;
            let price = product.price.clone().unwrap_or_default();
            let line_total = price
                .amount_minor
                .checked_mul(line.quantity)
                .ok_or_else(too_large)?;
            lines.push(pb::OrderLine {
                product_id: product.id.clone(),
                product_name: product.name.clone(),
                unit_price: Some(price.clone()),
                quantity: line.quantity,
                line_total: Some(Money {
                    currency_code: price.currency_code.clone(),
                    amount_minor: line_total,
                }),
            });
        }
        let first = lines
            .first()
            .and_then(|l| l.unit_price.as_ref())
            .map(|p| p.currency_code.clone());
        if lines
            .iter()
            .any(|l| l.unit_price.as_ref().map(|p| &p.currency_code) != first.as_ref())
        {
            return Err(ApiError::FailedPrecondition {
                reason: "MIXED_CURRENCIES",
                message: "the products are not priced in one currency".into(),
            }
            .into());
        }
        Ok(pb::Order {
            lines,
            shipping_address: request.shipping_address.clone(),
            ..Default::default()
        })
    }

    async fn reserve(&self, order_id: &OrderId, request: &PlaceOrder) -> Result<(), Status> {
        let ttl = prost_types::Duration {
            seconds: i64::try_from(self.timing.reservation_ttl.as_secs()).unwrap_or(3600),
            nanos: 0,
        };
        let message = inv::ReserveRequest {
            order_id: order_id.to_string(),
            lines: request
                .lines
                .iter()
                .map(|l| inv::ReservationLine {
                    product_id: l.product_id.clone(),
                    quantity: l.quantity,
                })
                .collect(),
            ttl: Some(ttl),
        };
        self.inventory_calls
            .call(Idempotency::Idempotent, message, |request| {
                let mut client = self.inventory.clone();
                async move { client.reserve(request).await }
            })
            .await
            .map(|_| ())
    }

    /// Releases the reservation of an order that was not placed (or failed); an order without
    /// one has nothing to release, and a committed one is left as it is by inventory.
    ///
    /// # Errors
    /// Inventory could not be reached or refused.
    pub async fn release(&self, order_id: &str, reason: &str) -> Result<(), Status> {
        self.release_with(order_id, reason, false).await
    }

    /// Releases an order's reservation; `return_committed` (a cancellation) returns sold units.
    async fn release_with(
        &self,
        order_id: &str,
        reason: &str,
        return_committed: bool,
    ) -> Result<(), Status> {
        let message = inv::ReleaseReservationRequest {
            order_id: order_id.to_owned(),
            reason: reason.chars().take(500).collect(),
            return_committed,
        };
        let released = self
            .inventory_calls
            .call(Idempotency::Idempotent, message, |request| {
                let mut client = self.inventory.clone();
                async move { client.release_reservation(request).await }
            })
            .await;
        match released {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => {
                tracing::warn!(order_id, code = ?status.code(), "release failed");
                Err(status)
            }
        }
    }

    /// Commits a PENDING order's reservation and confirms it; a reservation that was released
    /// or expired fails the order. A commit that cannot be done now leaves it PENDING.
    pub async fn finish(&self, order: &OrderRow) {
        let message = inv::CommitReservationRequest {
            order_id: order.id.clone(),
        };
        let committed = self
            .inventory_calls
            .call(Idempotency::Idempotent, message, |request| {
                let mut client = self.inventory.clone();
                async move { client.commit_reservation(request).await }
            })
            .await;
        let outcome = match committed {
            Ok(_) => self
                .store
                .transition(
                    &order.id,
                    &[OrderStatus::Pending],
                    OrderStatus::Confirmed,
                    "",
                )
                .await
                .map(|_| ()),
            Err(status) if matches!(status.code(), Code::FailedPrecondition | Code::NotFound) => {
                let reason = format!(
                    "the stock reservation could not be committed: {}",
                    status.message()
                );
                let failed = self
                    .store
                    .transition(
                        &order.id,
                        &[OrderStatus::Pending],
                        OrderStatus::Failed,
                        &reason,
                    )
                    .await;
                if matches!(failed, Ok(true)) {
                    let _ = self.release(&order.id, "order failed").await;
                }
                failed.map(|_| ())
            }
            Err(status) => {
                tracing::warn!(order_id = %order.id, code = ?status.code(), "commit deferred to recovery");
                Ok(())
            }
        };
        if let Err(error) = outcome {
            tracing::error!(order_id = %order.id, error = %error, "could not record the saga's outcome");
        }
    }

    /// Cancels an order: its stock goes back, then it is marked CANCELLED with its event.
    ///
    /// # Errors
    /// FAILED_PRECONDITION for a FAILED order; UNAVAILABLE when inventory cannot be reached.
    pub async fn cancel(&self, order: OrderRow, reason: &str) -> Result<OrderRow, Status> {
        match order.status {
            OrderStatus::Cancelled => return Ok(order),
            OrderStatus::Failed => {
                return Err(ApiError::FailedPrecondition {
                    reason: "ORDER_FAILED",
                    message: "the order failed; there is nothing to cancel".into(),
                }
                .into());
            }
            OrderStatus::Pending | OrderStatus::Confirmed => {}
        }
        self.release_with(
            &order.id,
            if reason.is_empty() {
                "order cancelled"
            } else {
                reason
            },
            true,
        )
        .await
        .map_err(|status| unreachable("inventory", &status))?;
        self.store.cancel(&order, reason).await?;
        self.store
            .get(&order.id)
            .await?
            .ok_or_else(|| Status::internal("a cancelled order vanished"))
    }
}

/// INVALID_ARGUMENT for an order whose total does not fit: the contracts bound prices and
/// quantities so that this cannot happen, but a price set before the bound must not overflow.
fn too_large() -> Status {
    let mut violations = FieldViolations::default();
    violations.add(
        "lines",
        "the order's total is too large: order fewer units or split the order",
    );
    violations.into_error().into()
}

/// The PENDING order a hold would store: its lines, currency and total (checked).
fn order(hold: &Hold, body: pb::Order) -> Result<OrderRow, Status> {
    let currency_code = body
        .lines
        .first()
        .and_then(|l| l.unit_price.as_ref())
        .map(|p| p.currency_code.clone())
        .unwrap_or_default();
    let mut total_minor: i64 = 0;
    for line in &body.lines {
        let amount = line.line_total.as_ref().map_or(0, |m| m.amount_minor);
        total_minor = total_minor.checked_add(amount).ok_or_else(too_large)?;
    }
    let now = now_micros();
    Ok(OrderRow {
        id: hold.order_id.to_string(),
        user_id: hold.user_id.clone(),
        status: OrderStatus::Pending,
        body,
        currency_code,
        total_minor,
        cancel_reason: String::new(),
        failure_reason: String::new(),
        created_at: now,
        updated_at: now,
        version: 1,
    })
}
