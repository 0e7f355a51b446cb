//! The gRPC handlers of `agora.product.v1.ProductService`. Each parses its request into domain
//! types (collecting every field violation), calls the store or the cache, and maps the result.
//! Who may call each method is enforced before these run, from the contract's access options.

use std::collections::HashMap;

use agora_contracts::agora::{common::v1::Money, product::v1 as pb};
use agora_platform::{
    access::Principal,
    error::{ApiError, FieldViolations},
};
use tonic::{Request, Response, Status};

use crate::{
    cache::ProductCache,
    domain::{Product, ProductFields, Status as ProductStatus, parse_id},
    events::timestamp,
    listing::Listing,
    store::{Store, StoreError, now_micros},
    update::Changes,
};

/// The most ids one BatchGetProducts may ask for.
pub const MAX_BATCH: usize = 100;

/// The product service's handlers and what they share.
#[derive(Debug)]
pub struct ProductApi {
    store: Store,
    cache: ProductCache,
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::SkuTaken => ApiError::AlreadyExists {
                reason: "SKU_TAKEN",
                message: "another product has this sku".into(),
            },
            StoreError::NotFound(id) => ApiError::NotFound {
                resource: "product",
                id,
            },
            StoreError::Archived(id) => ApiError::FailedPrecondition {
                reason: "PRODUCT_ARCHIVED",
                message: format!("product {id} is archived and cannot change"),
            },
            StoreError::Database(error) => ApiError::internal(error),
        }
    }
}

/// A product as the contract shows it.
pub fn to_proto(product: &Product) -> pb::Product {
    let fields = &product.fields;
    pb::Product {
        id: product.id.clone(),
        sku: fields.sku.as_str().to_owned(),
        name: fields.name.as_str().to_owned(),
        description: fields.description.as_str().to_owned(),
        category: fields.category.as_str().to_owned(),
        price: Some(Money {
            currency_code: fields.price.currency.as_str().to_owned(),
            amount_minor: fields.price.amount_minor,
        }),
        image_url: fields.image_url.as_str().to_owned(),
        status: match product.status {
            ProductStatus::Active => pb::ProductStatus::Active,
            ProductStatus::Archived => pb::ProductStatus::Archived,
        } as i32,
        create_time: Some(timestamp(product.created_at)),
        update_time: Some(timestamp(product.updated_at)),
    }
}

/// Parses one id, recording a violation under `field`.
fn id_field(field: &str, raw: &str) -> Result<String, ApiError> {
    parse_id(raw).map_err(|problem| ApiError::invalid_field(field, problem))
}

/// Turns "parsed, or violations recorded" into the value or the INVALID_ARGUMENT.
fn parsed<T>(value: Option<T>, violations: FieldViolations) -> Result<T, ApiError> {
    violations.finish()?;
    value.ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!("parser returned no value and no violation"))
    })
}

impl ProductApi {
    /// Builds the handlers.
    pub fn new(store: Store, cache: ProductCache) -> Self {
        Self { store, cache }
    }

    /// One product by normalised id, through the cache.
    async fn product(&self, id: &str) -> Result<Option<pb::Product>, ApiError> {
        if let Some(product) = self.cache.get(id).await {
            return Ok(Some(product));
        }
        let Some(product) = self.store.get(id).await? else {
            return Ok(None);
        };
        let product = to_proto(&product);
        self.cache.put(&product).await;
        Ok(Some(product))
    }
}

#[tonic::async_trait]
impl pb::product_service_server::ProductService for ProductApi {
    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::CreateProductResponse>, Status> {
        let mut violations = FieldViolations::default();
        let fields = match &request.get_ref().product {
            Some(product) => ProductFields::parse(product, &mut violations),
            None => {
                violations.add("product", "is required");
                None
            }
        };
        let fields = parsed(fields, violations)?;
        let now = now_micros();
        let product = Product {
            id: uuid::Uuid::now_v7().to_string(),
            fields,
            status: ProductStatus::Active,
            created_at: now,
            updated_at: now,
        };
        self.store.create(&product).await.map_err(ApiError::from)?;
        tracing::info!(
            product_id = product.id,
            sku = product.fields.sku.as_str(),
            "product created"
        );
        Ok(Response::new(pb::CreateProductResponse {
            product: Some(to_proto(&product)),
        }))
    }

    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> Result<Response<pb::UpdateProductResponse>, Status> {
        let request = request.into_inner();
        let mut violations = FieldViolations::default();
        let Some(product) = &request.product else {
            return Err(ApiError::invalid_field("product", "is required").into());
        };
        let id = violations.take("product.id", parse_id(&product.id));
        let changes = Changes::parse(product, request.update_mask.as_ref(), &mut violations);
        let (id, changes) = parsed(id.zip(changes), violations)?;
        let result = self.store.update(&id, &changes).await;
        // The write may have committed even if a later step failed: invalidate either way.
        self.cache.invalidate(&id).await;
        let product = result.map_err(ApiError::from)?;
        Ok(Response::new(pb::UpdateProductResponse {
            product: Some(to_proto(&product)),
        }))
    }

