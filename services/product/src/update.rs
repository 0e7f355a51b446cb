//! What an UpdateProduct may change: the field mask, the new values, and the product they make.

use agora_contracts::agora::product::v1 as pb;
use agora_platform::error::FieldViolations;

use crate::{
    domain::{
        CategorySlug, Description, ImageUrl, Price, ProductFields, ProductId, ProductName, Sku,
    },
    error::ServiceError,
    wire,
};

/// The fields an update may name, as the contract lists them.
pub const UPDATABLE: [&str; 6] = [
    "sku",
    "name",
    "description",
    "category",
    "price",
    "image_url",
];

/// The fields only the service sets.
const READ_ONLY: [&str; 4] = ["id", "status", "create_time", "update_time"];

/// A parsed UpdateProduct request: which product, and what changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductUpdate {
    /// The product to change.
    pub id: ProductId,
    /// What to change.
    pub changes: Changes,
}

impl TryFrom<pb::UpdateProductRequest> for ProductUpdate {
    type Error = ServiceError;

    /// The product's id and the changes, or every violation among them (`product.id`, the
    /// mask's paths and the new values). Without a product there is nothing else to check.
    fn try_from(request: pb::UpdateProductRequest) -> Result<Self, Self::Error> {
        let mut violations = FieldViolations::default();
        let Some(product) = &request.product else {
            violations.add("product", "is required");
            return Err(violations.into());
        };
        let id = violations.take("product.id", ProductId::parse(&product.id));
        let changes = Changes::parse(product, request.update_mask.as_ref(), &mut violations);
        match (id, changes) {
            (Some(id), Some(changes)) if violations.is_empty() => Ok(Self { id, changes }),
            _ => Err(violations.into()),
        }
    }
}

/// The new values of the fields an update names; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// A new SKU.
    pub sku: Option<Sku>,
    /// A new name.
    pub name: Option<ProductName>,
    /// A new description.
    pub description: Option<Description>,
    /// A new category.
    pub category: Option<CategorySlug>,
    /// A new price.
    pub price: Option<Price>,
    /// A new image URL (empty clears it).
    pub image_url: Option<ImageUrl>,
}

impl Changes {
    /// Reads the fields `mask` names from `product`, recording every violation: unknown or
    /// read-only paths as `update_mask.paths[i]`, bad values as `product.<field>`.
    ///
    /// An absent or empty mask means every updatable field that is set (non-empty) in `product`,
    /// so clearing a field needs a mask that names it.
    pub fn parse(
        product: &pb::Product,
        mask: Option<&prost_types::FieldMask>,
        violations: &mut FieldViolations,
    ) -> Option<Self> {
        // Values are checked even when the mask has bad paths, so one answer lists every problem.
        let (named, mut valid) = named_fields(product, mask, violations);
        let mut changes = Self::default();
        for field in named {
            let path = format!("product.{field}");
            let ok = match field {
                "sku" => {
                    changes.sku = violations.take(&path, Sku::parse(&product.sku));
                    changes.sku.is_some()
                }
                "name" => {
                    changes.name = violations.take(&path, ProductName::parse(&product.name));
                    changes.name.is_some()
                }
                "description" => {
                    changes.description =
                        violations.take(&path, Description::parse(&product.description));
                    changes.description.is_some()
                }
                "category" => {
                    changes.category =
                        violations.take(&path, CategorySlug::parse(&product.category));
                    changes.category.is_some()
                }
                "price" => {
                    changes.price = wire::price(&path, product.price.as_ref(), violations);
                    changes.price.is_some()
                }
                _ => {
                    changes.image_url = violations.take(&path, ImageUrl::parse(&product.image_url));
                    changes.image_url.is_some()
                }
            };
            valid &= ok;
        }
        valid.then_some(changes)
    }

    /// The product's fields with these changes applied.
    pub fn apply(&self, current: &ProductFields) -> ProductFields {
        ProductFields {
            sku: self.sku.clone().unwrap_or_else(|| current.sku.clone()),
            name: self.name.clone().unwrap_or_else(|| current.name.clone()),
            description: self
                .description
                .clone()
                .unwrap_or_else(|| current.description.clone()),
            category: self
                .category
                .clone()
                .unwrap_or_else(|| current.category.clone()),
            price: self.price.clone().unwrap_or_else(|| current.price.clone()),
            image_url: self
                .image_url
                .clone()
                .unwrap_or_else(|| current.image_url.clone()),
        }
    }
}

/// The updatable fields an update names, each once, in the contract's order, and whether the
/// mask was valid.
fn named_fields(
    product: &pb::Product,
    mask: Option<&prost_types::FieldMask>,
    violations: &mut FieldViolations,
) -> (Vec<&'static str>, bool) {
    let paths = mask.map(|mask| mask.paths.as_slice()).unwrap_or_default();
    if paths.is_empty() {
        let set = [
            !product.sku.is_empty(),
            !product.name.is_empty(),
            !product.description.is_empty(),
            !product.category.is_empty(),
            product.price.is_some(),
            !product.image_url.is_empty(),
        ];
        let named: Vec<_> = UPDATABLE
            .iter()
            .zip(set)
            .filter_map(|(field, set)| set.then_some(*field))
            .collect();
        if named.is_empty() {
            violations.add(
                "update_mask",
                "is empty and the product sets none of the updatable fields",
            );
            return (named, false);
        }
        return (named, true);
    }
    let mut valid = true;
    for (i, path) in paths.iter().enumerate() {
        let field = format!("update_mask.paths[{i}]");
        if READ_ONLY.contains(&path.as_str()) {
            violations.add(field, format!("names the read-only field `{path}`"));
            valid = false;
        } else if !UPDATABLE.contains(&path.as_str()) {
            violations.add(
                field,
                format!(
                    "names `{path}`, which is not an updatable field (one of {})",
                    UPDATABLE.join(", ")
                ),
            );
            valid = false;
        }
    }
    let named = UPDATABLE
        .iter()
        .copied()
        .filter(|field| paths.iter().any(|path| path == field))
        .collect();
    (named, valid)
}

