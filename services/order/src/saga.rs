//! The order saga: read prices from product, reserve in inventory, store the order with its
//! event, commit the reservation; release the reservation when a step after it fails.
//!
//! Idempotency rests on a claim row written before any stock is touched (see the migration):
//! the first call with a key wins the claim and runs the saga under the order id the claim
//! names; concurrent duplicates find the claim and wait for that order instead of reserving
//! again. A saga that fails before storing its order releases what it reserved and drops its
//! claim, so a retry starts anew; a saga that dies half-way leaves its claim for
//! [`crate::recovery`] to repair.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use agora_contracts::agora::{
    inventory::v1::{self as inv, inventory_service_client::InventoryServiceClient},
    order::v1 as pb,
    product::v1::{self as prod, product_service_client::ProductServiceClient},
};
use agora_platform::{
    client::{BreakerSettings, Idempotency, Propagate, Resilient, RetrySettings},
    context::CallContext,
    error::ApiError,
};
use tonic::{Code, Status, transport::Channel};

mod statuses;

use statuses::{is_transport, precondition, reserve_refused, unreachable};

use crate::{
    domain::{OrderId, PlaceOrder, Status as OrderStatus},
    store::{Claim, OrderRow, Store, now_micros},
};

/// A channel to an upstream that carries the caller's deadline, request id, trace context and
/// this service's token.
pub type Upstream = Propagate<Channel>;

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
    /// The TTL asked for each reservation.
    reservation_ttl: Duration,
    /// How long idempotency keys are remembered.
    key_retention: Duration,
    /// How long a duplicate call waits for the first call's order.
    duplicate_wait: Duration,
    hooks: Hooks,
}

