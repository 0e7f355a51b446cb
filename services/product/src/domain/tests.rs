use super::*;

#[test]
fn skus_follow_the_contract_pattern() {
    for good in ["MUG-BLUE-350", "A", "0_X", &"A".repeat(64)] {
        assert!(Sku::parse(good).is_ok(), "{good}");
    }
    assert_eq!(Sku::parse(""), Err(FieldError::Required));
    for bad in ["mug", "-MUG", "_A", "MUG BLUE", "MÜG", &"A".repeat(65)] {
        assert_eq!(
            Sku::parse(bad),
            Err(FieldError::Pattern(Sku::PATTERN)),
            "{bad}"
        );
    }
}

#[test]
fn names_are_trimmed_and_counted_in_characters() {
    let name = ProductName::parse("  Blue mug  ").expect("valid");
    assert_eq!(name.as_str(), "Blue mug");
    assert_eq!(ProductName::parse("   "), Err(FieldError::Required));
    assert!(ProductName::parse(&"é".repeat(200)).is_ok());
    assert_eq!(
        ProductName::parse(&"é".repeat(201)),
        Err(FieldError::TooLong(200))
    );
    assert_eq!(
        ProductName::parse("blue\u{7}mug"),
        Err(FieldError::ControlCharacters)
    );
}

#[test]
fn descriptions_keep_line_breaks_but_refuse_other_control_characters() {
    assert!(Description::parse("").is_ok());
    assert!(Description::parse("line one\nline two\ttabbed\r\n").is_ok());
    assert_eq!(
        Description::parse("nul \0 byte"),
        Err(FieldError::ControlCharacters)
    );
    assert_eq!(
        Description::parse(&"x".repeat(5001)),
        Err(FieldError::TooLong(5000))
    );
}

#[test]
fn category_slugs_are_lower_case_words_joined_by_single_hyphens() {
    for good in ["kitchen", "home-office", "a1-b2-c3"] {
        assert!(CategorySlug::parse(good).is_ok(), "{good}");
    }
    for bad in [
        "Kitchen",
        "home--office",
        "-home",
        "home-",
        "home office",
        "küche",
    ] {
        assert_eq!(
            CategorySlug::parse(bad),
            Err(FieldError::Pattern(CategorySlug::PATTERN)),
            "{bad}"
        );
    }
    assert_eq!(
        CategorySlug::parse(&"a".repeat(51)),
        Err(FieldError::TooLong(50))
    );
}

#[test]
fn currencies_must_be_real_iso_4217_codes() {
    for good in ["EUR", "USD", "JPY", "CHF", "XOF"] {
        assert!(Currency::parse(good).is_ok(), "{good}");
    }
    for bad in ["eur", "ABC", "EU", "EURO", "XXX", "XTS"] {
        assert_eq!(
            Currency::parse(bad),
            Err(FieldError::UnknownCurrency),
            "{bad}"
        );
    }
}

#[test]
fn sort_and_search_keys_are_lower_cased_in_rust() {
    let mut violations = agora_platform::error::FieldViolations::default();
    let fields = crate::wire::product_fields(
        &agora_contracts::agora::product::v1::Product {
            sku: "MUG".into(),
            name: "Ärger MUG".into(),
            description: "Große Tasse".into(),
            category: "kitchen".into(),
            price: Some(agora_contracts::agora::common::v1::Money {
                currency_code: "EUR".into(),
                amount_minor: 1999,
            }),
            ..Default::default()
        },
        &mut violations,
    )
    .expect("valid");
    assert_eq!(fields.name_key(), "ärger mug");
    assert_eq!(fields.search_text(), "ärger mug\ngroße tasse");
}
