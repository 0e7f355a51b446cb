//! The ISO 4217 currencies a price may be in.
//!
//! Every active code of the ISO 4217 list (amendments up to 2025; withdrawn codes such as HRK,
//! CUC, SLL and ZWL are out), funds codes included, except
//! the `X` codes that are not money a shop can charge: precious metals (XAU, XAG, XPD, XPT),
//! bond-market units (XBA to XBD), the SDR (XDR), XSU, XUA, the testing code XTS and XXX ("no
//! currency"). The supranational currencies that are money (XAF, XCD, XCG, XOF, XPF) are in.

/// The known codes, sorted, so a lookup is a binary search.
const CODES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE",
    "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL",
    "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR",
    "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD",
    "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK",
    "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO",
    "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON",
    "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD",
    "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD",
    "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV",
    "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// Whether `code` is a known currency code (exactly, upper case).
pub fn is_known_currency(code: &str) -> bool {
    CODES.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_unique_and_three_upper_case_letters() {
        assert!(CODES.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(
            CODES
                .iter()
                .all(|code| code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase()))
        );
    }

    #[test]
    fn real_currencies_are_known_and_made_up_ones_are_not() {
        for code in [
            "EUR", "USD", "GBP", "JPY", "CHF", "CNY", "INR", "BRL", "XOF",
        ] {
            assert!(is_known_currency(code), "{code}");
        }
        for code in ["ABC", "EURO", "eur", "XAU", "XTS", "XXX", "HRK", ""] {
            assert!(!is_known_currency(code), "{code}");
        }
    }
}
