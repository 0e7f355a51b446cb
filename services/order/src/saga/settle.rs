//! Settling a stored order: committing its reservation, or cancelling it.

use agora_contracts::agora::inventory::v1 as inv;
use tonic::Code;

use super::{Saga, statuses::unreachable};
use crate::{
    domain::Status as OrderStatus,
    error::ServiceError,
    metrics::{Order, metrics},
    store::OrderRow,
};

impl Saga {
    /// Commits a PENDING order's reservation and confirms it; a reservation that was released
    /// or expired fails the order. A commit that cannot be done now leaves it PENDING.
    pub async fn finish(&self, order: &OrderRow) {
        let message = inv::CommitReservationRequest {
            order_id: order.id.clone(),
        };
        let committed = self
            .call_inventory(message, |mut client, request| async move {
                client.commit_reservation(request).await
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
                .map(|confirmed| {
                    // Counted by whoever confirmed it: once, whether the saga, a retry or
                    // recovery.
                    if confirmed {
                        metrics().order(Order::Placed);
                    }
                }),
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
                    metrics().order(Order::Failed);
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
    pub async fn cancel(&self, order: OrderRow, reason: &str) -> Result<OrderRow, ServiceError> {
        match order.status {
            OrderStatus::Cancelled => return Ok(order),
            OrderStatus::Failed => {
                return Err(ServiceError::OrderFailed);
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
        if self.store.cancel(&order, reason).await? {
            metrics().order(Order::Cancelled);
        }
        self.store
            .get(&order.id)
            .await?
            .ok_or_else(|| ServiceError::internal("a cancelled order vanished"))
    }
}
