//! Compensation: giving a reservation back when its order will not be stored, and taking over
//! claims whose holders' leases ran out.

use agora_contracts::agora::inventory::v1 as inv;
use tonic::{Code, Status};

use super::{Ran, Saga, Step, statuses::unreachable};
use crate::{
    domain::OrderId,
    error::ServiceError,
    metrics::metrics,
    store::{Held, Hold, StoreError},
    wire::PlaceOrder,
};

impl Saga {
    /// Goes on with a claim taken over from a holder whose lease ran out: that generation's
    /// order can no longer be stored, so its stock goes back; then the saga runs again under a
    /// fresh order id.
    pub(super) async fn resume(
        &self,
        request: &PlaceOrder,
        hold: Hold,
    ) -> Result<Ran, ServiceError> {
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
    pub async fn recover(&self, seen: &Held) -> Result<bool, StoreError> {
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
        self.store.drop_claim(&hold).await
    }

    /// Compensates a saga that stored nothing after its reservation may have landed: releases
    /// the reservation and drops the claim; when inventory cannot be reached, lets the claim go
    /// so the next retry (or recovery) takes it over at once. Returns whether the stock was
    /// given back (a compensation, counted once here).
    pub(super) async fn give_up(&self, hold: &Hold) -> Result<bool, StoreError> {
        if self
            .release(hold.order_id.as_str(), "order not placed")
            .await
            .is_ok()
        {
            self.store.drop_claim(hold).await?;
            metrics().compensated();
            Ok(true)
        } else {
            self.store.let_go(hold).await?;
            Ok(false)
        }
    }

    /// Releases the reservation of an order that was not placed (or failed); an order without
    /// one has nothing to release, and a committed one is left as it is by inventory.
    ///
    /// # Errors
    /// Inventory's answer, when it could not be reached or refused.
    pub async fn release(&self, order_id: &str, reason: &str) -> Result<(), Status> {
        self.release_with(order_id, reason, false).await
    }

    /// Releases an order's reservation; `return_committed` (a cancellation) returns sold units.
    pub(super) async fn release_with(
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
            .call_inventory(message, |mut client, request| async move {
                client.release_reservation(request).await
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
}
