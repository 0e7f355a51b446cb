//! An order's money: line totals, the order's total and its one currency, computed without
//! overflow. Amounts are integer minor units; the currency is an ISO-4217 code.

/// Why an order's amounts cannot be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// A line's total or the order's total does not fit in 64 bits. The contracts bound prices
    /// and quantities so that this cannot happen, but a price set before the bound must not
    /// overflow.
    #[error("the order's total is too large")]
    TooLarge,
    /// The lines are priced in more than one currency, so they have no total.
    #[error("the products are not priced in one currency")]
    MixedCurrencies,
}

/// The total of a line: `quantity` units at `unit_minor` each.
///
/// # Errors
/// [`MoneyError::TooLarge`] when the product does not fit.
pub fn line_total(unit_minor: i64, quantity: i64) -> Result<i64, MoneyError> {
    unit_minor.checked_mul(quantity).ok_or(MoneyError::TooLarge)
}

/// The one currency all `codes` share: the first one, or `None` when there are none.
///
/// # Errors
/// [`MoneyError::MixedCurrencies`] when any code differs from the first.
pub fn one_currency<'a>(
    codes: impl IntoIterator<Item = &'a str>,
) -> Result<Option<&'a str>, MoneyError> {
    let mut codes = codes.into_iter();
    let first = codes.next();
    if codes.any(|code| Some(code) != first) {
        return Err(MoneyError::MixedCurrencies);
    }
    Ok(first)
}

/// The total of an order: the sum of its line totals.
///
/// # Errors
/// [`MoneyError::TooLarge`] when the sum does not fit.
pub fn order_total(line_totals: impl IntoIterator<Item = i64>) -> Result<i64, MoneyError> {
    line_totals
        .into_iter()
        .try_fold(0i64, |total, line| total.checked_add(line))
        .ok_or(MoneyError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_total_is_the_unit_price_times_the_quantity() {
        assert_eq!(line_total(1_250, 3), Ok(3_750));
    }

    #[test]
    fn a_line_total_that_overflows_is_refused() {
        assert_eq!(line_total(i64::MAX / 2 + 1, 2), Err(MoneyError::TooLarge));
    }

    #[test]
    fn an_order_total_is_the_sum_of_its_lines() {
        assert_eq!(order_total([3_750, 1, 0]), Ok(3_751));
        assert_eq!(order_total([]), Ok(0));
    }

    #[test]
    fn a_total_that_overflows_is_refused() {
        assert_eq!(order_total([i64::MAX, 1]), Err(MoneyError::TooLarge));
    }

    #[test]
    fn lines_in_one_currency_share_it() {
        assert_eq!(one_currency(["EUR", "EUR"]), Ok(Some("EUR")));
        assert_eq!(one_currency([]), Ok(None));
    }

    #[test]
    fn lines_in_two_currencies_are_refused() {
        assert_eq!(
            one_currency(["EUR", "USD", "EUR"]),
            Err(MoneyError::MixedCurrencies)
        );
    }
}
