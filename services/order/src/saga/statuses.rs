//! Upstream answers read in the order service's terms: what inventory's refusal of a
//! reservation means for the order, and which failures mean "could not reach it".

use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::error::ServiceError;

/// Inventory's refusal of a reservation, as the order's failure.
pub(super) fn reserve_refused(status: &Status) -> ServiceError {
    match status.code() {
        Code::FailedPrecondition => ServiceError::OutOfStock(
            status
                .get_details_precondition_failure()
                .map(|failure| {
                    failure
                        .violations
                        .into_iter()
                        .map(|v| (v.subject, v.description))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        Code::NotFound => ServiceError::NoStockRecord(
            status
                .get_details_resource_info()
                .map(|info| info.resource_name)
                .into_iter()
                .collect(),
        ),
        _ => ServiceError::Internal(anyhow::anyhow!("reserve refused: {status:?}")),
    }
}

/// The upstream `service` could not be reached: logged here with what it answered, reported
/// to the caller without it.
pub(super) fn unreachable(service: &'static str, status: &Status) -> ServiceError {
    tracing::warn!(service, code = ?status.code(), message = status.message(), "upstream call failed");
    ServiceError::Unreachable(service)
}

/// Whether an upstream failure means the call may or may not have happened.
pub(super) fn is_transport(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Cancelled
            | Code::Internal
    )
}
