use super::*;

const A: &str = "0190a0b0-0000-7000-8000-00000000000a";
const B: &str = "0190a0b0-0000-7000-8000-00000000000b";

#[test]
fn ids_are_stored_in_their_canonical_form() {
    let id = ProductId::parse("0190A0B000007000800000000000000A").expect("a UUID");
    assert_eq!(id.as_str(), A);
    assert_eq!(ProductId::parse(""), Err(IdError::Empty));
    assert_eq!(OrderId::parse("order-1"), Err(IdError::Malformed));
}

#[test]
fn lines_are_sorted_by_product_so_locks_are_taken_in_one_order() {
    let lines = Lines::parse([(B, 1), (A, 2)]).expect("valid lines");
    let products: Vec<_> = lines
        .as_slice()
        .iter()
        .map(|l| l.product_id.as_str())
        .collect();
    assert_eq!(products, [A, B]);
}

#[test]
fn every_problem_of_the_lines_is_reported_at_once() {
    let violations =
        Lines::parse([(A, 0), ("nope", 1), (A, 2), (B, MAX_UNITS + 1)]).expect_err("invalid lines");
    let fields: Vec<_> = violations.iter().map(|(field, _)| field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "lines[0].quantity",
            "lines[1].product_id",
            "lines[2].product_id",
            "lines[3].quantity"
        ]
    );
    let empty = Lines::parse([]).expect_err("no lines");
    assert_eq!(empty[0].0, "lines");
    let many: Vec<String> = (0..=MAX_LINES)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let too_many = Lines::parse(many.iter().map(|id| (id.as_str(), 1))).expect_err("101 lines");
    assert_eq!(too_many[0].0, "lines");
}

#[test]
fn the_ttl_defaults_and_stays_within_its_bounds() {
    let default = Duration::from_secs(900);
    let max = Duration::from_secs(3600);
    assert_eq!(reservation_ttl(None, default, max), Ok(default));
    let ten = Duration::from_secs(10);
    assert_eq!(reservation_ttl(Some(Ok(ten)), default, max), Ok(ten));
    assert_eq!(
        reservation_ttl(Some(Ok(Duration::from_millis(999))), default, max),
        Err(TtlError::TooShort)
    );
    assert_eq!(
        reservation_ttl(Some(Err(())), default, max),
        Err(TtlError::TooShort)
    );
    assert_eq!(
        reservation_ttl(Some(Ok(Duration::from_secs(3601))), default, max),
        Err(TtlError::TooLong(max))
    );
    assert_eq!(
        TtlError::TooLong(max).to_string(),
        "must be at most 1 hour(s)"
    );
}

#[test]
fn a_pending_reservation_past_its_time_counts_as_expired() {
    assert_eq!(
        ReservationState::Pending.effective(100, 100),
        ReservationState::Expired
    );
    assert_eq!(
        ReservationState::Pending.effective(101, 100),
        ReservationState::Pending
    );
    assert_eq!(
        ReservationState::Committed.effective(1, 100),
        ReservationState::Committed
    );
}

#[test]
fn adjustments_need_a_non_zero_bounded_delta_and_a_short_note() {
    assert_eq!(adjustment_delta(0), Err(DeltaError::Zero));
    assert_eq!(adjustment_delta(-MAX_UNITS - 1), Err(DeltaError::TooLarge));
    assert_eq!(adjustment_delta(i64::MIN), Err(DeltaError::TooLarge));
    assert_eq!(adjustment_delta(-2), Ok(-2));
    assert_eq!(note("  delivery 42  "), Ok("delivery 42".into()));
    assert_eq!(note(&"é".repeat(500)).map(|n| n.chars().count()), Ok(500));
    assert_eq!(note(&"x".repeat(501)), Err(NoteTooLong));
    assert_eq!(
        AdjustReason::from_name("damage"),
        Some(AdjustReason::Damage)
    );
}
