//! Reservations for orders, through the real gRPC surface, on SQLite + memory and on PostgreSQL +
//! Redis: all or nothing, idempotent, committed, released, expired, and never oversold.

use std::time::Duration;

use crate::common::{Inventory, figures, missing_resource, new_id, reason, violated_fields};
use agora_contracts::agora::inventory::v1::{self as pb, MovementKind, ReservationState};
use agora_testkit::{TestBackend, authed, eventually, on_both_backends};
use tonic::{Code, Request};
use tonic_types::StatusExt;

on_both_backends!(
    a_reservation_reserves_every_line_or_none,
    a_retried_reservation_returns_the_same_one_and_other_lines_conflict,
    committing_sells_the_units_once_and_only_a_cancellation_returns_them,
    a_released_reservation_cannot_be_committed_and_releasing_twice_is_harmless,
    the_sweeper_gives_back_the_units_of_expired_reservations,
    a_reservation_past_its_time_is_expired_even_before_the_sweep,
    reserve_reports_every_invalid_field_at_once,
    reservations_are_for_services_only,
);

/// A request with the token, or an anonymous one.
fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    match token {
        Some(token) => authed(message, token),
        None => Request::new(message),
    }
}

fn state(reservation: &pb::Reservation) -> ReservationState {
    ReservationState::try_from(reservation.state).unwrap_or(ReservationState::Unspecified)
}

