use agora_platform::error::ApiError;

use super::*;
use crate::domain::{DEFAULT_PAGE_SIZE, MAX_NOTE_CHARS, MAX_UNITS, NegativePageSize};

const A: &str = "0190a0b0-0000-7000-8000-00000000000a";
const B: &str = "0190a0b0-0000-7000-8000-00000000000b";

const POLICY: TtlPolicy = TtlPolicy {
    default: Duration::from_secs(900),
    max: Duration::from_secs(3600),
};

/// The `(field, description)` pairs of a refused request, in the order they were found.
fn violations(error: ServiceError) -> Vec<(String, String)> {
    let ServiceError::InvalidRequest(violations) = error else {
        panic!("not an invalid request: {error:?}");
    };
    let ApiError::InvalidArgument { violations, .. } = violations.into_error() else {
        panic!("violations always make an INVALID_ARGUMENT");
    };
    violations
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect()
}

fn fields(error: ServiceError) -> Vec<String> {
    violations(error)
        .into_iter()
        .map(|(field, _)| field)
        .collect()
}

fn line(product_id: &str, quantity: i64) -> pb::ReservationLine {
    pb::ReservationLine {
        product_id: product_id.into(),
        quantity,
    }
}

#[test]
fn a_stock_or_commit_request_needs_a_uuid() {
    let product_id = ProductId::try_from(pb::GetStockRequest {
        product_id: A.to_uppercase(),
    })
    .expect("a UUID");
    assert_eq!(product_id.as_str(), A);
    let error = ProductId::try_from(pb::GetStockRequest::default()).expect_err("no id");
    assert_eq!(
        violations(error),
        [("product_id".into(), "is required".into())]
    );
    let error = OrderId::try_from(pb::CommitReservationRequest {
        order_id: "order-1".into(),
    })
    .expect_err("not a UUID");
    assert_eq!(
        violations(error),
        [("order_id".into(), "must be a UUID".into())]
    );
}

#[test]
fn a_batch_names_each_product_once_in_the_order_first_named() {
    let batch = StockBatch::try_from(pb::BatchGetStockRequest {
        product_ids: vec![B.into(), A.into(), B.into()],
    })
    .expect("valid ids");
    let ids: Vec<_> = batch.product_ids.iter().map(ProductId::as_str).collect();
    assert_eq!(ids, [B, A]);
}

#[test]
fn a_batch_with_every_id_wrong_reports_every_violation() {
    let error = StockBatch::try_from(pb::BatchGetStockRequest {
        product_ids: vec![A.into(), "nope".into(), String::new()],
    })
    .expect_err("bad ids");
    assert_eq!(
        violations(error),
        [
            ("product_ids[1]".into(), "must be a UUID".into()),
            ("product_ids[2]".into(), "is required".into()),
        ]
    );
    let error = StockBatch::try_from(pb::BatchGetStockRequest::default()).expect_err("no ids");
    assert_eq!(fields(error), ["product_ids"]);
    let error = StockBatch::try_from(pb::BatchGetStockRequest {
        product_ids: (0..=MAX_BATCH).map(|_| "nope".to_owned()).collect(),
    })
    .expect_err("too many ids");
    let found = fields(error);
    assert_eq!(found[0], "product_ids");
    assert_eq!(found.len(), MAX_BATCH + 2);
}

#[test]
fn an_adjustment_with_every_field_wrong_reports_every_violation() {
    let error = Adjustment::try_from(pb::AdjustStockRequest {
        product_id: "nope".into(),
        delta: 0,
        reason: pb::AdjustmentReason::Unspecified as i32,
        note: "x".repeat(MAX_NOTE_CHARS + 1),
    })
    .expect_err("every field wrong");
    assert_eq!(
        violations(error),
        [
            ("product_id".into(), "must be a UUID".into()),
            ("delta".into(), "must not be zero".into()),
            (
                "reason".into(),
                "must be one of RESTOCK, CORRECTION, DAMAGE, RETURN".into()
            ),
            ("note".into(), "must be at most 500 characters".into()),
        ]
    );
    let error = Adjustment::try_from(pb::AdjustStockRequest {
        product_id: A.into(),
        delta: MAX_UNITS + 1,
        reason: 99,
        note: String::new(),
    })
    .expect_err("delta too large and an unknown reason");
    assert_eq!(fields(error), ["delta", "reason"]);
}

