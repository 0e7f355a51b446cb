//! The order's rules, without I/O: what a valid request is, the statuses and their moves, and the
//! fingerprint that tells a retry from a different request under the same idempotency key.
//! Its money (line and order totals, the one currency) is in [`money`].

use std::fmt;

use agora_contracts::agora::order::v1 as pb;
use agora_platform::error::FieldViolations;
use prost::Message;
use sha2::{Digest, Sha256};

pub mod money;

/// The most lines an order may have.
pub const MAX_LINES: usize = 50;
/// The most units of one product per order.
pub const MAX_QUANTITY: i64 = 999;
/// The longest idempotency key.
pub const MAX_KEY_LEN: usize = 128;
/// The longest cancel reason, in characters.
pub const MAX_REASON_LEN: usize = 500;

/// Where an order is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Stored with its stock reserved; being confirmed.
    Pending,
    /// Its stock is committed.
    Confirmed,
    /// Cancelled; its stock went back. Final.
    Cancelled,
    /// Failed after it was stored; its reservation was released. Final.
    Failed,
}

impl Status {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
            Status::Failed => "failed",
        }
    }

    /// Reads a stored name.
    pub fn parse(stored: &str) -> Option<Self> {
        Some(match stored {
            "pending" => Status::Pending,
            "confirmed" => Status::Confirmed,
            "cancelled" => Status::Cancelled,
            "failed" => Status::Failed,
            _ => return None,
        })
    }

    /// The contract's value.
    pub fn to_proto(self) -> pb::OrderStatus {
        match self {
            Status::Pending => pb::OrderStatus::Pending,
            Status::Confirmed => pb::OrderStatus::Confirmed,
            Status::Cancelled => pb::OrderStatus::Cancelled,
            Status::Failed => pb::OrderStatus::Failed,
        }
    }

    /// From the contract's value; `None` for UNSPECIFIED (any status).
    pub fn from_proto(status: pb::OrderStatus) -> Option<Self> {
        match status {
            pb::OrderStatus::Unspecified => None,
            pb::OrderStatus::Pending => Some(Status::Pending),
            pb::OrderStatus::Confirmed => Some(Status::Confirmed),
            pb::OrderStatus::Cancelled => Some(Status::Cancelled),
            pb::OrderStatus::Failed => Some(Status::Failed),
        }
    }

    /// Whether nothing changes the order any more.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Cancelled | Status::Failed)
    }
}

/// An order id: a UUID, kept in its canonical lower-case form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderId(String);

impl OrderId {
    /// A new, time-ordered id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// Parses an id sent by a client.
    ///
    /// # Errors
    /// Not a UUID.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        uuid::Uuid::parse_str(raw)
            .map(|id| Self(id.to_string()))
            .map_err(|_| "must be a UUID")
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One requested line: a product and a quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRequest {
    /// The product's id (a UUID).
    pub product_id: String,
    /// Units, 1 to 999.
    pub quantity: i64,
}

/// A CreateOrder request that passed validation.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    /// The client's idempotency key.
    pub idempotency_key: String,
    /// The lines, in request order, each product once.
    pub lines: Vec<LineRequest>,
    /// Where to ship, when given.
    pub shipping_address: Option<pb::ShippingAddress>,
    /// The request's fingerprint (see [`fingerprint`]).
    pub fingerprint: String,
}

/// A SHA-256 of the request's Protobuf encoding (prost writes fields in a fixed order, so equal
/// requests encode equally). The key itself is part of the request and hence of the hash, which
/// is harmless: only requests under the same key are ever compared.
pub fn fingerprint(request: &pb::CreateOrderRequest) -> String {
    let digest = Sha256::digest(request.encode_to_vec());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a text field's length in characters.
fn check_len(violations: &mut FieldViolations, field: &str, value: &str, min: usize, max: usize) {
    let len = value.chars().count();
    if len < min || len > max {
        if min == 0 {
            violations.add(field, format!("must be at most {max} characters"));
        } else {
            violations.add(field, format!("must be {min} to {max} characters"));
        }
    }
}

/// Validates a shipping address, field by field.
fn check_address(violations: &mut FieldViolations, address: &pb::ShippingAddress) {
    let f = |name: &str| format!("shipping_address.{name}");
    check_len(violations, &f("recipient"), &address.recipient, 1, 100);
    check_len(violations, &f("line1"), &address.line1, 1, 200);
    check_len(violations, &f("line2"), &address.line2, 0, 200);
    check_len(violations, &f("city"), &address.city, 1, 100);
    check_len(violations, &f("region"), &address.region, 0, 100);
    check_len(violations, &f("postal_code"), &address.postal_code, 0, 20);
    let code = &address.country_code;
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        violations.add(
            f("country_code"),
            "must be a two-letter upper-case ISO 3166-1 code",
        );
    }
}

