//! The gRPC handlers of `agora.inventory.v1.InventoryService`. Each parses its request into
//! domain types (collecting every field violation), calls the store, and maps the result. Who may
//! call what is enforced before these run, from the contract's access options.

use std::{collections::HashMap, time::Duration};

use agora_contracts::agora::inventory::v1::{
    self as pb, inventory_service_server::InventoryService,
};
use agora_platform::{
    access::Principal,
    error::{ApiError, FieldViolations},
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{self, Lines, MAX_BATCH, OrderId, PageToken, ProductId},
    store::{Store, now_micros},
    wire,
};

/// The inventory service's handlers and what they share.
#[derive(Debug)]
pub struct InventoryApi {
    store: Store,
    /// The TTL of a reservation that asks for none.
    default_ttl: Duration,
    /// The longest TTL a reservation may ask for.
    max_ttl: Duration,
}

/// Records violations from a domain parser that reports several at once.
fn add_all(violations: &mut FieldViolations, found: Vec<domain::Violation>) {
    for (field, description) in found {
        violations.add(field, description);
    }
}

/// The parsed values of a request whose violations were all empty; a missing value then is a bug.
fn parsed<T>(value: Option<T>) -> Result<T, Status> {
    value.ok_or_else(|| ApiError::internal(anyhow::anyhow!("a parsed field is missing")).into())
}

impl InventoryApi {
    /// Builds the handlers over `store`.
    pub fn new(store: Store, default_ttl: Duration, max_ttl: Duration) -> Self {
        Self {
            store,
            default_ttl,
            max_ttl,
        }
    }
}

#[tonic::async_trait]
impl InventoryService for InventoryApi {
    async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::GetStockResponse>, Status> {
        let mut violations = FieldViolations::default();
        let product_id = violations.take(
            "product_id",
            ProductId::parse(&request.get_ref().product_id),
        );
        violations.finish()?;
        let product_id = parsed(product_id)?;
        let level = self
            .store
            .level(&product_id)
            .await?
            .ok_or_else(|| ApiError::NotFound {
                resource: "stock",
                id: product_id.to_string(),
            })?;
        Ok(Response::new(pb::GetStockResponse {
            stock_level: Some(wire::stock_level(&level)),
        }))
    }