impl Saga {
    /// The saga over `store` and the two upstream channels.
    pub fn new(
        store: Store,
        product: Upstream,
        inventory: Upstream,
        reservation_ttl: Duration,
        key_retention: Duration,
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
            reservation_ttl,
            key_retention,
            duplicate_wait: Duration::from_secs(10),
            hooks,
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Places an order for `user_id`, or returns the order a previous call with the same key
    /// placed.
    ///
    /// # Errors
    /// See the contract of CreateOrder.
    pub async fn place(&self, user_id: &str, request: &PlaceOrder) -> Result<OrderRow, Status> {
        let key = &request.idempotency_key;
        let waited_until = tokio::time::Instant::now()
            + CallContext::current()
                .and_then(|c| c.remaining())
                .map_or(self.duplicate_wait, |r| r.min(self.duplicate_wait));
        loop {
            let order_id = OrderId::generate();
            let claim = self
                .store
                .claim(
                    user_id,
                    key,
                    &request.fingerprint,
                    &order_id,
                    self.key_retention,
                )
                .await?;
            let held = match claim {
                Claim::Won => return self.run(user_id, request, &order_id).await,
                Claim::Held {
                    fingerprint,
                    order_id,
                } => {
                    if fingerprint != request.fingerprint {
                        return Err(ApiError::FailedPrecondition {
                            reason: "IDEMPOTENCY_KEY_REUSED",
                            message:
                                "this idempotency key was already used for a different request"
                                    .into(),
                        }
                        .into());
                    }
                    order_id
                }
            };
            // Another call with this key runs (or ran) the saga: wait for its order, or take
            // its claim over if it gave up.
            loop {
                if self.store.take_over(user_id, key, &held).await? {
                    let order_id = OrderId::parse(&held)
                        .map_err(|_| Status::internal("a claim holds a malformed order id"))?;
                    return self.run(user_id, request, &order_id).await;
                }
                if let Some(order) = self.store.get(&held).await? {
                    return Ok(order);
                }
                match self.store.claim_of(user_id, key).await? {
                    Some(Claim::Held { order_id, .. }) if order_id == held => {}
                    // The first call failed and stored nothing: try to claim the key again.
                    _ => break,
                }
                if tokio::time::Instant::now() >= waited_until {
                    return Err(Status::aborted(
                        "a call with this idempotency key is still in progress; retry shortly",
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Runs the saga under a claim this call won.
    async fn run(
        &self,
        user_id: &str,
        request: &PlaceOrder,
        order_id: &OrderId,
    ) -> Result<OrderRow, Status> {
        let drop_claim = || {
            self.store
                .drop_claim(user_id, &request.idempotency_key, order_id.as_str())
        };
        // 1. Names and prices, from the product service only.
        let body = match self.price(request).await {
            Ok(priced) => priced,
            Err(status) => {
                drop_claim().await?;
                return Err(status);
            }
        };
        // 2. Reserve every line at once.
        if let Err(status) = self.reserve(order_id, request).await {
            if is_transport(&status) {
                // The reservation may have landed: give it back; if that cannot be done either,
                // leave the claim for a retry to take over (or recovery to release).
                if self
                    .release(order_id.as_str(), "order not placed")
                    .await
                    .is_ok()
                {
                    drop_claim().await?;
                } else {
                    self.store
                        .abandon_claim(user_id, &request.idempotency_key, order_id.as_str())
                        .await?;
                }
                return Err(unreachable("inventory", &status));
            }
            drop_claim().await?;
            return Err(reserve_refused(&status));
        }
        if self.hooks.crash_after_reserve.swap(false, Ordering::SeqCst) {
            return Err(Status::unavailable(
                "the saga was abandoned after its reservation",
            ));
        }
        // 3. Store the order and its OrderPlaced event together.
        let now = now_micros();
        let (currency_code, total_minor) = total(&body)?;
        let order = OrderRow {
            id: order_id.to_string(),
            user_id: user_id.to_owned(),
            status: OrderStatus::Pending,
            body,
            currency_code,
            total_minor,
            cancel_reason: String::new(),
            failure_reason: String::new(),
            created_at: now,
            updated_at: now,
        };
        let stored = if self.hooks.fail_after_reserve.swap(false, Ordering::SeqCst) {
            Err(ApiError::internal(anyhow::anyhow!(
                "injected failure before the order was stored"
            ))
            .into())
        } else {
            self.store.insert(&order).await.map_err(Status::from)
        };
        if let Err(status) = stored {
            // Compensate: nothing was stored, so nothing may stay reserved.
            if self
                .release(order_id.as_str(), "order not placed")
                .await
                .is_ok()
            {
                drop_claim().await?;
            }
            return Err(status);
        }
        if self.hooks.hold_before_commit.swap(false, Ordering::SeqCst) {
            self.hooks.resume.notified().await;
        }
        // 4. Commit; a commit that cannot finish now is finished by recovery.
        self.finish(&order).await;
        Ok(self.store.get(order_id.as_str()).await?.unwrap_or(order))
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
                .ok_or_else(|| Status::invalid_argument("the order's total is too large"))?;
            lines.push(pb::OrderLine {
                product_id: product.id.clone(),
                product_name: product.name.clone(),
                unit_price: Some(price.clone()),
                quantity: line.quantity,
                line_total: Some(agora_contracts::agora::common::v1::Money {
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
            seconds: i64::try_from(self.reservation_ttl.as_secs()).unwrap_or(3600),
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

    /// Releases an order's reservation; an order without one has nothing to release.
    ///
    /// # Errors
    /// Inventory could not be reached or refused.
    pub async fn release(&self, order_id: &str, reason: &str) -> Result<(), Status> {
        let message = inv::ReleaseReservationRequest {
            order_id: order_id.to_owned(),
            reason: reason.chars().take(500).collect(),
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
        self.release(
            &order.id,
            if reason.is_empty() {
                "order cancelled"
            } else {
                reason
            },
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

/// The order's currency and total.
fn total(body: &pb::Order) -> Result<(String, i64), Status> {
    let currency = body
        .lines
        .first()
        .and_then(|l| l.unit_price.as_ref())
        .map(|p| p.currency_code.clone())
        .unwrap_or_default();
    let mut sum: i64 = 0;
    for line in &body.lines {
        let amount = line.line_total.as_ref().map_or(0, |m| m.amount_minor);
        sum = sum
            .checked_add(amount)
            .ok_or_else(|| Status::invalid_argument("the order's total is too large"))?;
    }
    Ok((currency, sum))
}
