//! Placing an order under a claim this call holds: price the lines, reserve the stock, store
//! the order with its event, then commit.

use std::{sync::atomic::Ordering, time::Instant};

use agora_contracts::agora::{
    common::v1::Money,
    inventory::v1::{self as inv, inventory_service_client::InventoryServiceClient},
    order::v1 as pb,
    product::v1 as prod,
};
use agora_platform::client::Idempotency;
use tonic::Status;

use super::{
    Ran, Saga, Step, Upstream,
    statuses::{is_transport, reserve_refused, unreachable},
};
use crate::{
    domain::{
        OrderId, Status as OrderStatus,
        money::{self, MoneyError},
    },
    error::ServiceError,
    metrics::{self, metrics},
    store::{Hold, OrderRow, now_micros},
    wire::PlaceOrder,
};

impl Saga {
    /// Runs the saga under a claim this call holds.
    pub(super) async fn run(&self, request: &PlaceOrder, hold: Hold) -> Result<Ran, ServiceError> {
        let started = Instant::now();
        // 1. Names and prices, from the product service only; then the whole order, so a
        // total that cannot be computed is refused before any stock is touched.
        let order = match self
            .price(request)
            .await
            .and_then(|body| order(&hold, body).map_err(ServiceError::from))
        {
            Ok(order) => order,
            Err(error) => {
                self.store.drop_claim(&hold).await?;
                failed(started, false);
                return Err(error);
            }
        };
        // 2. Reserve every line at once.
        self.hooks.at(Step::BeforeReserve).await;
        if let Err(status) = self.reserve(&hold.order_id, request).await {
            if is_transport(&status) {
                // The reservation may have landed: give it back.
                let compensated = self.give_up(&hold).await?;
                failed(started, compensated);
                return Err(unreachable("inventory", &status));
            }
            self.store.drop_claim(&hold).await?;
            failed(started, false);
            return Err(reserve_refused(&status));
        }
        if self.hooks.crash_after_reserve.swap(false, Ordering::SeqCst) {
            return Err(ServiceError::Abandoned);
        }
        // 3. Store the order and its OrderPlaced event together, if the claim is still ours.
        self.hooks.at(Step::BeforeInsert).await;
        let stored = if self.hooks.fail_after_reserve.swap(false, Ordering::SeqCst) {
            Err(ServiceError::internal(
                "injected failure before the order was stored",
            ))
        } else {
            self.store
                .insert(&order, &hold)
                .await
                .map_err(ServiceError::from)
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
            Err(error) => {
                // Compensate at once: nothing was stored, so nothing may stay reserved.
                let compensated = self.give_up(&hold).await?;
                failed(started, compensated);
                return Err(error);
            }
        }
        if self.hooks.hold_before_commit.swap(false, Ordering::SeqCst) {
            self.hooks.resume.notified().await;
        }
        metrics().saga(started, metrics::Saga::Placed);
        // 4. Commit; a commit that cannot finish now is finished by recovery or a retry.
        self.finish(&order).await;
        Ok(Ran::Placed(Box::new(
            self.store.get(&order.id).await?.unwrap_or(order),
        )))
    }

    /// Reads the products and builds the order's lines with their names and prices.
    async fn price(&self, request: &PlaceOrder) -> Result<pb::Order, ServiceError> {
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
            return Err(ServiceError::ProductsUnavailable(unavailable));
        }
        let mut lines = Vec::with_capacity(request.lines.len());
        for line in &request.lines {
            let product = response
                .products
                .iter()
                .find(|p| p.id == line.product_id)
                .ok_or_else(|| ServiceError::internal("a checked product vanished"))?;
            let price = product.price.clone().unwrap_or_default();
            let line_total = money::line_total(price.amount_minor, line.quantity)?;
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
        money::one_currency(lines.iter().map(currency_of))?;
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
        self.call_inventory(message, |mut client, request| async move {
            client.reserve(request).await
        })
        .await
        .map(|_| ())
    }

    /// Sends `message` to inventory through its retries and breaker, `send` making the call on
    /// a client of its own. Every inventory call is keyed by the order id, so idempotent.
    pub(super) async fn call_inventory<Req, Resp, F, Fut>(
        &self,
        message: Req,
        send: F,
    ) -> Result<tonic::Response<Resp>, Status>
    where
        Req: Clone,
        F: Fn(InventoryServiceClient<Upstream>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        self.inventory_calls
            .call(Idempotency::Idempotent, message, |request| {
                send(self.inventory.clone(), request)
            })
            .await
    }
}

/// Records a saga begun at `started` that failed, giving its stock back when `compensated`: its
/// order failed.
fn failed(started: Instant, compensated: bool) {
    let saga = if compensated {
        metrics::Saga::Compensated
    } else {
        metrics::Saga::Failed
    };
    metrics().saga(started, saga);
    metrics().order(metrics::Order::Failed);
}

/// The currency a line is priced in.
fn currency_of(line: &pb::OrderLine) -> &str {
    line.unit_price
        .as_ref()
        .map_or("", |price| price.currency_code.as_str())
}

/// The PENDING order a hold would store: its lines, currency and total (checked).
fn order(hold: &Hold, body: pb::Order) -> Result<OrderRow, MoneyError> {
    let currency_code = money::one_currency(body.lines.iter().map(currency_of))?
        .unwrap_or_default()
        .to_owned();
    let total_minor = money::order_total(
        body.lines
            .iter()
            .map(|line| line.line_total.as_ref().map_or(0, |m| m.amount_minor)),
    )?;
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