    async fn archive_product(
        &self,
        request: Request<pb::ArchiveProductRequest>,
    ) -> Result<Response<pb::ArchiveProductResponse>, Status> {
        let id = id_field("product_id", &request.get_ref().product_id)?;
        let result = self.store.archive(&id).await;
        self.cache.invalidate(&id).await;
        let product = result.map_err(ApiError::from)?;
        Ok(Response::new(pb::ArchiveProductResponse {
            product: Some(to_proto(&product)),
        }))
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::GetProductResponse>, Status> {
        let id = id_field("product_id", &request.get_ref().product_id)?;
        match self.product(&id).await? {
            Some(product) => Ok(Response::new(pb::GetProductResponse {
                product: Some(product),
            })),
            None => Err(ApiError::NotFound {
                resource: "product",
                id,
            }
            .into()),
        }
    }

    async fn batch_get_products(
        &self,
        request: Request<pb::BatchGetProductsRequest>,
    ) -> Result<Response<pb::BatchGetProductsResponse>, Status> {
        let raw_ids = request.into_inner().product_ids;
        let mut violations = FieldViolations::default();
        if raw_ids.is_empty() {
            violations.add("product_ids", "must name at least one product");
        } else if raw_ids.len() > MAX_BATCH {
            violations.add(
                "product_ids",
                format!("must name at most {MAX_BATCH} products"),
            );
        }
        // Each id once, at its first position, with the spelling the caller used.
        let mut wanted: Vec<(String, String)> = Vec::with_capacity(raw_ids.len());
        for (i, raw) in raw_ids.into_iter().enumerate() {
            if let Some(id) = violations.take(&format!("product_ids[{i}]"), parse_id(&raw))
                && !wanted.iter().any(|(seen, _)| *seen == id)
            {
                wanted.push((id, raw));
            }
        }
        violations.finish()?;

        let ids: Vec<String> = wanted.iter().map(|(id, _)| id.clone()).collect();
        let mut found: HashMap<String, pb::Product> = HashMap::with_capacity(ids.len());
        let cached = self.cache.get_many(&ids).await;
        let misses: Vec<String> = ids
            .iter()
            .zip(cached)
            .filter_map(|(id, hit)| match hit {
                Some(product) => {
                    found.insert(id.clone(), product);
                    None
                }
                None => Some(id.clone()),
            })
            .collect();
        if !misses.is_empty() {
            let loaded: Vec<pb::Product> = self
                .store
                .get_many(&misses)
                .await
                .map_err(ApiError::from)?
                .iter()
                .map(to_proto)
                .collect();
            futures::future::join_all(loaded.iter().map(|product| self.cache.put(product))).await;
            found.extend(
                loaded
                    .into_iter()
                    .map(|product| (product.id.clone(), product)),
            );
        }

        let mut response = pb::BatchGetProductsResponse::default();
        for (id, raw) in wanted {
            match found.remove(&id) {
                Some(product) => response.products.push(product),
                None => response.missing_product_ids.push(raw),
            }
        }
        Ok(Response::new(response))
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let is_admin = request
            .extensions()
            .get::<Principal>()
            .is_some_and(Principal::is_admin);
        let request = request.into_inner();
        let mut violations = FieldViolations::default();
        let listing = Listing::parse(&request, &mut violations);
        let listing = parsed(listing, violations)?;
        if listing.filter.include_archived && !is_admin {
            return Err(ApiError::PermissionDenied(
                "only administrators may list archived products".into(),
            )
            .into());
        }
        let mut products = self.store.list(&listing).await.map_err(ApiError::from)?;
        let page_size = listing.page_size;
        let next_page_token = if products.len() > page_size {
            products.truncate(page_size);
            products
                .last()
                .map(|last| listing.token_after(last))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListProductsResponse {
            products: products.iter().map(to_proto).collect(),
            next_page_token,
        }))
    }

    async fn list_categories(
        &self,
        _: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        let categories = self.store.categories().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ListCategoriesResponse {
            categories: categories
                .into_iter()
                .map(|(name, product_count)| pb::Category {
                    name,
                    product_count,
                })
                .collect(),
        }))
    }
}
