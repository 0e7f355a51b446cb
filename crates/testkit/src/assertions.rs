//! What tests read from a rich gRPC status: its field violations, its reason, its missing
//! resource. Each asserts the status's code first, so a wrong code fails with the whole status.

use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// The fields named by an INVALID_ARGUMENT's `BadRequest` detail, in the order the service
/// reported them.
///
/// # Panics
/// When the status is not INVALID_ARGUMENT or carries no `BadRequest` detail.
pub fn violated_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .unwrap_or_else(|| panic!("a BadRequest detail in {status:?}"))
        .field_violations
        .iter()
        .map(|violation| violation.field.clone())
        .collect()
}

/// The `ErrorInfo` reason of a status, or an empty string when it has none.
pub fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

/// The `ResourceInfo` of a NOT_FOUND: (type, name).
///
/// # Panics
/// When the status is not NOT_FOUND or carries no `ResourceInfo` detail.
pub fn missing_resource(status: &Status) -> (String, String) {
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let details = status.get_error_details();
    let info = details
        .resource_info()
        .unwrap_or_else(|| panic!("a ResourceInfo detail in {status:?}"));
    (info.resource_type.clone(), info.resource_name.clone())
}

#[cfg(test)]
mod tests {
    use agora_platform::error::{ApiError, FieldViolations};

    use super::*;

    #[test]
    fn field_violations_are_read_in_the_order_they_were_reported() {
        let mut violations = FieldViolations::default();
        violations.add("sku", "is required");
        violations.add("name", "is required");
        let status: Status = violations.into_error().into();
        assert_eq!(violated_fields(&status), ["sku", "name"]);
    }

    #[test]
    fn a_missing_resource_is_read_from_its_resource_info() {
        let status: Status = ApiError::NotFound {
            resource: "stock",
            id: "p-1".into(),
        }
        .into();
        assert_eq!(missing_resource(&status), ("stock".into(), "p-1".into()));
        assert_eq!(reason(&status), "");
    }
}
