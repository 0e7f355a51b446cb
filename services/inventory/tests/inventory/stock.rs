//! Stock levels, adjustments and the ledger, through the real gRPC surface, on SQLite +
//! memory and on PostgreSQL + Redis.

use crate::common::{Inventory, figures, missing_resource, new_id, reason, violated_fields};
use agora_contracts::agora::inventory::v1::{self as pb, AdjustmentReason, MovementKind};
use agora_testkit::{TestBackend, authed, on_both_backends};
use tonic::{Code, Request};
use tonic_types::StatusExt;

on_both_backends!(
    anyone_reads_a_stock_level_and_unknown_or_malformed_ids_are_refused,
    batch_get_stock_answers_found_levels_and_missing_ids_in_request_order,
    adjust_stock_reports_every_invalid_field_at_once,
    adjust_stock_cannot_take_away_units_reserved_for_orders,
    adjusting_and_reading_the_ledger_are_for_admins_only,
    the_ledger_explains_the_stock_line_by_line_newest_first,
);

async fn anyone_reads_a_stock_level_and_unknown_or_malformed_ids_are_refused(backend: TestBackend) {
    let Some(inventory) = Inventory::start(backend).await else {
        return;
    };
    let product = inventory.stocked_product(7).await;
    let mut client = inventory.client();

    // Anonymous: GetStock is public.
    let level = client
        .get_stock(pb::GetStockRequest {
            product_id: product.clone(),
        })
        .await
        .expect("anyone reads stock")
        .into_inner()
        .stock_level
        .expect("a level");
    assert_eq!(level.product_id, product);
    assert_eq!(figures(&level), (7, 7, 0));
    assert!(level.update_time.is_some());
    // Any spelling of the UUID finds the same record.
    let upper = client
        .get_stock(pb::GetStockRequest {
            product_id: product.to_uppercase(),
        })
        .await
        .expect("the id is normalised");
    assert_eq!(
        upper.into_inner().stock_level.map(|l| l.product_id),
        Some(product.clone())
    );
    // A signed-in user may read it too.
    let user = inventory.user_token().await;
    client
        .get_stock(authed(
            pb::GetStockRequest {
                product_id: product.clone(),
            },
            &user,
        ))
        .await
        .expect("users read stock");

    let unknown = new_id();
    let status = client
        .get_stock(pb::GetStockRequest {
            product_id: unknown.clone(),
        })
        .await
        .expect_err("no record");
    assert_eq!(missing_resource(&status), ("stock".into(), unknown));

    for malformed in ["", "not-a-uuid"] {
        let status = client
            .get_stock(pb::GetStockRequest {
                product_id: malformed.into(),
            })
            .await
            .expect_err("malformed id");
        assert_eq!(violated_fields(&status), ["product_id"]);
    }
}

async fn batch_get_stock_answers_found_levels_and_missing_ids_in_request_order(
    backend: TestBackend,
) {
    let Some(inventory) = Inventory::start(backend).await else {
        return;
    };
    let a = inventory.stocked_product(1).await;
    let b = inventory.stocked_product(2).await;
    let (x, y) = (new_id(), new_id());
    let mut client = inventory.client();

    let response = client
        .batch_get_stock(pb::BatchGetStockRequest {
            product_ids: vec![x.clone(), b.clone(), a.clone(), y.clone(), b.clone()],
        })
        .await
        .expect("a batch read")
        .into_inner();
    let found: Vec<(&str, i64)> = response
        .stock_levels
        .iter()
        .map(|l| (l.product_id.as_str(), l.available))
        .collect();
    assert_eq!(
        found,
        [(b.as_str(), 2), (a.as_str(), 1)],
        "request order, repeats once"
    );
    assert_eq!(response.missing_product_ids, [x.clone(), y]);

    let none = client
        .batch_get_stock(pb::BatchGetStockRequest {
            product_ids: vec![],
        })
        .await
        .expect_err("no ids");
    assert_eq!(violated_fields(&none), ["product_ids"]);

    let too_many = client
        .batch_get_stock(pb::BatchGetStockRequest {
            product_ids: (0..101).map(|_| new_id()).collect(),
        })
        .await
        .expect_err("101 ids");
    assert_eq!(violated_fields(&too_many), ["product_ids"]);
    // 100 is the limit, and allowed.
    let hundred = client
        .batch_get_stock(pb::BatchGetStockRequest {
            product_ids: (0..100).map(|_| new_id()).collect(),
        })
        .await
        .expect("100 ids are allowed")
        .into_inner();
    assert_eq!(hundred.missing_product_ids.len(), 100);

    let malformed = client
        .batch_get_stock(pb::BatchGetStockRequest {
            product_ids: vec![a, "nope".into(), x, String::new()],
        })
        .await
        .expect_err("malformed ids");
    assert_eq!(
        violated_fields(&malformed),
        ["product_ids[1]", "product_ids[3]"]
    );
}

