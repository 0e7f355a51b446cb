//! What a valid CreateOrder request is: its idempotency key, its lines (each product once, a
//! bounded quantity) and its shipping address, parsed once into a [`PlaceOrder`].

use agora_contracts::agora::order::v1 as pb;
use agora_platform::error::FieldViolations;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::domain::{MAX_KEY_LEN, MAX_LINES, MAX_QUANTITY};
use crate::error::ServiceError;

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

/// Checks the idempotency key: printable ASCII, 1 to [`MAX_KEY_LEN`] bytes.
fn check_key(violations: &mut FieldViolations, key: &str) {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        violations.add(
            "idempotency_key",
            format!("must be 1 to {MAX_KEY_LEN} printable ASCII characters"),
        );
    }
}

/// Checks the lines and returns the valid ones, product ids in canonical form.
fn check_lines(violations: &mut FieldViolations, input: &[pb::OrderLineInput]) -> Vec<LineRequest> {
    if input.is_empty() {
        violations.add("lines", "must have at least one line");
    }
    if input.len() > MAX_LINES {
        violations.add("lines", format!("must have at most {MAX_LINES} lines"));
    }
    let mut lines: Vec<LineRequest> = Vec::with_capacity(input.len());
    for (i, line) in input.iter().enumerate() {
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
    lines
}

impl TryFrom<pb::CreateOrderRequest> for PlaceOrder {
    type Error = ServiceError;

    /// Parses a CreateOrder request, collecting every violation.
    fn try_from(request: pb::CreateOrderRequest) -> Result<Self, Self::Error> {
        // Of the request as sent, before anything is normalised.
        let fingerprint = fingerprint(&request);
        let mut violations = FieldViolations::default();
        check_key(&mut violations, &request.idempotency_key);
        let lines = check_lines(&mut violations, &request.lines);
        if let Some(address) = &request.shipping_address {
            check_address(&mut violations, address);
        }
        if !violations.is_empty() {
            return Err(violations.into());
        }
        Ok(Self {
            idempotency_key: request.idempotency_key,
            lines,
            shipping_address: request.shipping_address,
            fingerprint,
        })
    }
}

#[cfg(test)]
mod tests;
