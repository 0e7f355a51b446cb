use agora_platform::error::ApiError;

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

/// The (field, description) pairs a refusal lists; a refusal of another kind lists none.
fn violations(error: ServiceError) -> Vec<(String, String)> {
    let ServiceError::InvalidRequest(violations) = error else {
        return Vec::new();
    };
    let ApiError::InvalidArgument { violations, .. } = violations.into_error() else {
        return Vec::new();
    };
    violations
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect()
}

const A: &str = "0190a5e4-0000-7000-8000-000000000001";
const B: &str = "0190a5e4-0000-7000-8000-000000000002";

#[test]
fn a_valid_request_keeps_its_lines_in_order() {
    let parsed = PlaceOrder::try_from(request(vec![(B, 2), (A, 1)])).expect("valid");
    assert_eq!(parsed.lines[0].product_id, B);
    assert_eq!(parsed.lines[1].quantity, 1);
}

#[test]
fn a_valid_request_keeps_its_key_address_and_the_fingerprint_of_what_was_sent() {
    let mut sent = request(vec![(&A.to_uppercase(), 1)]);
    sent.shipping_address = Some(pb::ShippingAddress {
        recipient: "Ada".into(),
        line1: "1 Loop Road".into(),
        city: "Lovelace".into(),
        country_code: "GB".into(),
        ..Default::default()
    });
    let parsed = PlaceOrder::try_from(sent.clone()).expect("valid");
    assert_eq!(parsed.idempotency_key, "k-1");
    assert_eq!(
        parsed.lines[0].product_id, A,
        "ids are kept in canonical form"
    );
    assert_eq!(parsed.shipping_address, sent.shipping_address);
    assert_eq!(parsed.fingerprint, fingerprint(&sent));
}

#[test]
fn every_violation_is_reported_with_its_field() {
    let mut bad = request(vec![(A, 0), (A, 1000), ("nope", 1)]);
    bad.idempotency_key = String::new();
    bad.shipping_address = Some(pb::ShippingAddress {
        country_code: "de".into(),
        ..Default::default()
    });
    let status: tonic::Status = PlaceOrder::try_from(bad).expect_err("invalid").into();
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
fn a_request_with_every_field_wrong_reports_every_violation() {
    let mut bad = request(vec![("nope", 0), (A, 1), (A, 1)]);
    bad.idempotency_key = "tab\there".into();
    bad.shipping_address = Some(pb::ShippingAddress {
        line2: "x".repeat(201),
        region: "x".repeat(101),
        postal_code: "x".repeat(21),
        country_code: "GBR".into(),
        ..Default::default()
    });
    let found = violations(PlaceOrder::try_from(bad).expect_err("invalid"));
    let expected = [
        (
            "idempotency_key",
            "must be 1 to 128 printable ASCII characters",
        ),
        ("lines[0].product_id", "must be a UUID"),
        ("lines[0].quantity", "must be 1 to 999"),
        (
            "lines[2].product_id",
            "names a product already ordered in another line",
        ),
        ("shipping_address.recipient", "must be 1 to 100 characters"),
        ("shipping_address.line1", "must be 1 to 200 characters"),
        ("shipping_address.line2", "must be at most 200 characters"),
        ("shipping_address.city", "must be 1 to 100 characters"),
        ("shipping_address.region", "must be at most 100 characters"),
        (
            "shipping_address.postal_code",
            "must be at most 20 characters",
        ),
        (
            "shipping_address.country_code",
            "must be a two-letter upper-case ISO 3166-1 code",
        ),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(f, d)| ((*f).to_owned(), (*d).to_owned()))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn an_order_without_lines_or_with_too_many_is_refused_on_lines() {
    let empty = violations(PlaceOrder::try_from(request(vec![])).expect_err("no lines"));
    assert_eq!(
        empty,
        vec![("lines".to_owned(), "must have at least one line".to_owned())]
    );
    let ids: Vec<String> = (0..=MAX_LINES)
        .map(|i| format!("0190a5e4-0000-7000-8000-{i:012}"))
        .collect();
    let many = request(ids.iter().map(|id| (id.as_str(), 1)).collect());
    let found = violations(PlaceOrder::try_from(many).expect_err("too many lines"));
    assert_eq!(
        found,
        vec![("lines".to_owned(), "must have at most 50 lines".to_owned())]
    );
}

#[test]
fn equal_requests_share_a_fingerprint_and_different_ones_do_not() {
    let one = fingerprint(&request(vec![(A, 1)]));
    assert_eq!(one, fingerprint(&request(vec![(A, 1)])));
    assert_ne!(one, fingerprint(&request(vec![(A, 2)])));
}
