//! Between the domain and the wire: products as their Protobuf messages, the contract's
//! sub-messages and enums as domain values (with the field paths violations are reported
//! under), and [`ServiceError`] as the gRPC status the contract promises.

use agora_contracts::agora::{common::v1::Money, product::v1 as pb};
use agora_platform::{
    error::{ApiError, FieldViolations},
    time::timestamp,
};
use tonic::Status;

use crate::{
    domain::{
        CategorySlug, Currency, Description, FieldError, ImageUrl, Price, Product, ProductFields,
        ProductId, ProductName, Sku, Status as ProductStatus,
    },
    error::ServiceError,
};

/// A product as the contract shows it.
pub fn product(product: &Product) -> pb::Product {
    let fields = &product.fields;
    pb::Product {
        id: product.id.clone(),
        sku: fields.sku.as_str().to_owned(),
        name: fields.name.as_str().to_owned(),
        description: fields.description.as_str().to_owned(),
        category: fields.category.as_str().to_owned(),
        price: Some(money(&fields.price)),
        image_url: fields.image_url.as_str().to_owned(),
        status: product_status(product.status) as i32,
        create_time: Some(timestamp(product.created_at)),
        update_time: Some(timestamp(product.updated_at)),
    }
}

/// A price as the contract's money.
pub fn money(price: &Price) -> Money {
    Money {
        currency_code: price.currency.as_str().to_owned(),
        amount_minor: price.amount_minor,
    }
}

fn product_status(status: ProductStatus) -> pb::ProductStatus {
    match status {
        ProductStatus::Active => pb::ProductStatus::Active,
        ProductStatus::Archived => pb::ProductStatus::Archived,
    }
}

/// A category and its number of active products.
pub fn category((name, product_count): (String, i64)) -> pb::Category {
    pb::Category {
        name,
        product_count,
    }
}

/// Parses a price, recording every violation under `field` (e.g. `product.price`): its absence,
/// or its currency and its amount, both checked.
pub fn price(field: &str, raw: Option<&Money>, violations: &mut FieldViolations) -> Option<Price> {
    let Some(money) = raw else {
        violations.add(field, FieldError::Required.to_string());
        return None;
    };
    let currency = violations.take(
        &format!("{field}.currency_code"),
        Currency::parse(&money.currency_code),
    );
    let amount_minor = violations.take(
        &format!("{field}.amount_minor"),
        Price::amount(money.amount_minor),
    );
    Some(Price {
        currency: currency?,
        amount_minor: amount_minor?,
    })
}

/// Parses the settable fields of `product`, recording every violation as `product.<field>`;
/// the read-only fields are ignored, as CreateProduct documents.
pub fn product_fields(
    product: &pb::Product,
    violations: &mut FieldViolations,
) -> Option<ProductFields> {
    let sku = violations.take("product.sku", Sku::parse(&product.sku));
    let name = violations.take("product.name", ProductName::parse(&product.name));
    let description = violations.take(
        "product.description",
        Description::parse(&product.description),
    );
    let category = violations.take("product.category", CategorySlug::parse(&product.category));
    let price = price("product.price", product.price.as_ref(), violations);
    let image_url = violations.take("product.image_url", ImageUrl::parse(&product.image_url));
    Some(ProductFields {
        sku: sku?,
        name: name?,
        description: description?,
        category: category?,
        price: price?,
        image_url: image_url?,
    })
}

impl TryFrom<pb::CreateProductRequest> for ProductFields {
    type Error = ServiceError;

    /// The new product's fields, or every violation among them.
    fn try_from(request: pb::CreateProductRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let fields = match &request.product {
            Some(product) => product_fields(product, &mut violations),
            None => {
                violations.add("product", "is required");
                None
            }
        };
        match fields {
            Some(fields) if violations.is_empty() => Ok(fields),
            _ => Err(violations.into()),
        }
    }
}

/// The one id a request names in `field`, or its violation.
fn product_id(field: &str, raw: &str) -> Result<ProductId, ServiceError> {
    let mut violations = FieldViolations::default();
    match violations.take(field, ProductId::parse(raw)) {
        Some(id) => Ok(id),
        None => Err(violations.into()),
    }
}

impl TryFrom<pb::GetProductRequest> for ProductId {
    type Error = ServiceError;

    fn try_from(request: pb::GetProductRequest) -> Result<Self, Self::Error> {
        product_id("product_id", &request.product_id)
    }
}

impl TryFrom<pb::ArchiveProductRequest> for ProductId {
    type Error = ServiceError;

    fn try_from(request: pb::ArchiveProductRequest) -> Result<Self, Self::Error> {
        product_id("product_id", &request.product_id)
    }
}

/// The service's one error table: each failure with its code, its ErrorInfo reason or
/// ResourceInfo, and its message. Database failures are logged with their chain and answered
/// INTERNAL with the request id only.
impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        let message = error.to_string();
        let error = match error {
            ServiceError::InvalidArgument(violations) => violations.into_error(),
            ServiceError::SkuTaken => ApiError::AlreadyExists {
                reason: "SKU_TAKEN",
                message,
            },
            ServiceError::NotFound(id) => ApiError::NotFound {
                resource: "product",
                id,
            },
            ServiceError::Archived(_) => ApiError::FailedPrecondition {
                reason: "PRODUCT_ARCHIVED",
                message,
            },
            ServiceError::ArchivedListingForbidden => ApiError::PermissionDenied(message),
            ServiceError::Database(error) => ApiError::internal(error),
        };
        error.into()
    }
}

#[cfg(test)]
pub(crate) mod tests;
