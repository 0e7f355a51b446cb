use tonic_types::StatusExt;

use super::*;

fn row(status: OrderStatus) -> OrderRow {
    OrderRow {
        id: "0190a5e4-0000-7000-8000-000000000001".into(),
        user_id: "0190a5e4-0000-7000-8000-00000000000a".into(),
        status,
        body: pb::Order {
            lines: vec![pb::OrderLine {
                product_id: "p".into(),
                quantity: 2,
                ..Default::default()
            }],
            ..Default::default()
        },
        currency_code: "EUR".into(),
        total_minor: 1_250,
        cancel_reason: String::new(),
        failure_reason: String::new(),
        created_at: 1_000_000,
        updated_at: 2_000_000,
        version: 3,
    }
}

#[test]
fn statuses_map_to_the_contracts_values_and_back() {
    for status in [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Cancelled,
        OrderStatus::Failed,
    ] {
        assert_eq!(status_filter(pb::OrderStatus::from(status)), Some(status));
    }
    assert_eq!(status_filter(pb::OrderStatus::Unspecified), None);
}

#[test]
fn a_stored_order_shows_its_status_total_and_times_in_the_contracts_terms() {
    let order = pb::Order::from(&row(OrderStatus::Confirmed));
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    assert_eq!(order.lines.len(), 1);
    let total = order.total.expect("a total");
    assert_eq!(
        (total.currency_code.as_str(), total.amount_minor),
        ("EUR", 1_250)
    );
    assert_eq!(order.create_time.map(|t| t.seconds), Some(1));
    assert_eq!(order.update_time.map(|t| t.seconds), Some(2));
    let placed = OrderPlaced::from(&row(OrderStatus::Pending));
    assert_eq!(placed.lines[0].quantity, 2);
    let watched = pb::WatchOrderResponse::from(&row(OrderStatus::Pending));
    assert_eq!(watched.resume_token, "3");
}

#[test]
fn tokens_are_versions_and_anything_else_is_refused() {
    assert_eq!(parse_resume_token(&resume_token(42)), Some(42));
    for bad in ["", "-1", "+3", "1.5", "abc", "99999999999999999999", " 7"] {
        assert_eq!(parse_resume_token(bad), None, "{bad:?}");
    }
}

#[test]
fn refusals_keep_the_contracts_codes_reasons_and_details() {
    let not_found = Status::from(ServiceError::NotFound("o-1".into()));
    assert_eq!(not_found.code(), Code::NotFound);
    assert_eq!(
        not_found
            .get_details_resource_info()
            .map(|i| (i.resource_type, i.resource_name)),
        Some(("order".into(), "o-1".into()))
    );
    let short = Status::from(ServiceError::OutOfStock(vec![(
        "p".into(),
        "2 left".into(),
    )]));
    assert_eq!(short.code(), Code::FailedPrecondition);
    assert_eq!(short.message(), "not enough stock for the order");
    assert_eq!(
        short.get_details_error_info().map(|i| i.reason),
        Some("OUT_OF_STOCK".into())
    );
    assert_eq!(
        short
            .get_details_precondition_failure()
            .map(|f| f.violations[0].subject.clone()),
        Some("p".into())
    );
    let too_large = Status::from(ServiceError::Money(MoneyError::TooLarge));
    assert_eq!(too_large.code(), Code::InvalidArgument);
    let busy = Status::from(ServiceError::KeyInProgress);
    assert_eq!(busy.code(), Code::Aborted);
    let down = Status::from(ServiceError::Unreachable("inventory"));
    assert_eq!(down.code(), Code::Unavailable);
    assert!(
        down.message()
            .starts_with("the inventory service cannot be reached")
    );
}

#[test]
fn internal_failures_are_answered_without_their_story() {
    let status = Status::from(ServiceError::internal("a checked product vanished"));
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(status.message(), "internal error");
}
