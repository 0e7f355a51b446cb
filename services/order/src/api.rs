//! The gRPC handlers of `agora.order.v1.OrderService`. Each parses its request into domain types,
//! checks who may see the order, and calls the saga or the store.

use std::{sync::Arc, time::Duration};

use agora_contracts::agora::order::v1::{self as pb, order_service_server::OrderService};
use agora_platform::{
    access::Principal,
    error::{ApiError, FieldViolations},
    paging,
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{self, OrderId, Status as OrderStatus},
    saga::{Saga, Step},
    store::{Cursor, OrderRow},
    watch::{self, Slots, WatchStream},
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
    async fn visible(&self, principal: &Principal, raw_id: &str) -> Result<OrderRow, Status> {
        let id = OrderId::parse(raw_id).map_err(|e| ApiError::invalid_field("order_id", e))?;
        self.visible_id(principal, &id).await
    }

    async fn visible_id(&self, principal: &Principal, id: &OrderId) -> Result<OrderRow, Status> {
        let raw_id = id.as_str();
        let not_found = || ApiError::NotFound {
            resource: "order",
            id: raw_id.to_owned(),
        };
        let order = self
            .saga
            .store()
            .get(id.as_str())
            .await?
            .ok_or_else(not_found)?;
        if order.user_id != principal.subject && !principal.is_admin() {
            return Err(not_found().into());
        }
        Ok(order)
    }
}

/// Reads a ListOrders page token, bound to the listing's user and status filters: `None` for
/// the first page.
fn parse_token(
    token: &str,
    user: Option<&str>,
    status: Option<OrderStatus>,
) -> Result<Option<Cursor>, &'static str> {
    const REFUSED: &str = "is malformed or was issued for other filters";
    let cursor: Option<Cursor> =
        paging::decode_token(token, &(user, status.map(OrderStatus::as_str)))
            .map_err(|_| REFUSED)?;
    match cursor {
        Some((created, id)) => {
            let id = OrderId::parse(&id).map_err(|_| REFUSED)?;
            Ok(Some((created, id.to_string())))
        }
        None => Ok(None),
    }
}

/// The token of the page after `last`, bound like [`parse_token`] reads it.
fn page_token(last: &OrderRow, user: Option<&str>, status: Option<OrderStatus>) -> String {
    paging::encode_token(
        &(last.created_at, &last.id),
        &(user, status.map(OrderStatus::as_str)),
    )
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::CreateOrderResponse>, Status> {
        let user = Principal::of(&request)?.subject.clone();
        let place = domain::parse_create(request.get_ref()).map_err(FieldViolations::into_error)?;
        let order = self.saga.place(&user, &place).await?;
        Ok(Response::new(pb::CreateOrderResponse {
            order: Some(order.to_proto()),
        }))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let order = self
            .visible(Principal::of(&request)?, &request.get_ref().order_id)
            .await?;
        Ok(Response::new(pb::GetOrderResponse {
            order: Some(order.to_proto()),
        }))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let request = request.into_inner();
        let mut violations = FieldViolations::default();
        let size = violations.take("page_size", paging::page_size(request.page_size));
        let user: Option<String> = match request.user_id.as_str() {
            "" => Some(principal.subject.clone()),
            "-" => None,
            other => match uuid::Uuid::parse_str(other) {
                Ok(id) => Some(id.to_string()),
                Err(_) => {
                    violations.add("user_id", "must be a user id, \"-\" or empty");
                    None
                }
            },
        };
        let status = pb::OrderStatus::try_from(request.status)
            .map_err(|_| ApiError::invalid_field("status", "unknown status"))?;
        let status = OrderStatus::from_proto(status);
        let after =
            parse_token(&request.page_token, user.as_deref(), status).unwrap_or_else(|problem| {
                violations.add("page_token", problem);
                None
            });
        violations.finish()?;
        // Without violations the size was read, so the default is never used.
        let size = size.unwrap_or(paging::DEFAULT_PAGE_SIZE);
        if user.as_deref() != Some(principal.subject.as_str()) && !principal.is_admin() {
            return Err(ApiError::PermissionDenied(
                "only admins may list the orders of other users".into(),
            )
            .into());
        }
        // One more than the page tells whether another page follows.
        let mut rows = self
            .saga
            .store()
            .list(user.as_deref(), status, after.as_ref(), size + 1)
            .await?;
        let more = rows.len() > size;
        rows.truncate(size);
        let next_page_token = match rows.last() {
            Some(last) if more => page_token(last, user.as_deref(), status),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListOrdersResponse {
            orders: rows.iter().map(OrderRow::to_proto).collect(),
            next_page_token,
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::CancelOrderResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let reason = domain::parse_reason(&request.get_ref().reason)
            .map_err(|e| ApiError::invalid_field("reason", e))?;
        let order = self
            .visible(&principal, &request.get_ref().order_id)
            .await?;
        let order = self.saga.cancel(order, &reason).await?;
        Ok(Response::new(pb::CancelOrderResponse {
            order: Some(order.to_proto()),
        }))
    }

    type WatchOrderStream = WatchStream;

    /// The stream is pushed: the watch subscribes to its order's changes, reads the order once,
    /// and is then woken by each change committed by any replica (see [`crate::watch`]).
    async fn watch_order(
        &self,
        request: Request<pb::WatchOrderRequest>,
    ) -> Result<Response<Self::WatchOrderStream>, Status> {
        let principal = Principal::of(&request)?;
        let request = request.get_ref();
        let mut violations = FieldViolations::default();
        let id = violations.take("order_id", OrderId::parse(&request.order_id));
        let seen = match request.resume_token.as_str() {
            "" => Some(0),
            token => {
                let seen = watch::parse_resume_token(token);
                if seen.is_none() {
                    violations.add("resume_token", "is not a token this service issued");
                }
                seen
            }
        };
        violations.finish()?;
        let (Some(id), Some(seen)) = (id, seen) else {
            return Err(Status::internal("a checked request lost a field"));
        };
        let slot = self.watch_slots.take(&principal.subject)?;
        // Subscribe first: a change committed after the read below is then announced to this
        // subscription, and one committed before it is in the read.
        let hub = self.saga.store().hub();
        let subscription = hub.subscribe(id.as_str());
        let order = self.visible_id(principal, &id).await?;
        hub.offer(order);
        self.saga.hooks().at(Step::WatchAfterRead).await;
        let ends = tokio::time::Instant::now() + WATCH_LIMIT;
        Ok(Response::new(watch::stream(subscription, slot, seen, ends)))
    }
}
