use super::*;

fn home() -> AddressFields {
    AddressFields {
        label: "Home".into(),
        recipient: "Ada Lovelace".into(),
        line1: "Unter den Linden 1".into(),
        line2: String::new(),
        city: "Berlin".into(),
        region: String::new(),
        postal_code: "10117".into(),
        country_code: "de".into(),
    }
}

fn fields_of(violations: &[(String, String)]) -> Vec<&str> {
    violations.iter().map(|(field, _)| field.as_str()).collect()
}

#[test]
fn display_names_are_trimmed_and_limited_to_100_characters() {
    assert_eq!(DisplayName::parse("  Ada  ").map(|n| n.0), Ok("Ada".into()));
    assert_eq!(DisplayName::parse("").map(|n| n.0), Ok(String::new()));
    assert!(
        DisplayName::parse(&"ß".repeat(100)).is_ok(),
        "counted in characters"
    );
    assert_eq!(
        DisplayName::parse(&"a".repeat(101)),
        Err(TextError::TooLong(100))
    );
    assert_eq!(
        DisplayName::parse("Ada\nLovelace"),
        Err(TextError::ControlCharacters)
    );
}

#[test]
fn a_valid_address_is_trimmed_and_its_country_upper_cased() {
    let mut raw = home();
    raw.city = "  Berlin ".into();
    let address = Address::parse(&raw).expect("valid");
    assert_eq!(address.fields().city, "Berlin");
    assert_eq!(address.fields().country_code, "DE");
}

#[test]
fn an_address_reports_every_broken_field_at_once() {
    let raw = AddressFields {
        label: "x".repeat(51),
        recipient: " ".into(),
        line1: String::new(),
        line2: "y".repeat(201),
        city: String::new(),
        region: "r".repeat(101),
        postal_code: "1".repeat(21),
        country_code: "XX".into(),
    };
    let violations = Address::parse(&raw).expect_err("invalid");
    let fields: Vec<&str> = violations.iter().map(|(field, _)| *field).collect();
    assert_eq!(
        fields,
        [
            "label",
            "recipient",
            "line1",
            "line2",
            "city",
            "region",
            "postal_code",
            "country_code"
        ]
    );
    let mut missing_country = home();
    missing_country.country_code = String::new();
    assert_eq!(
        Address::parse(&missing_country),
        Err(vec![("country_code", "is required".to_owned())])
    );
}

#[test]
fn address_lists_hold_at_most_ten_with_unique_labels() {
    let eleven = vec![
        AddressFields {
            label: String::new(),
            ..home()
        };
        11
    ];
    let violations = Addresses::parse(&eleven).expect_err("too many");
    assert_eq!(fields_of(&violations), [""]);

    let mut work = home();
    work.label = " HOME ".into();
    let violations = Addresses::parse(&[home(), work]).expect_err("duplicate label");
    assert_eq!(fields_of(&violations), ["[1].label"]);

    let unlabelled = AddressFields {
        label: String::new(),
        ..home()
    };
    assert!(
        Addresses::parse(&[unlabelled.clone(), unlabelled]).is_ok(),
        "empty labels may repeat"
    );
}

#[test]
fn address_violations_name_the_address_they_belong_to() {
    let mut broken = home();
    broken.label = "Work".into();
    broken.city = String::new();
    let violations = Addresses::parse(&[home(), broken]).expect_err("invalid");
    assert_eq!(fields_of(&violations), ["[1].city"]);
}