async fn adjust_stock_reports_every_invalid_field_at_once(backend: TestBackend) {
    let Some(inventory) = Inventory::start(backend).await else {
        return;
    };
    let mut client = inventory.client();
    let status = client
        .adjust_stock(authed(
            pb::AdjustStockRequest {
                product_id: "nope".into(),
                delta: 0,
                reason: AdjustmentReason::Unspecified as i32,
                note: "x".repeat(501),
            },
            &inventory.admin,
        ))
        .await
        .expect_err("everything is wrong");
    assert_eq!(
        violated_fields(&status),
        ["product_id", "delta", "reason", "note"]
    );

    let product = inventory.open_product().await;
    let unknown_reason = client
        .adjust_stock(authed(
            pb::AdjustStockRequest {
                product_id: product.clone(),
                delta: 3,
                reason: 99,
                note: String::new(),
            },
            &inventory.admin,
        ))
        .await
        .expect_err("not a reason");
    assert_eq!(violated_fields(&unknown_reason), ["reason"]);
    let huge = inventory
        .adjust(&product, i64::MAX, AdjustmentReason::Restock, "")
        .await
        .expect_err("beyond any stock");
    assert_eq!(violated_fields(&huge), ["delta"]);

    let unknown = new_id();
    let status = inventory
        .adjust(&unknown, 3, AdjustmentReason::Restock, "")
        .await
        .expect_err("no record");
    assert_eq!(missing_resource(&status), ("stock".into(), unknown));

    // Nothing was written by the refused calls.
    assert_eq!(figures(&inventory.level(&product).await), (0, 0, 0));
    assert_eq!(
        inventory.ledger(&product).await.len(),
        1,
        "the opening line only"
    );
}

async fn adjust_stock_cannot_take_away_units_reserved_for_orders(backend: TestBackend) {
    let Some(inventory) = Inventory::start(backend).await else {
        return;
    };
    let product = inventory.stocked_product(5).await;
    inventory
        .reserve(&new_id(), &[(&product, 3)], None)
        .await
        .expect("reserved");

    let status = inventory
        .adjust(&product, -3, AdjustmentReason::Damage, "broken")
        .await
        .expect_err("only 2 are available");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "INSUFFICIENT_STOCK");
    let details = status.get_error_details();
    let violation = &details
        .precondition_failure()
        .expect("a PreconditionFailure")
        .violations[0];
    assert_eq!(violation.subject, product);
    assert_eq!(violation.description, "requested 3 units, 2 available");
    assert_eq!(figures(&inventory.level(&product).await), (5, 2, 3));

    let level = inventory
        .adjust(&product, -2, AdjustmentReason::Correction, "stock-take")
        .await
        .expect("the 2 available units may go");
    assert_eq!(figures(&level), (3, 0, 3));
    inventory.assert_invariants().await;
}

async fn adjusting_and_reading_the_ledger_are_for_admins_only(backend: TestBackend) {
    let Some(inventory) = Inventory::start(backend).await else {
        return;
    };
    let product = inventory.open_product().await;
    let user = inventory.user_token().await;
    let adjust = || pb::AdjustStockRequest {
        product_id: product.clone(),
        delta: 5,
        reason: AdjustmentReason::Restock as i32,
        note: String::new(),
    };
    let list = || pb::ListMovementsRequest {
        product_id: product.clone(),
        ..Default::default()
    };
    let mut client = inventory.client();

    let anonymous = client.adjust_stock(Request::new(adjust())).await;
    assert_eq!(
        anonymous.expect_err("refused").code(),
        Code::Unauthenticated
    );
    let anonymous = client.list_movements(Request::new(list())).await;
    assert_eq!(
        anonymous.expect_err("refused").code(),
        Code::Unauthenticated
    );
    for token in [&user, &inventory.order] {
        let denied = client.adjust_stock(authed(adjust(), token)).await;
        assert_eq!(denied.expect_err("refused").code(), Code::PermissionDenied);
        let denied = client.list_movements(authed(list(), token)).await;
        assert_eq!(denied.expect_err("refused").code(), Code::PermissionDenied);
    }
    let forged = client.adjust_stock(authed(adjust(), "not.a.token")).await;
    assert_eq!(forged.expect_err("refused").code(), Code::Unauthenticated);
    assert_eq!(figures(&inventory.level(&product).await), (0, 0, 0));

    client
        .adjust_stock(authed(adjust(), &inventory.admin))
        .await
        .expect("admins adjust");
    client
        .list_movements(authed(list(), &inventory.admin))
        .await
        .expect("admins read the ledger");
    assert_eq!(figures(&inventory.level(&product).await), (5, 5, 0));
}