#[cfg(test)]
mod tests {
    use agora_contracts::agora::common::v1::Money;

    use super::*;

    fn mask(paths: &[&str]) -> prost_types::FieldMask {
        prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn fields() -> ProductFields {
        let mut violations = FieldViolations::default();
        wire::product_fields(
            &pb::Product {
                sku: "MUG".into(),
                name: "Mug".into(),
                description: "A mug".into(),
                category: "kitchen".into(),
                price: Some(Money {
                    currency_code: "EUR".into(),
                    amount_minor: 1000,
                }),
                image_url: "https://cdn.example.com/mug.png".into(),
                ..Default::default()
            },
            &mut violations,
        )
        .expect("valid")
    }

    /// The changes `update` makes under a mask of `paths` (`None`: no mask), and the violations
    /// recorded on the way.
    fn parse(update: pb::Product, paths: Option<&[&str]>) -> (Option<Changes>, FieldViolations) {
        let mut violations = FieldViolations::default();
        let changes = Changes::parse(&update, paths.map(mask).as_ref(), &mut violations);
        (changes, violations)
    }

    #[test]
    fn a_mask_changes_only_the_fields_it_names_and_can_clear_one() {
        let update = pb::Product {
            name: "Big mug".into(),
            sku: "IGNORED".into(),
            ..Default::default()
        };
        let (changes, _) = parse(update, Some(&["name", "image_url", "name"]));
        let after = changes.expect("valid").apply(&fields());
        assert_eq!(after.name.as_str(), "Big mug");
        assert_eq!(after.image_url.as_str(), "");
        assert_eq!(after.sku.as_str(), "MUG");
    }

    #[test]
    fn an_empty_mask_means_the_fields_that_are_set() {
        let update = pb::Product {
            description: "Now bigger".into(),
            ..Default::default()
        };
        let (changes, _) = parse(update, None);
        let after = changes.expect("valid").apply(&fields());
        assert_eq!(after.description.as_str(), "Now bigger");
        assert_eq!(after.image_url.as_str(), "https://cdn.example.com/mug.png");
        assert_eq!(after.name.as_str(), "Mug");
    }

    #[test]
    fn an_empty_mask_with_nothing_set_is_refused() {
        let (changes, violations) = parse(pb::Product::default(), Some(&[]));
        assert!(changes.is_none());
        assert!(!violations.is_empty());
    }

    #[test]
    fn unknown_and_read_only_paths_and_bad_values_are_reported_together() {
        let update = pb::Product {
            name: " ".into(),
            ..Default::default()
        };
        let (parsed, violations) = parse(update, Some(&["name", "status", "colour"]));
        assert!(parsed.is_none());
        let status = tonic::Status::from(violations.into_error());
        assert!(status.message().contains("3 invalid fields"), "{status:?}");
    }

    fn update(product: Option<pb::Product>, paths: &[&str]) -> Result<ProductUpdate, ServiceError> {
        ProductUpdate::try_from(pb::UpdateProductRequest {
            product,
            update_mask: Some(mask(paths)),
        })
    }

    #[test]
    fn a_valid_update_request_names_its_product_and_its_changes() {
        let id = uuid::Uuid::now_v7();
        let change = pb::Product {
            id: id.simple().to_string(),
            name: "Big mug".into(),
            ..Default::default()
        };
        let parsed = update(Some(change), &["name"]).expect("valid");
        assert_eq!(parsed.id.as_str(), id.to_string());
        assert_eq!(
            parsed.changes.name.as_ref().map(ProductName::as_str),
            Some("Big mug")
        );
        assert_eq!(parsed.changes.sku, None);
    }

    #[test]
    fn an_update_request_with_every_part_wrong_reports_every_violation() {
        let change = pb::Product {
            id: "not-a-uuid".into(),
            name: " ".into(),
            price: Some(Money {
                currency_code: "eur".into(),
                amount_minor: -5,
            }),
            ..Default::default()
        };
        let error = update(Some(change), &["name", "price", "status", "colour"]).expect_err("bad");
        assert_eq!(
            wire::tests::violated_fields(error),
            [
                "product.id",
                "update_mask.paths[2]",
                "update_mask.paths[3]",
                "product.name",
                "product.price.currency_code",
                "product.price.amount_minor",
            ]
        );
    }

    #[test]
    fn an_update_request_without_a_product_reports_only_that() {
        let error = update(None, &["name", "colour"]).expect_err("no product");
        assert_eq!(
            wire::tests::violations(error),
            [("product".to_owned(), "is required".to_owned())]
        );
    }
}
