//! The gRPC handlers of `agora.product.v1.ProductService`. Each parses its request into a domain
//! value (every field violation at once, see [`crate::wire`] and the `TryFrom` impls), calls the
//! store or the cache, and maps the result. Who may call each method is enforced before these
//! run, from the contract's access options.

use std::collections::HashMap;

use agora_contracts::agora::product::v1 as pb;
use agora_platform::access::Principal;
use tonic::{Request, Response, Status};

use crate::{
    cache::ProductCache,
    domain::{BatchLookup, Product, ProductFields, ProductId},
    error::ServiceError,
    listing::Listing,
    store::{Store, now_micros},
    update::ProductUpdate,
    wire,
};

/// The product service's handlers and what they share.
#[derive(Debug)]
pub struct ProductApi {
    store: Store,
    cache: ProductCache,
}

impl ProductApi {
    /// Builds the handlers.
    pub fn new(store: Store, cache: ProductCache) -> Self {
        Self { store, cache }
    }

    /// One product, through the cache.
    async fn product(&self, id: ProductId) -> Result<pb::Product, ServiceError> {
        if let Some(product) = self.cache.get(id.as_str()).await {
            return Ok(product);
        }
        let Some(product) = self.store.get(id.as_str()).await? else {
            return Err(ServiceError::NotFound(id.into_string()));
        };
        let product = wire::product(&product);
        self.cache.put(&product).await;
        Ok(product)
    }

    /// The products among `ids` that exist, by id: from the cache, the misses from the store
    /// in one query (and into the cache).
    async fn products(&self, ids: &[String]) -> Result<HashMap<String, pb::Product>, ServiceError> {
        let cached = self.cache.get_many(ids).await;
        let mut found = HashMap::with_capacity(ids.len());
        let mut misses = Vec::new();
        for (id, hit) in ids.iter().zip(cached) {
            match hit {
                Some(product) => {
                    found.insert(id.clone(), product);
                }
                None => misses.push(id.clone()),
            }
        }
        if misses.is_empty() {
            return Ok(found);
        }
        let loaded: Vec<pb::Product> = self
            .store
            .get_many(&misses)
            .await?
            .iter()
            .map(wire::product)
            .collect();
        futures::future::join_all(loaded.iter().map(|product| self.cache.put(product))).await;
        found.extend(
            loaded
                .into_iter()
                .map(|product| (product.id.clone(), product)),
        );
        Ok(found)
    }

    /// The product a `write` of product `id` left, as a message; `id` leaves the cache whether
    /// or not the write succeeded, since it may have committed even if a later step failed.
    async fn written(
        &self,
        id: &ProductId,
        write: impl Future<Output = Result<Product, ServiceError>>,
    ) -> Result<pb::Product, ServiceError> {
        let result = write.await;
        self.cache.invalidate(id.as_str()).await;
        Ok(wire::product(&result?))
    }
}

#[tonic::async_trait]
impl pb::product_service_server::ProductService for ProductApi {
    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::CreateProductResponse>, Status> {
        let fields = ProductFields::try_from(request.into_inner())?;
        let product = Product::new(uuid::Uuid::now_v7().to_string(), fields, now_micros());
        self.store.create(&product).await?;
        tracing::info!(
            product_id = product.id,
            sku = product.fields.sku.as_str(),
            "product created"
        );
        Ok(Response::new(pb::CreateProductResponse {
            product: Some(wire::product(&product)),
        }))
    }

    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> Result<Response<pb::UpdateProductResponse>, Status> {
        let ProductUpdate { id, changes } = ProductUpdate::try_from(request.into_inner())?;
        let product = self
            .written(&id, self.store.update(id.as_str(), &changes))
            .await?;
        Ok(Response::new(pb::UpdateProductResponse {
            product: Some(product),
        }))
    }

    async fn archive_product(
        &self,
        request: Request<pb::ArchiveProductRequest>,
    ) -> Result<Response<pb::ArchiveProductResponse>, Status> {
        let id = ProductId::try_from(request.into_inner())?;
        let product = self.written(&id, self.store.archive(id.as_str())).await?;
        Ok(Response::new(pb::ArchiveProductResponse {
            product: Some(product),
        }))
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::GetProductResponse>, Status> {
        let id = ProductId::try_from(request.into_inner())?;
        Ok(Response::new(pb::GetProductResponse {
            product: Some(self.product(id).await?),
        }))
    }

    async fn batch_get_products(
        &self,
        request: Request<pb::BatchGetProductsRequest>,
    ) -> Result<Response<pb::BatchGetProductsResponse>, Status> {
        let lookup = BatchLookup::try_from(request.into_inner())?;
        let found = self.products(&lookup.ids()).await?;
        let (products, missing_product_ids) = lookup.answer(found);
        Ok(Response::new(pb::BatchGetProductsResponse {
            products,
            missing_product_ids,
        }))
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let is_admin = request
            .extensions()
            .get::<Principal>()
            .is_some_and(Principal::is_admin);
        let listing = Listing::try_from(request.into_inner())?;
        listing.check_access(is_admin)?;
        let (products, next_page_token) = listing.page(self.store.list(&listing).await?);
        Ok(Response::new(pb::ListProductsResponse {
            products: products.iter().map(wire::product).collect(),
            next_page_token,
        }))
    }

    async fn list_categories(
        &self,
        _: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        let categories = self.store.categories().await?;
        Ok(Response::new(pb::ListCategoriesResponse {
            categories: categories.into_iter().map(wire::category).collect(),
        }))
    }
}