async fn a_reservation_reserves_every_line_or_none(backend: TestBackend) {
    let Some(inventory) = Inventory::start(backend).await else {
        return;
    };
    let plenty = inventory.stocked_product(5).await;
    let scarce = inventory.stocked_product(1).await;
    let empty = inventory.open_product().await;

    let status = inventory
        .reserve(&new_id(), &[(&plenty, 2), (&scarce, 2), (&empty, 1)], None)
        .await
        .expect_err("two lines are short");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "INSUFFICIENT_STOCK");
    let details = status.get_error_details();
    let mut short: Vec<(String, String, String)> = details
        .precondition_failure()
        .expect("a PreconditionFailure")
        .violations
        .iter()
        .map(|v| (v.r#type.clone(), v.subject.clone(), v.description.clone()))
        .collect();
    short.sort();
    let mut expected = vec![
        (
            "STOCK".to_owned(),
            scarce.clone(),
            "requested 2 units, 1 available".to_owned(),
        ),
        (
            "STOCK".to_owned(),
            empty.clone(),
            "requested 1 units, 0 available".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(short, expected);

    let unknown = new_id();
    let status = inventory
        .reserve(&new_id(), &[(&plenty, 1), (&unknown, 1)], None)
        .await
        .expect_err("a product without a record");
    assert_eq!(missing_resource(&status), ("stock".into(), unknown));

    // Nothing moved: not even the lines that could have been reserved.
    assert_eq!(figures(&inventory.level(&plenty).await), (5, 5, 0));
    assert_eq!(figures(&inventory.level(&scarce).await), (1, 1, 0));
    assert_eq!(
        inventory.ledger(&plenty).await.len(),
        2,
        "opened and restocked only"
    );

    let order = new_id();
    let reservation = inventory
        .reserve(&order, &[(&plenty, 5), (&scarce, 1)], None)
        .await
        .expect("every line fits");
    assert_eq!(state(&reservation), ReservationState::Pending);
    assert_eq!(reservation.order_id, order);
    assert_eq!(reservation.lines.len(), 2);
    assert_eq!(figures(&inventory.level(&plenty).await), (5, 0, 5));
    assert_eq!(figures(&inventory.level(&scarce).await), (1, 0, 1));
    inventory.assert_invariants().await;
}

async fn a_retried_reservation_returns_the_same_one_and_other_lines_conflict(backend: TestBackend) {
    let Some(inventory) = Inventory::start(backend).await else {
        return;
    };
    let a = inventory.stocked_product(10).await;
    let b = inventory.stocked_product(10).await;
    let order = new_id();
    let first = inventory
        .reserve(&order, &[(&a, 2), (&b, 3)], Some(Duration::from_secs(60)))
        .await
        .expect("reserved");
    // The same lines in another order, another TTL: the same reservation, reserved once.
    let again = inventory
        .reserve(&order, &[(&b, 3), (&a, 2)], Some(Duration::from_secs(600)))
        .await
        .expect("a retry");
    assert_eq!(again, first, "the TTL of a retry is ignored");
    assert_eq!(figures(&inventory.level(&a).await), (10, 8, 2));

    // Concurrent retries of one new order reserve once too.
    let racing = new_id();
    let retries = (0..8).map(|_| {
        let (inventory, racing, a) = (&inventory, racing.clone(), a.clone());
        async move { inventory.reserve(&racing, &[(&a, 1)], None).await }
    });
    for result in futures::future::join_all(retries).await {
        assert_eq!(
            state(&result.expect("every retry succeeds")),
            ReservationState::Pending
        );
    }
    assert_eq!(figures(&inventory.level(&a).await), (10, 7, 3));

    let status = inventory
        .reserve(&order, &[(&a, 2), (&b, 4)], None)
        .await
        .expect_err("other lines for the same order");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(reason(&status), "RESERVATION_EXISTS");

    // A retry after the commit answers the reservation as it is now.
    inventory.commit(&order).await.expect("committed");
    let later = inventory
        .reserve(&order, &[(&a, 2), (&b, 3)], None)
        .await
        .expect("a late retry");
    assert_eq!(state(&later), ReservationState::Committed);
    assert_eq!(figures(&inventory.level(&a).await), (8, 7, 1));
    inventory.assert_invariants().await;
}

async fn committing_sells_the_units_once_and_only_a_cancellation_returns_them(
    backend: TestBackend,
) {
    let Some(inventory) = Inventory::start(backend).await else {
        return;
    };
    let product = inventory.stocked_product(10).await;
    let order = new_id();
    let reserved = inventory
        .reserve(&order, &[(&product, 4)], None)
        .await
        .expect("reserved");

    let committed = inventory.commit(&order).await.expect("committed");
    assert_eq!(state(&committed), ReservationState::Committed);
    assert_eq!(
        committed.expire_time, reserved.expire_time,
        "kept as it was"
    );
    assert_eq!(figures(&inventory.level(&product).await), (6, 6, 0));
    let again = inventory.commit(&order).await.expect("a repeated commit");
    assert_eq!(state(&again), ReservationState::Committed);
    assert_eq!(
        figures(&inventory.level(&product).await),
        (6, 6, 0),
        "sold once"
    );

    let unknown = new_id();
    let status = inventory
        .commit(&unknown)
        .await
        .expect_err("no reservation");
    assert_eq!(
        missing_resource(&status),
        ("reservation".into(), unknown.clone())
    );
    let status = inventory
        .release(&unknown, "")
        .await
        .expect_err("no reservation");
    assert_eq!(missing_resource(&status), ("reservation".into(), unknown));

    // A late compensation (a saga that lost track of its order) never un-sells: the committed
    // reservation is answered as it is and nothing moves.
    let late = inventory
        .release(&order, "order not placed")
        .await
        .expect("a no-op");
    assert_eq!(state(&late), ReservationState::Committed);
    assert_eq!(figures(&inventory.level(&product).await), (6, 6, 0));

    // The order is cancelled after the sale: the units come back on hand.
    let returned = inventory
        .cancel(&order, "cancelled by customer")
        .await
        .expect("released");
    assert_eq!(state(&returned), ReservationState::Released);
    assert_eq!(figures(&inventory.level(&product).await), (10, 10, 0));
    inventory.release(&order, "again").await.expect("harmless");
    assert_eq!(figures(&inventory.level(&product).await), (10, 10, 0));
    let kinds: Vec<i32> = inventory
        .ledger(&product)
        .await
        .iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(
        &kinds[..3],
        [
            MovementKind::Returned as i32,
            MovementKind::Committed as i32,
            MovementKind::Reserved as i32
        ]
    );
    inventory.assert_invariants().await;
}

async fn a_released_reservation_cannot_be_committed_and_releasing_twice_is_harmless(
    backend: TestBackend,
) {
    let Some(inventory) = Inventory::start(backend).await else {
        return;
    };
    let product = inventory.stocked_product(3).await;
    let order = new_id();
    inventory
        .reserve(&order, &[(&product, 3)], None)
        .await
        .expect("reserved");
    assert_eq!(figures(&inventory.level(&product).await), (3, 0, 3));

    let released = inventory
        .release(&order, "payment failed")
        .await
        .expect("released");
    assert_eq!(state(&released), ReservationState::Released);
    assert_eq!(figures(&inventory.level(&product).await), (3, 3, 0));
    let twice = inventory.release(&order, "retry").await.expect("harmless");
    assert_eq!(state(&twice), ReservationState::Released);
    assert_eq!(figures(&inventory.level(&product).await), (3, 3, 0));

    let status = inventory.commit(&order).await.expect_err("released");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "RESERVATION_RELEASED");
    assert_eq!(figures(&inventory.level(&product).await), (3, 3, 0));

    let ledger = inventory.ledger(&product).await;
    assert_eq!(ledger[0].kind, MovementKind::Released as i32);
    assert_eq!(ledger[0].note, "payment failed");
    assert_eq!(ledger[0].order_id, order);
    assert_eq!(
        ledger.len(),
        4,
        "opened, restocked, reserved, released: once"
    );
    inventory.assert_invariants().await;
}

async fn the_sweeper_gives_back_the_units_of_expired_reservations(backend: TestBackend) {
    let Some(inventory) = Inventory::start_with(
        backend,
        &[("inventory.sweep_interval", serde_json::json!("100ms"))],
    )
    .await
    else {
        return;
    };
    let product = inventory.stocked_product(5).await;
    let (brief, lasting) = (new_id(), new_id());
    let reservation = inventory
        .reserve(&brief, &[(&product, 2)], Some(Duration::from_secs(1)))
        .await
        .expect("reserved");
    let expire = reservation.expire_time.expect("an expiry");
    let now = prost_types::Timestamp::from(std::time::SystemTime::now());
    assert!(
        (expire.seconds - now.seconds - 1).abs() <= 1,
        "about a second from now"
    );
    inventory
        .reserve(&lasting, &[(&product, 1)], None)
        .await
        .expect("reserved for the default 15 minutes");
    assert_eq!(figures(&inventory.level(&product).await), (5, 2, 3));

    let client = inventory.client();
    eventually(
        "the sweeper returns the units",
        Duration::from_secs(10),
        || {
            let mut client = client.clone();
            let product_id = product.clone();
            async move {
                let level = client
                    .get_stock(pb::GetStockRequest { product_id })
                    .await
                    .ok()?
                    .into_inner()
                    .stock_level?;
                (level.available == 4).then_some(())
            }
        },
    )
    .await;
    assert_eq!(figures(&inventory.level(&product).await), (5, 4, 1));
    let ledger = inventory.ledger(&product).await;
    assert_eq!(ledger[0].kind, MovementKind::Expired as i32);
    assert_eq!(ledger[0].order_id, brief);
    assert_eq!(
        (ledger[0].available_delta, ledger[0].reserved_delta),
        (2, -2)
    );

    let status = inventory.commit(&brief).await.expect_err("expired");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "RESERVATION_EXPIRED");
    let released = inventory
        .release(&brief, "too late")
        .await
        .expect("harmless");
    assert_eq!(state(&released), ReservationState::Expired);
    assert_eq!(figures(&inventory.level(&product).await), (5, 4, 1));
    inventory
        .commit(&lasting)
        .await
        .expect("the other one is still pending");
    inventory.assert_invariants().await;
}

async fn a_reservation_past_its_time_is_expired_even_before_the_sweep(backend: TestBackend) {
    // A sweeper that (after its first round at start) never runs during the test.
    let Some(inventory) = Inventory::start_with(
        backend,
        &[("inventory.sweep_interval", serde_json::json!("1h"))],
    )
    .await
    else {
        return;
    };
    let product = inventory.stocked_product(4).await;
    let order = new_id();
    inventory
        .reserve(&order, &[(&product, 4)], Some(Duration::from_secs(1)))
        .await
        .expect("reserved");
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let status = inventory
        .commit(&order)
        .await
        .expect_err("its time has passed");
    assert_eq!(reason(&status), "RESERVATION_EXPIRED");
    let retried = inventory
        .reserve(&order, &[(&product, 4)], None)
        .await
        .expect("a retry answers the reservation as it is");
    assert_eq!(state(&retried), ReservationState::Expired);
    assert_eq!(
        figures(&inventory.level(&product).await),
        (4, 0, 4),
        "not swept yet"
    );

    // The order service compensates: the release applies the expiry at once.
    let released = inventory
        .release(&order, "order failed")
        .await
        .expect("released");
    assert_eq!(state(&released), ReservationState::Expired);
    assert_eq!(figures(&inventory.level(&product).await), (4, 4, 0));
    let ledger = inventory.ledger(&product).await;
    assert_eq!(ledger[0].kind, MovementKind::Expired as i32);
    inventory.assert_invariants().await;
}

async fn reserve_reports_every_invalid_field_at_once(backend: TestBackend) {
    let Some(inventory) = Inventory::start(backend).await else {
        return;
    };
    let product = inventory.stocked_product(5).await;
    let mut client = inventory.client();
    let line = |product_id: &str, quantity: i64| pb::ReservationLine {
        product_id: product_id.into(),
        quantity,
    };
    let reserve = |order_id: &str, lines: Vec<pb::ReservationLine>, ttl_millis: Option<i64>| {
        authed(
            pb::ReserveRequest {
                order_id: order_id.into(),
                lines,
                ttl: ttl_millis.map(|ms| prost_types::Duration {
                    seconds: ms.div_euclid(1000),
                    nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
                }),
            },
            &inventory.order,
        )
    };

    let status = client
        .reserve(reserve(
            "order-1",
            vec![line(&product, 0), line("nope", 1), line(&product, 2)],
            Some(500),
        ))
        .await
        .expect_err("everything is wrong");
    assert_eq!(
        violated_fields(&status),
        [
            "order_id",
            "lines[0].quantity",
            "lines[1].product_id",
            "lines[2].product_id",
            "ttl"
        ]
    );
    let status = client
        .reserve(reserve(&new_id(), vec![], Some(3_600_001)))
        .await
        .expect_err("no lines, too long");
    assert_eq!(violated_fields(&status), ["lines", "ttl"]);
    let status = client
        .reserve(reserve(&new_id(), vec![line(&product, 1)], Some(-5000)))
        .await
        .expect_err("a negative TTL");
    assert_eq!(violated_fields(&status), ["ttl"]);
    let many = (0..101).map(|_| line(&new_id(), 1)).collect();
    let status = client
        .reserve(reserve(&new_id(), many, None))
        .await
        .expect_err("101 lines");
    assert_eq!(violated_fields(&status), ["lines"]);

    let status = client
        .commit_reservation(authed(
            pb::CommitReservationRequest {
                order_id: "x".into(),
            },
            &inventory.order,
        ))
        .await
        .expect_err("malformed id");
    assert_eq!(violated_fields(&status), ["order_id"]);
    let status = client
        .release_reservation(authed(
            pb::ReleaseReservationRequest {
                order_id: String::new(),
                reason: "r".repeat(501),
                return_committed: false,
            },
            &inventory.order,
        ))
        .await
        .expect_err("malformed id, long reason");
    assert_eq!(violated_fields(&status), ["order_id", "reason"]);

    // The bounds themselves are allowed: 1 second and 1 hour.
    for (ttl, quantity) in [(1000, 1), (3_600_000, 2)] {
        client
            .reserve(reserve(
                &new_id(),
                vec![line(&product, quantity)],
                Some(ttl),
            ))
            .await
            .expect("a TTL within the bounds");
    }
    assert_eq!(figures(&inventory.level(&product).await), (5, 2, 3));
}

async fn reservations_are_for_services_only(backend: TestBackend) {
    let Some(inventory) = Inventory::start(backend).await else {
        return;
    };
    let product = inventory.stocked_product(5).await;
    let user = inventory.user_token().await;
    let order = new_id();
    let reserve = || pb::ReserveRequest {
        order_id: order.clone(),
        lines: vec![pb::ReservationLine {
            product_id: product.clone(),
            quantity: 1,
        }],
        ttl: None,
    };
    let commit = || pb::CommitReservationRequest {
        order_id: order.clone(),
    };
    let release = || pb::ReleaseReservationRequest {
        order_id: order.clone(),
        reason: String::new(),
        return_committed: false,
    };
    let mut client = inventory.client();

    let refusals = [
        (None, Code::Unauthenticated),
        (Some(user.as_str()), Code::PermissionDenied),
        (Some(inventory.admin.as_str()), Code::PermissionDenied),
    ];
    for (token, code) in refusals {
        let status = client
            .reserve(with_token(reserve(), token))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "Reserve with {token:?}");
        let status = client
            .commit_reservation(with_token(commit(), token))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "CommitReservation with {token:?}");
        let status = client
            .release_reservation(with_token(release(), token))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "ReleaseReservation with {token:?}");
    }
    assert_eq!(figures(&inventory.level(&product).await), (5, 5, 0));

    client
        .reserve(authed(reserve(), &inventory.order))
        .await
        .expect("the order service reserves");
    client
        .commit_reservation(authed(commit(), &inventory.order))
        .await
        .expect("the order service commits");
    let cancel = pb::ReleaseReservationRequest {
        return_committed: true,
        ..release()
    };
    client
        .release_reservation(authed(cancel, &inventory.order))
        .await
        .expect("the order service returns a cancelled order's units");
    assert_eq!(figures(&inventory.level(&product).await), (5, 5, 0));
}
