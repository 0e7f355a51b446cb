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

#[test]
fn a_missing_stock_record_is_not_found_with_its_resource() {
    let product = ProductId::parse("0190a0b0-0000-7000-8000-00000000000a").expect("a UUID");
    for error in [
        ServiceError::NoStock(product.clone()),
        ServiceError::from(StoreError::UnknownProduct(product.clone())),
    ] {
        let status = Status::from(error);
        assert_eq!(status.code(), Code::NotFound);
        let details = status.get_error_details();
        let resource = details.resource_info().expect("a ResourceInfo");
        assert_eq!(
            (
                resource.resource_type.as_str(),
                resource.resource_name.as_str()
            ),
            ("stock", product.as_str())
        );
    }
}

#[test]
fn a_refused_commit_says_why_in_its_reason() {
    let order =
        crate::domain::OrderId::parse("0190a0b0-0000-7000-8000-00000000000c").expect("a UUID");
    let status = Status::from(ServiceError::from(StoreError::ReservationExpired(order)));
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status.message(),
        "the reservation of order 0190a0b0-0000-7000-8000-00000000000c expired"
    );
    assert_eq!(
        status
            .get_error_details()
            .error_info()
            .map(|info| info.reason.clone()),
        Some("RESERVATION_EXPIRED".to_owned())
    );
}

#[test]
fn corrupt_data_is_answered_internal_without_its_cause() {
    let status = Status::from(ServiceError::from(StoreError::Corrupt(
        "stock row with id \"x\"".into(),
    )));
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(status.message(), "internal error");
}

#[test]
fn a_batch_answers_found_levels_in_the_order_asked_and_names_the_missing() {
    let id = |raw: &str| ProductId::parse(raw).expect("a UUID");
    let (a, b, c) = (
        id("0190a0b0-0000-7000-8000-00000000000a"),
        id("0190a0b0-0000-7000-8000-00000000000b"),
        id("0190a0b0-0000-7000-8000-00000000000c"),
    );
    let level = |product_id: &ProductId| Level {
        product_id: product_id.clone(),
        on_hand: 1,
        available: 1,
        reserved: 0,
        updated_at: 0,
    };
    let response = stock_batch(
        vec![c.clone(), b.clone(), a.clone()],
        &[level(&a), level(&c)],
    );
    let found: Vec<_> = response
        .stock_levels
        .iter()
        .map(|level| level.product_id.as_str())
        .collect();
    assert_eq!(found, [c.as_str(), a.as_str()]);
    assert_eq!(response.missing_product_ids, [b.to_string()]);
}