    async fn batch_get_stock(
        &self,
        request: Request<pb::BatchGetStockRequest>,
    ) -> Result<Response<pb::BatchGetStockResponse>, Status> {
        let raw = &request.get_ref().product_ids;
        let mut violations = FieldViolations::default();
        if raw.is_empty() {
            violations.add("product_ids", "must name at least one product");
        }
        if raw.len() > MAX_BATCH {
            violations.add(
                "product_ids",
                format!("must name at most {MAX_BATCH} products"),
            );
        }
        let mut ids: Vec<ProductId> = Vec::with_capacity(raw.len());
        for (i, id) in raw.iter().enumerate() {
            if let Some(id) = violations.take(&format!("product_ids[{i}]"), ProductId::parse(id)) {
                // A repeated id is answered once, at its first position.
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        violations.finish()?;
        let mut found: HashMap<ProductId, pb::StockLevel> = self
            .store
            .levels(&ids)
            .await?
            .iter()
            .map(|level| (level.product_id.clone(), wire::stock_level(level)))
            .collect();
        let mut response = pb::BatchGetStockResponse::default();
        for id in ids {
            match found.remove(&id) {
                Some(level) => response.stock_levels.push(level),
                None => response.missing_product_ids.push(id.to_string()),
            }
        }
        Ok(Response::new(response))
    }

    async fn adjust_stock(
        &self,
        request: Request<pb::AdjustStockRequest>,
    ) -> Result<Response<pb::AdjustStockResponse>, Status> {
        let actor = Principal::of(&request)?.subject.clone();
        let request = request.into_inner();
        let mut violations = FieldViolations::default();
        let product_id = violations.take("product_id", ProductId::parse(&request.product_id));
        let delta = violations.take("delta", domain::adjustment_delta(request.delta));
        let reason = wire::parse_adjustment_reason(request.reason);
        if reason.is_none() {
            violations.add(
                "reason",
                "must be one of RESTOCK, CORRECTION, DAMAGE, RETURN",
            );
        }
        let note = violations.take("note", domain::note(&request.note));
        violations.finish()?;
        let (product_id, delta, reason, note) = (
            parsed(product_id)?,
            parsed(delta)?,
            parsed(reason)?,
            parsed(note)?,
        );
        let level = self
            .store
            .adjust(&product_id, delta, reason, &note, &actor)
            .await?;
        tracing::info!(%product_id, delta, reason = reason.name(), actor, "stock adjusted");
        Ok(Response::new(pb::AdjustStockResponse {
            stock_level: Some(wire::stock_level(&level)),
        }))
    }

    async fn list_movements(
        &self,
        request: Request<pb::ListMovementsRequest>,
    ) -> Result<Response<pb::ListMovementsResponse>, Status> {
        let request = request.into_inner();
        let mut violations = FieldViolations::default();
        let product_id = violations.take("product_id", ProductId::parse(&request.product_id));
        let page_size = violations.take("page_size", domain::page_size(request.page_size));
        // A token is bound to its product, so it can only be read once the product id is known.
        let token = product_id.as_ref().and_then(|product_id| {
            violations.take(
                "page_token",
                PageToken::decode(product_id, &request.page_token),
            )
        });
        violations.finish()?;
        let (product_id, page_size, token) =
            (parsed(product_id)?, parsed(page_size)?, parsed(token)?);
        let page = self.store.movements(&product_id, page_size, token).await?;
        Ok(Response::new(pb::ListMovementsResponse {
            movements: page.movements.iter().map(wire::movement).collect(),
            next_page_token: page
                .next
                .map(|next| PageToken::encode(&product_id, next.before))
                .unwrap_or_default(),
        }))
    }

    async fn reserve(
        &self,
        request: Request<pb::ReserveRequest>,
    ) -> Result<Response<pb::ReserveResponse>, Status> {
        let actor = Principal::of(&request)?.subject.clone();
        let request = request.into_inner();
        let mut violations = FieldViolations::default();
        let order_id = violations.take("order_id", OrderId::parse(&request.order_id));
        let lines = match Lines::parse(
            request
                .lines
                .iter()
                .map(|line| (line.product_id.as_str(), line.quantity)),
        ) {
            Ok(lines) => Some(lines),
            Err(found) => {
                add_all(&mut violations, found);
                None
            }
        };
        let requested_ttl = request
            .ttl
            .map(|ttl| Duration::try_from(ttl).map_err(|_| ()));
        let ttl = violations.take(
            "ttl",
            domain::reservation_ttl(requested_ttl, self.default_ttl, self.max_ttl),
        );
        violations.finish()?;
        let (order_id, lines, ttl) = (parsed(order_id)?, parsed(lines)?, parsed(ttl)?);
        let reservation = self.store.reserve(&order_id, &lines, ttl, &actor).await?;
        tracing::info!(%order_id, lines = lines.as_slice().len(), actor, "stock reserved");
        Ok(Response::new(pb::ReserveResponse {
            reservation: Some(wire::reservation(&reservation, now_micros())),
        }))
    }

    async fn commit_reservation(
        &self,
        request: Request<pb::CommitReservationRequest>,
    ) -> Result<Response<pb::CommitReservationResponse>, Status> {
        let actor = Principal::of(&request)?.subject.clone();
        let mut violations = FieldViolations::default();
        let order_id = violations.take("order_id", OrderId::parse(&request.get_ref().order_id));
        violations.finish()?;
        let order_id = parsed(order_id)?;
        let reservation = self.store.commit(&order_id, &actor).await?;
        Ok(Response::new(pb::CommitReservationResponse {
            reservation: Some(wire::reservation(&reservation, now_micros())),
        }))
    }

    async fn release_reservation(
        &self,
        request: Request<pb::ReleaseReservationRequest>,
    ) -> Result<Response<pb::ReleaseReservationResponse>, Status> {
        let actor = Principal::of(&request)?.subject.clone();
        let request = request.into_inner();
        let mut violations = FieldViolations::default();
        let order_id = violations.take("order_id", OrderId::parse(&request.order_id));
        let reason = violations.take("reason", domain::note(&request.reason));
        violations.finish()?;
        let (order_id, reason) = (parsed(order_id)?, parsed(reason)?);
        let reservation = self
            .store
            .release(&order_id, &reason, request.return_committed, &actor)
            .await?;
        Ok(Response::new(pb::ReleaseReservationResponse {
            reservation: Some(wire::reservation(&reservation, now_micros())),
        }))
    }
}