#[test]
fn a_valid_adjustment_keeps_its_delta_reason_and_trimmed_note() {
    let adjustment = Adjustment::try_from(pb::AdjustStockRequest {
        product_id: A.into(),
        delta: -3,
        reason: pb::AdjustmentReason::Damage as i32,
        note: "  dropped  ".into(),
    })
    .expect("a valid adjustment");
    assert_eq!(
        adjustment,
        Adjustment {
            product_id: ProductId::parse(A).expect("a UUID"),
            delta: -3,
            reason: AdjustReason::Damage,
            note: "dropped".into(),
        }
    );
}

#[test]
fn a_movements_query_with_every_field_wrong_reports_every_violation() {
    // The token cannot be judged without a product: only the product and page size are named.
    let error = MovementsQuery::try_from(pb::ListMovementsRequest {
        product_id: "nope".into(),
        page_size: -1,
        page_token: "zz".into(),
    })
    .expect_err("every field wrong");
    assert_eq!(fields(error), ["product_id", "page_size"]);
    let other = ProductId::parse(B).expect("a UUID");
    let error = MovementsQuery::try_from(pb::ListMovementsRequest {
        product_id: A.into(),
        page_size: -1,
        page_token: PageToken::encode(&other, 7),
    })
    .expect_err("a token of another product");
    assert_eq!(
        violations(error),
        [
            ("page_size".into(), NegativePageSize.to_string()),
            (
                "page_token".into(),
                "belongs to the movements of another product".into()
            ),
        ]
    );
}

#[test]
fn a_movements_query_reads_its_page_size_and_token() {
    let product = ProductId::parse(A).expect("a UUID");
    let query = MovementsQuery::try_from(pb::ListMovementsRequest {
        product_id: A.into(),
        page_size: 0,
        page_token: PageToken::encode(&product, 42),
    })
    .expect("a valid query");
    assert_eq!(query.page_size, DEFAULT_PAGE_SIZE);
    assert_eq!(query.token, Some(PageToken { before: 42 }));
}

#[test]
fn a_reservation_with_every_field_wrong_reports_every_violation() {
    let request = pb::ReserveRequest {
        order_id: String::new(),
        lines: vec![line(A, 0), line("nope", 1), line(A, 2)],
        ttl: Some(prost_types::Duration {
            seconds: 7200,
            nanos: 0,
        }),
    };
    let error = NewReservation::try_from((request, POLICY)).expect_err("every field wrong");
    assert_eq!(
        fields(error),
        [
            "order_id",
            "lines[0].quantity",
            "lines[1].product_id",
            "lines[2].product_id",
            "ttl"
        ]
    );
    let request = pb::ReserveRequest {
        order_id: A.into(),
        lines: vec![],
        ttl: Some(prost_types::Duration {
            seconds: -1,
            nanos: 0,
        }),
    };
    let error = NewReservation::try_from((request, POLICY)).expect_err("no lines, negative TTL");
    assert_eq!(
        violations(error),
        [
            ("lines".into(), "must name at least one product".into()),
            ("ttl".into(), "must be at least 1 second".into()),
        ]
    );
}

#[test]
fn a_reservation_without_a_ttl_holds_for_the_default() {
    let request = pb::ReserveRequest {
        order_id: B.into(),
        lines: vec![line(B, 1), line(A, 2)],
        ttl: None,
    };
    let reservation = NewReservation::try_from((request, POLICY)).expect("a valid reservation");
    assert_eq!(reservation.ttl, POLICY.default);
    assert_eq!(reservation.order_id.as_str(), B);
    assert_eq!(reservation.lines.as_slice()[0].product_id.as_str(), A);
}

#[test]
fn a_release_with_every_field_wrong_reports_every_violation() {
    let error = Release::try_from(pb::ReleaseReservationRequest {
        order_id: "nope".into(),
        reason: "x".repeat(MAX_NOTE_CHARS + 1),
        return_committed: true,
    })
    .expect_err("every field wrong");
    assert_eq!(fields(error), ["order_id", "reason"]);
    let release = Release::try_from(pb::ReleaseReservationRequest {
        order_id: A.into(),
        reason: " cancelled ".into(),
        return_committed: true,
    })
    .expect("a valid release");
    assert_eq!(release.reason, "cancelled");
    assert!(release.return_committed);
}
