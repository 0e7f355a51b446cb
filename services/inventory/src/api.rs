//! The gRPC handlers of `agora.inventory.v1.InventoryService`. Each parses its request into a
//! domain value (every field violation at once, see [`crate::wire::requests`]), calls the
//! store, and maps the result ([`crate::wire`]). Who may call what is enforced before these run,
//! from the contract's access options.

use std::time::Duration;

use agora_contracts::agora::inventory::v1::{
    self as pb, inventory_service_server::InventoryService,
};
use agora_platform::access::Principal;
use tonic::{Request, Response, Status};

use crate::{
    domain::{OrderId, ProductId},
    error::ServiceError,
    store::{Store, StoreError, now_micros},
    wire::{self, Adjustment, MovementsQuery, NewReservation, Release, StockBatch, TtlPolicy},
};

/// The inventory service's handlers and what they share.
#[derive(Debug)]
pub struct InventoryApi {
    store: Store,
    /// How long reservations hold, which Reserve requests are read under.
    ttl: TtlPolicy,
}

impl InventoryApi {
    /// Builds the handlers over `store`; a reservation holds `default_ttl` unless it asks for
    /// another TTL, at most `max_ttl`.
    pub fn new(store: Store, default_ttl: Duration, max_ttl: Duration) -> Self {
        Self {
            store,
            ttl: TtlPolicy {
                default: default_ttl,
                max: max_ttl,
            },
        }
    }
}

/// A store failure is answered as the [`ServiceError`] it is.
impl From<StoreError> for Status {
    fn from(error: StoreError) -> Self {
        ServiceError::from(error).into()
    }
}

#[tonic::async_trait]
impl InventoryService for InventoryApi {
    async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::GetStockResponse>, Status> {
        let product_id = ProductId::try_from(request.into_inner())?;
        let level = self.store.level(&product_id).await?;
        let level = level.ok_or(ServiceError::NoStock(product_id))?;
        Ok(Response::new(pb::GetStockResponse {
            stock_level: Some(wire::stock_level(&level)),
        }))
    }

    async fn batch_get_stock(
        &self,
        request: Request<pb::BatchGetStockRequest>,
    ) -> Result<Response<pb::BatchGetStockResponse>, Status> {
        let batch = StockBatch::try_from(request.into_inner())?;
        let levels = self.store.levels(&batch.product_ids).await?;
        Ok(Response::new(wire::stock_batch(batch.product_ids, &levels)))
    }

    async fn adjust_stock(
        &self,
        request: Request<pb::AdjustStockRequest>,
    ) -> Result<Response<pb::AdjustStockResponse>, Status> {
        let actor = Principal::of(&request)?.subject.clone();
        let Adjustment {
            product_id,
            delta,
            reason,
            note,
        } = Adjustment::try_from(request.into_inner())?;
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
        let query = MovementsQuery::try_from(request.into_inner())?;
        let page = self
            .store
            .movements(&query.product_id, query.page_size, query.token)
            .await?;
        Ok(Response::new(wire::movements_page(
            &query.product_id,
            &page,
        )))
    }

    async fn reserve(
        &self,
        request: Request<pb::ReserveRequest>,
    ) -> Result<Response<pb::ReserveResponse>, Status> {
        let actor = Principal::of(&request)?.subject.clone();
        let NewReservation {
            order_id,
            lines,
            ttl,
        } = NewReservation::try_from((request.into_inner(), self.ttl))?;
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
        let order_id = OrderId::try_from(request.into_inner())?;
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
        let release = Release::try_from(request.into_inner())?;
        let reservation = self
            .store
            .release(
                &release.order_id,
                &release.reason,
                release.return_committed,
                &actor,
            )
            .await?;
        Ok(Response::new(pb::ReleaseReservationResponse {
            reservation: Some(wire::reservation(&reservation, now_micros())),
        }))
    }
}