async fn the_ledger_explains_the_stock_line_by_line_newest_first(backend: TestBackend) {
    let Some(inventory) = Inventory::start(backend).await else {
        return;
    };
    let product = inventory.open_product().await;
    inventory
        .adjust(&product, 10, AdjustmentReason::Restock, "delivery note 42")
        .await
        .expect("restock");
    inventory
        .adjust(&product, -1, AdjustmentReason::Damage, "dropped")
        .await
        .expect("damage");
    let (sold, failed) = (new_id(), new_id());
    inventory
        .reserve(&sold, &[(&product, 3)], None)
        .await
        .expect("reserve");
    inventory.commit(&sold).await.expect("commit");
    inventory
        .reserve(&failed, &[(&product, 2)], None)
        .await
        .expect("reserve");
    inventory
        .release(&failed, "payment failed")
        .await
        .expect("release");
    inventory
        .cancel(&sold, "cancelled by customer")
        .await
        .expect("return");

    let level = inventory.level(&product).await;
    assert_eq!(figures(&level), (9, 9, 0));
    let ledger = inventory.ledger(&product).await;
    let lines: Vec<(i32, i64, i64, i64, &str, &str)> = ledger
        .iter()
        .map(|m| {
            (
                m.kind,
                m.on_hand_delta,
                m.available_delta,
                m.reserved_delta,
                m.order_id.as_str(),
                m.note.as_str(),
            )
        })
        .collect();
    use MovementKind as K;
    assert_eq!(
        lines,
        [
            (
                K::Returned as i32,
                3,
                3,
                0,
                sold.as_str(),
                "cancelled by customer"
            ),
            (
                K::Released as i32,
                0,
                2,
                -2,
                failed.as_str(),
                "payment failed"
            ),
            (K::Reserved as i32, 0, -2, 2, failed.as_str(), ""),
            (K::Committed as i32, -3, 0, -3, sold.as_str(), ""),
            (K::Reserved as i32, 0, -3, 3, sold.as_str(), ""),
            (K::Adjusted as i32, -1, -1, 0, "", "dropped"),
            (K::Adjusted as i32, 10, 10, 0, "", "delivery note 42"),
            (K::Opened as i32, 0, 0, 0, "", ""),
        ]
    );
    assert_eq!(ledger[5].reason, AdjustmentReason::Damage as i32);
    assert_eq!(ledger[6].reason, AdjustmentReason::Restock as i32);
    assert_eq!(ledger[0].reason, AdjustmentReason::Unspecified as i32);
    assert!(
        ledger
            .iter()
            .all(|m| m.product_id == product && m.create_time.is_some())
    );
    let sum = |f: fn(&pb::Movement) -> i64| ledger.iter().map(f).sum::<i64>();
    assert_eq!(
        (
            sum(|m| m.on_hand_delta),
            sum(|m| m.available_delta),
            sum(|m| m.reserved_delta)
        ),
        figures(&level)
    );

    // Paging: the default page holds everything; pages of 3 chain with tokens.
    let mut client = inventory.client();
    let list = |page_size: i32, page_token: String| pb::ListMovementsRequest {
        product_id: product.clone(),
        page_size,
        page_token,
    };
    let whole = client
        .list_movements(authed(list(0, String::new()), &inventory.admin))
        .await
        .expect("one page")
        .into_inner();
    assert_eq!(whole.movements.len(), 8);
    assert!(whole.next_page_token.is_empty());
    let first = client
        .list_movements(authed(list(3, String::new()), &inventory.admin))
        .await
        .expect("first page")
        .into_inner();
    assert_eq!(first.movements.len(), 3);
    // A movement recorded meanwhile does not shift the next page.
    inventory
        .adjust(&product, 1, AdjustmentReason::Return, "")
        .await
        .expect("return");
    let second = client
        .list_movements(authed(
            list(3, first.next_page_token.clone()),
            &inventory.admin,
        ))
        .await
        .expect("second page")
        .into_inner();
    let ids: Vec<&str> = second
        .movements
        .iter()
        .map(|m| m.movement_id.as_str())
        .collect();
    let expected: Vec<&str> = whole.movements[3..6]
        .iter()
        .map(|m| m.movement_id.as_str())
        .collect();
    assert_eq!(ids, expected);

    // Bad paging input.
    let negative = client
        .list_movements(authed(list(-1, "zz".into()), &inventory.admin))
        .await
        .expect_err("negative size, bad token");
    assert_eq!(violated_fields(&negative), ["page_size", "page_token"]);
    let other = inventory.open_product().await;
    let foreign = client
        .list_movements(authed(
            pb::ListMovementsRequest {
                product_id: other,
                page_size: 3,
                page_token: first.next_page_token,
            },
            &inventory.admin,
        ))
        .await
        .expect_err("a token of another ledger");
    assert_eq!(violated_fields(&foreign), ["page_token"]);
    let unknown = new_id();
    let status = client
        .list_movements(authed(
            pb::ListMovementsRequest {
                product_id: unknown.clone(),
                ..Default::default()
            },
            &inventory.admin,
        ))
        .await
        .expect_err("no record");
    assert_eq!(missing_resource(&status), ("stock".into(), unknown));
    inventory.assert_invariants().await;
}
