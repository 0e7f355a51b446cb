use crate::listing::Order;
use agora_platform::context::CallContext;
use tonic::Code;
use tonic_types::StatusExt as _;

use super::*;

/// The `(field, description)` pairs of an INVALID_ARGUMENT, in the order they were found.
pub(crate) fn violations(error: ServiceError) -> Vec<(String, String)> {
    let status = Status::from(error);
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The fields an INVALID_ARGUMENT names, in the order they were found.
pub(crate) fn violated_fields(error: ServiceError) -> Vec<String> {
    violations(error)
        .into_iter()
        .map(|(field, _)| field)
        .collect()
}

fn mug() -> pb::Product {
    pb::Product {
        sku: "MUG".into(),
        name: "  Mug  ".into(),
        description: "A mug".into(),
        category: "kitchen".into(),
        price: Some(Money {
            currency_code: "EUR".into(),
            amount_minor: 1000,
        }),
        image_url: "https://cdn.example.com/mug.png".into(),
        ..Default::default()
    }
}

fn create(product: Option<pb::Product>) -> Result<ProductFields, ServiceError> {
    ProductFields::try_from(pb::CreateProductRequest { product })
}

#[test]
fn a_valid_create_request_becomes_the_new_products_fields() {
    let fields = create(Some(mug())).expect("valid");
    assert_eq!(fields.name.as_str(), "Mug");
    assert_eq!(fields.price.amount_minor, 1000);
    assert_eq!(fields.image_url.as_str(), "https://cdn.example.com/mug.png");
}

#[test]
fn a_create_request_with_every_field_wrong_reports_every_violation() {
    let wrong = pb::Product {
        sku: "mug".into(),
        name: " ".into(),
        description: "nul \0".into(),
        category: "Kitchen".into(),
        price: Some(Money {
            currency_code: "eur".into(),
            amount_minor: -1,
        }),
        image_url: "http://cdn.example.com/mug.png".into(),
        ..Default::default()
    };
    let found = violations(create(Some(wrong)).expect_err("invalid"));
    let expected = [
        ("product.sku", "must match ^[A-Z0-9][A-Z0-9_-]{0,63}$"),
        ("product.name", "is required"),
        ("product.description", "must not contain control characters"),
        ("product.category", "must match ^[a-z0-9]+(-[a-z0-9]+)*$"),
        (
            "product.price.currency_code",
            "must be a known ISO 4217 currency code in upper case, e.g. EUR",
        ),
        ("product.price.amount_minor", "must be at least 0"),
        (
            "product.image_url",
            "must be an absolute https URL, or empty",
        ),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(field, description)| ((*field).to_owned(), (*description).to_owned()))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn a_create_request_without_a_product_or_a_price_says_so() {
    assert_eq!(
        violations(create(None).expect_err("no product")),
        [("product".to_owned(), "is required".to_owned())]
    );
    let priceless = pb::Product {
        price: None,
        ..mug()
    };
    assert_eq!(
        violated_fields(create(Some(priceless)).expect_err("no price")),
        ["product.price"]
    );
}

#[test]
fn a_price_reports_its_currency_and_amount_problems_together() {
    let mut violations = FieldViolations::default();
    let money = Money {
        currency_code: "ZZZ".into(),
        amount_minor: -1,
    };
    assert!(price("product.price", Some(&money), &mut violations).is_none());
    let status = tonic::Status::from(violations.into_error());
    assert!(status.message().contains("2 invalid fields"), "{status:?}");
}

#[test]
fn a_price_is_bounded_so_no_order_total_overflows() {
    let price = |amount_minor| {
        let mut violations = FieldViolations::default();
        let money = Money {
            currency_code: "EUR".into(),
            amount_minor,
        };
        let parsed = price("product.price", Some(&money), &mut violations);
        (parsed.map(|p| p.amount_minor), violations.finish().is_ok())
    };
    assert_eq!(price(Price::MAX_MINOR), (Some(Price::MAX_MINOR), true));
    assert_eq!(price(Price::MAX_MINOR + 1), (None, false));
    assert_eq!(price(i64::MAX), (None, false));
    // The order contract's bounds: 50 lines of at most 999 units.
    assert!(Price::MAX_MINOR.checked_mul(999 * 50).is_some());
}

#[test]
fn get_and_archive_requests_become_normalised_ids() {
    let id = uuid::Uuid::now_v7();
    let shouted = id.simple().to_string().to_uppercase();
    let get = ProductId::try_from(pb::GetProductRequest {
        product_id: shouted.clone(),
    })
    .expect("valid");
    let archive = ProductId::try_from(pb::ArchiveProductRequest {
        product_id: shouted,
    })
    .expect("valid");
    assert_eq!(get.as_str(), id.to_string());
    assert_eq!(get, archive);
}

#[test]
fn get_and_archive_requests_with_a_bad_id_report_it_as_product_id() {
    let get = ProductId::try_from(pb::GetProductRequest {
        product_id: "42".into(),
    });
    assert_eq!(
        violations(get.expect_err("invalid")),
        [("product_id".to_owned(), "must be a UUID".to_owned())]
    );
    let archive = ProductId::try_from(pb::ArchiveProductRequest::default());
    assert_eq!(
        violations(archive.expect_err("invalid")),
        [("product_id".to_owned(), "is required".to_owned())]
    );
}

#[test]
fn unspecified_orders_are_newest_first_and_unknown_ones_are_refused() {
    assert_eq!(
        Order::from_proto(pb::ProductOrder::Unspecified as i32),
        Some(Order::Newest)
    );
    assert_eq!(
        Order::from_proto(pb::ProductOrder::Name as i32),
        Some(Order::Name)
    );
    assert_eq!(Order::from_proto(42), None);
}

#[test]
fn each_failure_has_its_code_reason_and_message() {
    let reason = |status: &Status| {
        status
            .get_error_details()
            .error_info()
            .map(|info| info.reason.clone())
    };
    let taken = Status::from(ServiceError::SkuTaken);
    assert_eq!(taken.code(), Code::AlreadyExists);
    assert_eq!(taken.message(), "another product has this sku");
    assert_eq!(reason(&taken).as_deref(), Some("SKU_TAKEN"));

    let archived = Status::from(ServiceError::Archived("p-1".into()));
    assert_eq!(archived.code(), Code::FailedPrecondition);
    assert_eq!(
        archived.message(),
        "product p-1 is archived and cannot change"
    );
    assert_eq!(reason(&archived).as_deref(), Some("PRODUCT_ARCHIVED"));

    let missing = Status::from(ServiceError::NotFound("p-2".into()));
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(missing.message(), "product not found");
    let resource = missing.get_error_details().resource_info().cloned();
    assert_eq!(
        resource.map(|info| (info.resource_type, info.resource_name)),
        Some(("product".to_owned(), "p-2".to_owned()))
    );

    let forbidden = Status::from(ServiceError::ArchivedListingForbidden);
    assert_eq!(forbidden.code(), Code::PermissionDenied);
    assert_eq!(
        forbidden.message(),
        "only administrators may list archived products"
    );
}

#[tokio::test]
async fn database_failures_are_internal_with_the_request_id_and_no_cause() {
    let call = CallContext {
        request_id: "req-7".into(),
        deadline: None,
    };
    let status = call
        .scope(async {
            Status::from(ServiceError::Database(sqlx::Error::Protocol(
                "connection to 10.0.0.7:5432 refused".into(),
            )))
        })
        .await;
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(status.message(), "internal error");
    assert!(!format!("{:?}", status.details()).contains("5432"));
    let details = status.get_error_details();
    assert_eq!(
        details.request_info().map(|info| info.request_id.clone()),
        Some("req-7".to_owned())
    );
}
