//! What the product tests share: a mesh with auth and product, an admin token, a client, and
//! helpers to build products and read error details.

// `pub` is for the test modules of this binary, the widest reach these helpers have.
#![allow(unreachable_pub)]

use agora_contracts::agora::{
    common::v1::Money,
    product::v1::{self as pb, product_service_client::ProductServiceClient},
};
use agora_platform::config::ServiceKind;
#[allow(unused_imports)] // Not every test binary that shares this module reads statuses.
pub use agora_testkit::assertions::reason;
use agora_testkit::{TestBackend, TestMesh, authed};
use tonic::{Request, Status, transport::Channel};

/// A mesh running auth and product, and the admin's token.
pub struct Catalog {
    pub mesh: TestMesh,
    pub admin: String,
}

impl Catalog {
    /// Starts auth and product on `backend`; `None` when its servers are down outside CI.
    pub async fn start(backend: TestBackend) -> Option<Self> {
        Self::start_with(backend, &[]).await
    }

    /// Like [`Catalog::start`], with extra settings for the product service.
    pub async fn start_with(
        backend: TestBackend,
        tweak: &[(&str, serde_json::Value)],
    ) -> Option<Self> {
        let mut mesh = TestMesh::start(backend).await?;
        mesh.spawn_with(
            ServiceKind::Product,
            tweak,
            |config, listener, shutdown| async move {
                agora_product::SERVICE
                    .serve(&config, listener, shutdown)
                    .await
            },
        )
        .await;
        let admin = mesh.admin_token().await;
        Some(Self { mesh, admin })
    }

    /// A client of the product service.
    pub fn client(&self) -> ProductServiceClient<Channel> {
        ProductServiceClient::new(self.mesh.channel(ServiceKind::Product))
    }

    /// Creates `product` as the admin.
    pub async fn create(&self, product: pb::Product) -> pb::Product {
        self.client()
            .create_product(authed(
                pb::CreateProductRequest {
                    product: Some(product),
                },
                &self.admin,
            ))
            .await
            .expect("the admin creates the product")
            .into_inner()
            .product
            .expect("a created product")
    }

    /// Changes `product` as the admin; `mask` empty means the fields set in `product`.
    pub async fn update(&self, product: pb::Product, mask: &[&str]) -> Result<pb::Product, Status> {
        let response = self
            .client()
            .update_product(authed(
                pb::UpdateProductRequest {
                    product: Some(product),
                    update_mask: Some(prost_types::FieldMask {
                        paths: mask.iter().map(|p| (*p).to_owned()).collect(),
                    }),
                },
                &self.admin,
            ))
            .await?;
        Ok(response.into_inner().product.expect("an updated product"))
    }

    /// Archives a product as the admin.
    pub async fn archive(&self, product_id: &str) -> Result<pb::Product, Status> {
        let response = self
            .client()
            .archive_product(authed(
                pb::ArchiveProductRequest {
                    product_id: product_id.into(),
                },
                &self.admin,
            ))
            .await?;
        Ok(response.into_inner().product.expect("an archived product"))
    }

    /// Reads a product anonymously.
    pub async fn get(&self, product_id: &str) -> Result<pb::Product, Status> {
        let response = self
            .client()
            .get_product(pb::GetProductRequest {
                product_id: product_id.into(),
            })
            .await?;
        Ok(response.into_inner().product.expect("a product"))
    }
}

/// One page of a listing.
pub async fn list(
    client: &mut ProductServiceClient<Channel>,
    request: Request<pb::ListProductsRequest>,
) -> pb::ListProductsResponse {
    client
        .list_products(request)
        .await
        .expect("listing works")
        .into_inner()
}

/// The ids of products, in order.
pub fn ids(products: &[pb::Product]) -> Vec<String> {
    products.iter().map(|p| p.id.clone()).collect()
}

/// The names of products, in order.
pub fn names(products: &[pb::Product]) -> Vec<String> {
    products.iter().map(|p| p.name.clone()).collect()
}

/// A valid product to create.
pub fn draft(
    sku: &str,
    name: &str,
    category: &str,
    amount_minor: i64,
    currency: &str,
) -> pb::Product {
    pb::Product {
        sku: sku.into(),
        name: name.into(),
        description: format!("{name}, described."),
        category: category.into(),
        price: Some(Money {
            currency_code: currency.into(),
            amount_minor,
        }),
        image_url: format!("https://cdn.example.com/{}.png", sku.to_lowercase()),
        ..Default::default()
    }
}

/// A timestamp as microseconds since the epoch, for comparisons.
pub fn micros(timestamp: Option<&prost_types::Timestamp>) -> i64 {
    agora_platform::time::timestamp_micros(timestamp.expect("a timestamp"))
}

/// The fields of an INVALID_ARGUMENT's field violations, sorted, for comparisons that ignore the
/// order of the checks.
pub fn violated_fields(status: &Status) -> Vec<String> {
    let mut fields = agora_testkit::assertions::violated_fields(status);
    fields.sort();
    fields
}
