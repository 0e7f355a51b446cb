//! The gRPC handlers of `agora.order.v1.OrderService`. Each parses its request into a domain
//! value once (see [`crate::domain`] and [`crate::wire`]), checks who may see the order, calls
//! the saga or the store, and maps the result; failures are [`ServiceError`]s, turned into
//! statuses in one place.

use std::{sync::Arc, time::Duration};

use agora_contracts::agora::order::v1::{self as pb, order_service_server::OrderService};
use agora_platform::access::Principal;
use tonic::{Request, Response, Status};

use crate::{
    domain::OrderId,
    error::ServiceError,
    saga::{Saga, Step},
    store::OrderRow,
    watch::{self, Slots, WatchStream},
    wire::PlaceOrder,
    wire::{CancelOrder, ListOrders, WatchOrder},
};

/// How long one WatchOrder stream lasts at most, as the contract allows.
const WATCH_LIMIT: Duration = Duration::from_secs(15 * 60);

/// The order service's handlers and what they share.
#[derive(Debug)]
pub struct OrderApi {
    saga: Saga,
    /// The caps on open watches.
    watch_slots: Arc<Slots>,
}

impl OrderApi {
    /// Builds the handlers.
    pub fn new(saga: Saga, watch_slots: Arc<Slots>) -> Self {
        Self { saga, watch_slots }
    }

    /// An order the caller may see: their own, or any for an admin. Anything else is NOT_FOUND
    /// so ids cannot be probed.
    async fn visible(&self, principal: &Principal, id: &OrderId) -> Result<OrderRow, ServiceError> {
        let not_found = || ServiceError::NotFound(id.to_string());
        let order = self
            .saga
            .store()
            .get(id.as_str())
            .await?
            .ok_or_else(not_found)?;
        if order.user_id != principal.subject && !principal.is_admin() {
            return Err(not_found());
        }
        Ok(order)
    }
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::CreateOrderResponse>, Status> {
        let user = Principal::of(&request)?.subject.clone();
        let place = PlaceOrder::try_from(request.into_inner())?;
        let order = self.saga.place(&user, &place).await?;
        Ok(Response::new(pb::CreateOrderResponse {
            order: Some(pb::Order::from(&order)),
        }))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let id = OrderId::try_from(request.into_inner())?;
        let order = self.visible(&principal, &id).await?;
        Ok(Response::new(pb::GetOrderResponse {
            order: Some(pb::Order::from(&order)),
        }))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let listing = ListOrders::try_from((&principal, request.into_inner()))?;
        let rows = self
            .saga
            .store()
            .list(
                listing.user.as_deref(),
                listing.status,
                listing.after.as_ref(),
                listing.rows_to_read(),
            )
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(listing.answer(rows)))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::CancelOrderResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let cancel = CancelOrder::try_from(request.into_inner())?;
        let order = self.visible(&principal, &cancel.id).await?;
        let order = self.saga.cancel(order, &cancel.reason).await?;
        Ok(Response::new(pb::CancelOrderResponse {
            order: Some(pb::Order::from(&order)),
        }))
    }

    type WatchOrderStream = WatchStream;

    /// The stream is pushed: the watch subscribes to its order's changes, reads the order once,
    /// and is then woken by each change committed by any replica (see [`crate::watch`]).
    async fn watch_order(
        &self,
        request: Request<pb::WatchOrderRequest>,
    ) -> Result<Response<Self::WatchOrderStream>, Status> {
        let principal = Principal::of(&request)?.clone();
        let watch = WatchOrder::try_from(request.into_inner())?;
        let slot = self
            .watch_slots
            .take(&principal.subject)
            .map_err(ServiceError::WatchCap)?;
        // Subscribe first: a change committed after the read below is then announced to this
        // subscription, and one committed before it is in the read.
        let hub = self.saga.store().hub();
        let subscription = hub.subscribe(watch.id.as_str());
        let order = self.visible(&principal, &watch.id).await?;
        hub.offer(order);
        self.saga.hooks().at(Step::WatchAfterRead).await;
        let ends = tokio::time::Instant::now() + WATCH_LIMIT;
        Ok(Response::new(watch::stream(
            subscription,
            slot,
            watch.seen,
            ends,
        )))
    }
}