#[test]
fn language_tags_are_checked_and_put_in_canonical_case() {
    for (raw, canonical) in [
        ("en", "en"),
        ("PT-br", "pt-BR"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("de-ch-1996", "de-CH-1996"),
        ("en-US-x-Twain", "en-US-x-twain"),
        (" fr ", "fr"),
        ("", ""),
    ] {
        assert_eq!(
            Language::parse(raw).map(|l| l.0).as_deref(),
            Ok(canonical),
            "{raw}"
        );
    }
    for raw in [
        "e",
        "englishlanguage",
        "en_US",
        "en-",
        "-en",
        "en--US",
        "12",
        "en-x",
        "en-ü",
    ] {
        assert_eq!(Language::parse(raw), Err(LanguageError::Malformed), "{raw}");
    }
    assert_eq!(
        Language::parse(&format!("en{}", "-abcdefgh".repeat(4))),
        Err(LanguageError::TooLong)
    );
}

#[test]
fn currencies_must_be_circulating_iso_4217_codes() {
    assert_eq!(CurrencyCode::parse(" eur ").map(|c| c.0), Ok("EUR".into()));
    assert_eq!(CurrencyCode::parse("").map(|c| c.0), Ok(String::new()));
    for raw in ["EU", "EURO", "ABC", "XAU"] {
        assert_eq!(CurrencyCode::parse(raw), Err(CurrencyError), "{raw}");
    }
}

#[test]
fn mask_paths_select_updatable_fields_and_refuse_the_rest() {
    let mut selection = Selection::default();
    selection.add_path("display_name").expect("updatable");
    selection
        .add_path("preferences.language")
        .expect("updatable");
    assert_eq!(
        selection,
        Selection {
            display_name: true,
            language: true,
            ..Selection::default()
        }
    );

    let mut preferences = Selection::default();
    preferences.add_path("preferences").expect("updatable");
    assert!(preferences.language && preferences.currency_code && preferences.marketing_emails);
    assert!(!preferences.display_name && !preferences.addresses);

    let mut everything = Selection::default();
    everything.add_path("*").expect("the wildcard");
    assert!(everything.display_name && everything.addresses && everything.marketing_emails);

    for path in ["user_id", "email", "create_time", "update_time.seconds"] {
        assert_eq!(
            Selection::default().add_path(path),
            Err(MaskError::ReadOnly),
            "{path}"
        );
    }
    assert_eq!(
        Selection::default().add_path("addresses.city"),
        Err(MaskError::AddressSubField)
    );
    for path in ["nickname", "preferences.theme", "", "display_name.first"] {
        assert_eq!(
            Selection::default().add_path(path),
            Err(MaskError::Unknown),
            "{path}"
        );
    }
}

#[test]
fn registrations_normalise_their_id_and_email() {
    let registration = Registration::parse(
        "0190A4B2-7C3D-7E8F-9A0B-1C2D3E4F5A6B",
        " Ada@Example.com ",
        42,
    )
    .expect("valid");
    assert_eq!(registration.user_id, "0190a4b2-7c3d-7e8f-9a0b-1c2d3e4f5a6b");
    assert_eq!(registration.email, "ada@example.com");
    assert_eq!(
        Registration::parse("not-a-uuid", "ada@example.com", 42),
        Err(RegistrationError::UserId)
    );
    assert_eq!(
        Registration::parse("0190a4b2-7c3d-7e8f-9a0b-1c2d3e4f5a6b", " ", 42),
        Err(RegistrationError::Email)
    );
}

#[test]
fn page_sizes_default_to_20_and_are_capped_at_100() {
    assert_eq!(page_size(0), Ok(20));
    assert_eq!(page_size(7), Ok(7));
    assert_eq!(page_size(1000), Ok(100));
    assert_eq!(page_size(-1), Err(NegativePageSize));
}

#[test]
fn email_prefixes_are_lower_cased_and_escaped_for_like() {
    let prefix = EmailPrefix::parse("  Ada_100%\\ ").expect("valid");
    assert_eq!(prefix.as_str(), "ada_100%\\");
    assert_eq!(prefix.like_pattern(), "ada\\_100\\%\\\\%");
    assert_eq!(
        EmailPrefix::parse(&"a".repeat(255)),
        Err(EmailPrefixError::TooLong)
    );
}

#[test]
fn page_tokens_round_trip_and_are_bound_to_their_filter() {
    let filter = EmailPrefix::parse("a|b").expect("valid");
    let token = PageToken {
        cursor: Cursor {
            created_at: 1_700_000_000_000_000,
            user_id: "0190a4b2-7c3d-7e8f-9a0b-1c2d3e4f5a6b".into(),
        },
        filter: filter.clone(),
    };
    let encoded = token.encode();
    assert_eq!(PageToken::decode(&encoded, &filter), Ok(token.cursor));
    assert_eq!(
        PageToken::decode(&encoded, &EmailPrefix::default()),
        Err(PageTokenError::OtherFilter)
    );
    for raw in ["garbage!", "djE", "", "djF8eHx5fHo"] {
        assert_eq!(
            PageToken::decode(raw, &filter),
            Err(PageTokenError::Malformed),
            "{raw}"
        );
    }
}

#[test]
fn a_page_holds_at_most_its_size_and_a_next_token_only_when_more_follow() {
    let profile = |n: i64| Profile {
        user_id: format!("0190a4b2-7c3d-7e8f-9a0b-1c2d3e4f5a6{n}"),
        email: format!("user{n}@example.com"),
        display_name: String::new(),
        addresses: Vec::new(),
        language: String::new(),
        currency_code: String::new(),
        marketing_emails: false,
        created_at: 100 - n,
        updated_at: 100 - n,
    };
    let listing = Listing {
        size: 2,
        filter: EmailPrefix::parse("user").expect("valid"),
        after: None,
    };
    assert_eq!(listing.fetch_limit(), 3);
    let page = listing.clone().page((1..=3).map(profile).collect());
    assert_eq!(page.profiles, [profile(1), profile(2)]);
    assert_eq!(
        page.next,
        Some(PageToken {
            cursor: Cursor {
                created_at: 98,
                user_id: profile(2).user_id,
            },
            filter: listing.filter.clone(),
        })
    );
    let last = listing.page((1..=2).map(profile).collect());
    assert_eq!(last.profiles.len(), 2);
    assert_eq!(last.next, None);
}
