use super::*;

#[test]
fn a_shortage_names_every_short_product_with_what_was_asked_and_what_is_left() {
    let product = |raw: &str| ProductId::parse(raw).expect("a UUID");
    let status = Status::from(ServiceError::from(StoreError::InsufficientStock(vec![
        Shortage {
            product_id: product("0190a0b0-0000-7000-8000-00000000000a"),
            requested: 3,
            available: 1,
        },
        Shortage {
            product_id: product("0190a0b0-0000-7000-8000-00000000000b"),
            requested: 2,
            available: 0,
        },
    ])));
    assert_eq!(status.code(), Code::FailedPrecondition);
    let details = status.get_error_details();
    assert_eq!(
        details.error_info().map(|info| info.reason.as_str()),
        Some(INSUFFICIENT_STOCK)
    );
    let violations = &details
        .precondition_failure()
        .expect("a PreconditionFailure")
        .violations;
    assert_eq!(violations.len(), 2);
    assert_eq!(violations[0].r#type, "STOCK");
    assert_eq!(
        violations[0].subject,
        "0190a0b0-0000-7000-8000-00000000000a"
    );
    assert_eq!(violations[0].description, "requested 3 units, 1 available");
}

#[test]
fn timestamps_keep_their_microseconds() {
    let ts = timestamp(1_700_000_000_123_456);
    assert_eq!((ts.seconds, ts.nanos), (1_700_000_000, 123_456_000));
}
