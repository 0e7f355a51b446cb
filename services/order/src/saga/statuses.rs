//! Upstream answers turned into the order contract's statuses.

use agora_platform::{
    context::current_request_id,
    error::{ApiError, ERROR_DOMAIN, FieldViolations},
};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::money::MoneyError;

/// FAILED_PRECONDITION with its reason and one `google.rpc.PreconditionFailure` violation per
/// product (kind, product id, why), so clients can point at the lines to fix.
pub(super) fn precondition(
    reason: &'static str,
    message: String,
    kind: &str,
    products: &[(String, String)],
) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, []);
    for (product_id, description) in products {
        details.add_precondition_failure_violation(kind, product_id, description);
    }
    if let Some(request_id) = current_request_id() {
        details.set_request_info(request_id, "");
    }
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

/// Inventory's refusal of a reservation, in the order contract's terms.
pub(super) fn reserve_refused(status: &Status) -> Status {
    match status.code() {
        Code::FailedPrecondition => {
            let short: Vec<(String, String)> = status
                .get_details_precondition_failure()
                .map(|failure| {
                    failure
                        .violations
                        .into_iter()
                        .map(|v| (v.subject, v.description))
                        .collect()
                })
                .unwrap_or_default();
            precondition(
                "OUT_OF_STOCK",
                "not enough stock for the order".into(),
                "STOCK",
                &short,
            )
        }
        Code::NotFound => {
            let missing: Vec<(String, String)> = status
                .get_details_resource_info()
                .map(|info| vec![(info.resource_name, "has no stock record".to_owned())])
                .unwrap_or_default();
            precondition(
                "PRODUCT_UNAVAILABLE",
                "a product cannot be ordered".into(),
                "PRODUCT",
                &missing,
            )
        }
        _ => ApiError::internal(anyhow::anyhow!("reserve refused: {status:?}")).into(),
    }
}

/// UNAVAILABLE naming the upstream, for failures that mean "could not reach it".
pub(super) fn unreachable(service: &str, status: &Status) -> Status {
    tracing::warn!(service, code = ?status.code(), message = status.message(), "upstream call failed");
    Status::unavailable(format!(
        "the {service} service cannot be reached; nothing was stored, retry with the same key"
    ))
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

/// An order whose money cannot be computed, in the order contract's terms: INVALID_ARGUMENT on
/// `lines` for a total that does not fit, FAILED_PRECONDITION for lines in several currencies.
pub(super) fn refused_money(error: MoneyError) -> Status {
    match error {
        MoneyError::TooLarge => {
            let mut violations = FieldViolations::default();
            violations.add(
                "lines",
                "the order's total is too large: order fewer units or split the order",
            );
            violations.into_error().into()
        }
        MoneyError::MixedCurrencies => ApiError::FailedPrecondition {
            reason: "MIXED_CURRENCIES",
            message: "the products are not priced in one currency".into(),
        }
        .into(),
    }
}