/// Validates a CreateOrder request, collecting every violation.
///
/// # Errors
/// The field violations found.
pub fn parse_create(request: &pb::CreateOrderRequest) -> Result<PlaceOrder, FieldViolations> {
    let mut violations = FieldViolations::default();
    let key = &request.idempotency_key;
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        violations.add(
            "idempotency_key",
            format!("must be 1 to {MAX_KEY_LEN} printable ASCII characters"),
        );
    }
    if request.lines.is_empty() {
        violations.add("lines", "must have at least one line");
    }
    if request.lines.len() > MAX_LINES {
        violations.add("lines", format!("must have at most {MAX_LINES} lines"));
    }
    let mut lines: Vec<LineRequest> = Vec::with_capacity(request.lines.len());
    for (i, line) in request.lines.iter().enumerate() {
        match uuid::Uuid::parse_str(&line.product_id) {
            Ok(id) => {
                let product_id = id.to_string();
                if lines.iter().any(|l| l.product_id == product_id) {
                    violations.add(
                        format!("lines[{i}].product_id"),
                        "names a product already ordered in another line",
                    );
                }
                lines.push(LineRequest {
                    product_id,
                    quantity: line.quantity,
                });
            }
            Err(_) => violations.add(format!("lines[{i}].product_id"), "must be a UUID"),
        }
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            violations.add(
                format!("lines[{i}].quantity"),
                format!("must be 1 to {MAX_QUANTITY}"),
            );
        }
    }
    if let Some(address) = &request.shipping_address {
        check_address(&mut violations, address);
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(PlaceOrder {
        idempotency_key: key.clone(),
        lines,
        shipping_address: request.shipping_address.clone(),
        fingerprint: fingerprint(request),
    })
}

/// Validates a cancel reason.
///
/// # Errors
/// Longer than 500 characters.
pub fn parse_reason(reason: &str) -> Result<String, String> {
    if reason.chars().count() > MAX_REASON_LEN {
        return Err(format!("must be at most {MAX_REASON_LEN} characters"));
    }
    Ok(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(lines: Vec<(&str, i64)>) -> pb::CreateOrderRequest {
        pb::CreateOrderRequest {
            idempotency_key: "k-1".into(),
            lines: lines
                .into_iter()
                .map(|(id, quantity)| pb::OrderLineInput {
                    product_id: id.into(),
                    quantity,
                })
                .collect(),
            shipping_address: None,
        }
    }

    const A: &str = "0190a5e4-0000-7000-8000-000000000001";
    const B: &str = "0190a5e4-0000-7000-8000-000000000002";

    #[test]
    fn a_valid_request_keeps_its_lines_in_order() {
        let parsed = parse_create(&request(vec![(B, 2), (A, 1)])).expect("valid");
        assert_eq!(parsed.lines[0].product_id, B);
        assert_eq!(parsed.lines[1].quantity, 1);
    }

    #[test]
    fn every_violation_is_reported_with_its_field() {
        let mut bad = request(vec![(A, 0), (A, 1000), ("nope", 1)]);
        bad.idempotency_key = String::new();
        bad.shipping_address = Some(pb::ShippingAddress {
            country_code: "de".into(),
            ..Default::default()
        });
        let status: tonic::Status = parse_create(&bad).expect_err("invalid").into_error().into();
        use tonic_types::StatusExt;
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let fields: Vec<String> = status
            .get_details_bad_request()
            .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default();
        for field in [
            "idempotency_key",
            "lines[0].quantity",
            "lines[1].product_id",
            "lines[1].quantity",
            "lines[2].product_id",
            "shipping_address.recipient",
            "shipping_address.country_code",
        ] {
            assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
        }
    }

    #[test]
    fn equal_requests_share_a_fingerprint_and_different_ones_do_not() {
        let one = fingerprint(&request(vec![(A, 1)]));
        assert_eq!(one, fingerprint(&request(vec![(A, 1)])));
        assert_ne!(one, fingerprint(&request(vec![(A, 2)])));
    }

    #[test]
    fn statuses_round_trip_and_only_cancelled_and_failed_are_final() {
        for status in [
            Status::Pending,
            Status::Confirmed,
            Status::Cancelled,
            Status::Failed,
        ] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(Status::from_proto(status.to_proto()), Some(status));
        }
        assert!(!Status::Confirmed.is_final());
        assert!(Status::Cancelled.is_final());
    }

    #[test]
    fn ids_must_be_uuids() {
        assert!(OrderId::parse("order-1").is_err());
        assert!(OrderId::parse(A).is_ok());
    }
}
