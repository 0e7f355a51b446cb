use agora_platform::{access::ROLE_ADMIN, error::ApiError};

use super::*;

const A: &str = "0190a5e4-0000-7000-8000-000000000001";
const ADA: &str = "0190a5e4-0000-7000-8000-00000000000a";
const BOB: &str = "0190a5e4-0000-7000-8000-00000000000b";

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

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(f, d)| ((*f).to_owned(), (*d).to_owned()))
        .collect()
}

fn caller(subject: &str, admin: bool) -> Principal {
    Principal {
        subject: subject.into(),
        roles: if admin {
            vec![ROLE_ADMIN.into()]
        } else {
            Vec::new()
        },
    }
}

fn row(id: &str, created_at: i64) -> OrderRow {
    OrderRow {
        id: id.into(),
        user_id: ADA.into(),
        status: OrderStatus::Pending,
        body: pb::Order::default(),
        currency_code: "EUR".into(),
        total_minor: 1,
        cancel_reason: String::new(),
        failure_reason: String::new(),
        created_at,
        updated_at: created_at,
        version: 1,
    }
}

#[test]
fn a_get_request_names_its_order_by_uuid() {
    let id = OrderId::try_from(pb::GetOrderRequest {
        order_id: A.to_uppercase(),
    })
    .expect("a UUID");
    assert_eq!(id.as_str(), A);
    let refused = OrderId::try_from(pb::GetOrderRequest {
        order_id: "order-1".into(),
    })
    .expect_err("not a UUID");
    assert_eq!(
        violations(refused),
        pairs(&[("order_id", "must be a UUID")])
    );
}

#[test]
fn a_cancel_request_with_every_field_wrong_reports_every_violation() {
    let refused = CancelOrder::try_from(pb::CancelOrderRequest {
        order_id: "order-1".into(),
        reason: "x".repeat(501),
    })
    .expect_err("invalid");
    assert_eq!(
        violations(refused),
        pairs(&[
            ("reason", "must be at most 500 characters"),
            ("order_id", "must be a UUID"),
        ])
    );
}

#[test]
fn a_valid_cancel_request_keeps_its_order_and_reason() {
    let cancel = CancelOrder::try_from(pb::CancelOrderRequest {
        order_id: A.into(),
        reason: "changed my mind".into(),
    })
    .expect("valid");
    assert_eq!(cancel.id.as_str(), A);
    assert_eq!(cancel.reason, "changed my mind");
}

#[test]
fn a_watch_request_with_every_field_wrong_reports_every_violation() {
    let refused = WatchOrder::try_from(pb::WatchOrderRequest {
        order_id: "order-1".into(),
        resume_token: "-1".into(),
    })
    .expect_err("invalid");
    assert_eq!(
        violations(refused),
        pairs(&[
            ("order_id", "must be a UUID"),
            ("resume_token", "is not a token this service issued"),
        ])
    );
}

#[test]
fn a_watch_request_resumes_after_its_token_or_from_nothing() {
    let fresh = WatchOrder::try_from(pb::WatchOrderRequest {
        order_id: A.into(),
        resume_token: String::new(),
    })
    .expect("valid");
    assert_eq!(fresh.seen, 0);
    let resumed = WatchOrder::try_from(pb::WatchOrderRequest {
        order_id: A.into(),
        resume_token: super::super::resume_token(7),
    })
    .expect("valid");
    assert_eq!(resumed.seen, 7);
}

#[test]
fn a_list_request_with_every_field_wrong_reports_every_violation() {
    let refused = ListOrders::try_from((
        &caller(ADA, false),
        pb::ListOrdersRequest {
            page_size: -1,
            user_id: "someone".into(),
            status: 99,
            page_token: "123.nope.abc".into(),
        },
    ))
    .expect_err("invalid");
    // The page token is bound to the status filter, so an unknown status leaves it unjudged.
    assert_eq!(
        violations(refused),
        pairs(&[
            ("page_size", "must not be negative"),
            ("user_id", "must be a user id, \"-\" or empty"),
            ("status", "unknown status"),
        ])
    );
    let refused = ListOrders::try_from((
        &caller(ADA, false),
        pb::ListOrdersRequest {
            page_token: "123.nope.abc".into(),
            ..Default::default()
        },
    ))
    .expect_err("invalid");
    assert_eq!(violations(refused), pairs(&[("page_token", TOKEN_REFUSED)]));
}

#[test]
fn an_empty_list_request_lists_the_callers_orders_from_the_newest() {
    let listing = ListOrders::try_from((&caller(ADA, false), pb::ListOrdersRequest::default()))
        .expect("valid");
    assert_eq!(
        listing,
        ListOrders {
            user: Some(ADA.into()),
            status: None,
            after: None,
            size: paging::DEFAULT_PAGE_SIZE,
        }
    );
}

#[test]
fn only_admins_may_list_the_orders_of_others() {
    let others = |user: &str| pb::ListOrdersRequest {
        user_id: user.into(),
        ..Default::default()
    };
    for user in [BOB, "-"] {
        assert!(matches!(
            ListOrders::try_from((&caller(ADA, false), others(user))),
            Err(ServiceError::OthersOrders)
        ));
    }
    let everyone =
        ListOrders::try_from((&caller(ADA, true), others("-"))).expect("an admin lists all");
    assert_eq!(everyone.user, None);
}

#[test]
fn a_full_page_carries_the_token_of_the_next_and_that_token_reads_back_for_its_filters_only() {
    let listing = ListOrders::try_from((
        &caller(ADA, false),
        pb::ListOrdersRequest {
            page_size: 2,
            status: pb::OrderStatus::Pending as i32,
            ..Default::default()
        },
    ))
    .expect("valid");
    assert_eq!(listing.rows_to_read(), 3);
    let last_page = listing.answer(vec![row(A, 3)]);
    assert!(last_page.next_page_token.is_empty());
    let ids = [
        "0190a5e4-0000-7000-8000-000000000003",
        "0190a5e4-0000-7000-8000-000000000002",
        A,
    ];
    let page = listing.answer(
        ids.iter()
            .zip([3, 2, 1])
            .map(|(id, at)| row(id, at))
            .collect(),
    );
    assert_eq!(page.orders.len(), 2);
    let next = ListOrders::try_from((
        &caller(ADA, false),
        pb::ListOrdersRequest {
            page_size: 2,
            status: pb::OrderStatus::Pending as i32,
            page_token: page.next_page_token.clone(),
            ..Default::default()
        },
    ))
    .expect("its own token");
    assert_eq!(next.after, Some((2, ids[1].to_owned())));
    let other_filter = ListOrders::try_from((
        &caller(ADA, false),
        pb::ListOrdersRequest {
            page_token: page.next_page_token,
            ..Default::default()
        },
    ))
    .expect_err("a token of other filters");
    assert_eq!(
        violations(other_filter),
        pairs(&[("page_token", TOKEN_REFUSED)])
    );
}
