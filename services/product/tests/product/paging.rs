//! Paging through the catalog through the real gRPC surface: keyset pages that stay stable while
//! products are added, ties broken by id, and page tokens bound to their filters, on both
//! backends.

use std::collections::HashSet;

use crate::common::{Catalog, draft, ids, list, names, violated_fields};
use agora_contracts::agora::product::v1::{
    self as pb, product_service_client::ProductServiceClient,
};
use agora_testkit::{TestBackend, on_both_backends};
use tonic::{Request, transport::Channel};

on_both_backends!(
    listings_are_newest_first_in_pages_of_the_requested_size,
    paging_stays_stable_while_products_are_added,
    paging_by_price_with_equal_prices_breaks_ties_by_id,
    page_tokens_are_bound_to_their_filters_and_bad_requests_list_every_problem,
);

/// Every page of a listing, following tokens; `between` runs after each page.
async fn all_pages<F, Fut>(
    client: &mut ProductServiceClient<Channel>,
    first: pb::ListProductsRequest,
    mut between: F,
) -> Vec<pb::Product>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut products = Vec::new();
    let mut request = first;
    for page in 0.. {
        let response = list(client, Request::new(request.clone())).await;
        assert!(
            response.products.len() <= usize::try_from(request.page_size).unwrap_or(20).max(1),
            "a page holds at most page_size products"
        );
        products.extend(response.products);
        if response.next_page_token.is_empty() {
            break;
        }
        between(page).await;
        request.page_token = response.next_page_token;
        assert!(page < 100, "paging terminates");
    }
    products
}

async fn listings_are_newest_first_in_pages_of_the_requested_size(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            catalog
                .create(draft(
                    &format!("P{i}"),
                    &format!("Product {i}"),
                    "kitchen",
                    100,
                    "EUR",
                ))
                .await,
        );
    }
    let mut client = catalog.client();
    let first = list(
        &mut client,
        Request::new(pb::ListProductsRequest {
            page_size: 2,
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(names(&first.products), ["Product 4", "Product 3"]);
    assert!(!first.next_page_token.is_empty());
    let second = list(
        &mut client,
        Request::new(pb::ListProductsRequest {
            page_size: 2,
            page_token: first.next_page_token,
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(names(&second.products), ["Product 2", "Product 1"]);
    // The page size may change between pages; the last page has no token.
    let last = list(
        &mut client,
        Request::new(pb::ListProductsRequest {
            page_size: 10,
            page_token: second.next_page_token,
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(names(&last.products), ["Product 0"]);
    assert!(last.next_page_token.is_empty());

    // page_size 0 means 20.
    let everything = list(
        &mut client,
        Request::new(pb::ListProductsRequest::default()),
    )
    .await;
    assert_eq!(everything.products.len(), 5);
    assert!(everything.next_page_token.is_empty());
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(everything.products, newest_first);
}

async fn paging_stays_stable_while_products_are_added(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let orders = [
        pb::ProductOrder::Newest,
        pb::ProductOrder::PriceAsc,
        pb::ProductOrder::Name,
    ];
    for (pass, order) in orders.into_iter().enumerate() {
        // Each order pages through a category of its own, so passes do not see each other.
        let category = format!("pass-{pass}");
        let mut existing = HashSet::new();
        for i in 0..24 {
            let sku = format!("OLD-{pass}-{i}");
            let name = format!("Old {i:02}");
            let product = catalog
                .create(draft(&sku, &name, &category, 1000 + i * 100, "EUR"))
                .await;
            existing.insert(product.id);
        }
        let mut client = catalog.client();
        let added = std::sync::Mutex::new(Vec::new());
        let listed = all_pages(
            &mut client,
            pb::ListProductsRequest {
                page_size: 5,
                category: category.clone(),
                order_by: order as i32,
                ..Default::default()
            },
            |page| {
                let (catalog, added, category) = (&catalog, &added, &category);
                async move {
                    // Between pages, one product that sorts before every old one (cheapest,
                    // "Aardvark") and one that sorts after them all (dearest, "Zebra"); both
                    // are newer than everything.
                    for (tag, name, price) in [("LOW", "Aardvark", 1), ("HIGH", "Zebra", 1_000_000)]
                    {
                        let sku = format!("NEW-{pass}-{page}-{tag}");
                        let name = format!("{name} {page:02}");
                        let product = catalog
                            .create(draft(&sku, &name, category, price, "EUR"))
                            .await;
                        added.lock().expect("not poisoned").push(product);
                    }
                }
            },
        )
        .await;
        let listed_ids = ids(&listed);
        let unique: HashSet<&String> = listed_ids.iter().collect();
        assert_eq!(
            unique.len(),
            listed_ids.len(),
            "{order:?}: no product twice"
        );
        for id in &existing {
            assert!(
                unique.contains(id),
                "{order:?}: no pre-existing product skipped"
            );
        }
        let added = added.into_inner().expect("not poisoned");
        assert!(
            added.len() >= 8,
            "{order:?}: products were added between pages"
        );
        for product in &added {
            let appeared = unique.contains(&product.id);
            let expected = match order {
                // Newer than the position: sorts before it.
                pb::ProductOrder::Newest => false,
                // Only what sorts after the position shows up.
                _ => product.sku.ends_with("HIGH"),
            };
            assert_eq!(appeared, expected, "{order:?}: {}", product.name);
        }
    }
}

async fn paging_by_price_with_equal_prices_breaks_ties_by_id(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(
            catalog
                .create(draft(
                    &format!("SAME-{i}"),
                    "Same price",
                    "kitchen",
                    500,
                    "EUR",
                ))
                .await,
        );
    }
    let mut client = catalog.client();
    for order in [
        pb::ProductOrder::PriceAsc,
        pb::ProductOrder::PriceDesc,
        pb::ProductOrder::Name,
    ] {
        let listed = all_pages(
            &mut client,
            pb::ListProductsRequest {
                page_size: 3,
                order_by: order as i32,
                ..Default::default()
            },
            |_| async {},
        )
        .await;
        let mut expected = ids(&created);
        expected.sort();
        if order == pb::ProductOrder::PriceDesc {
            expected.reverse();
        }
        assert_eq!(ids(&listed), expected, "{order:?}");
    }
}

async fn page_tokens_are_bound_to_their_filters_and_bad_requests_list_every_problem(
    backend: TestBackend,
) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    for i in 0..3 {
        catalog
            .create(draft(
                &format!("P{i}"),
                &format!("Mug {i}"),
                "kitchen",
                100 * i,
                "EUR",
            ))
            .await;
    }
    let mut client = catalog.client();
    let first_request = pb::ListProductsRequest {
        page_size: 1,
        category: "kitchen".into(),
        order_by: pb::ProductOrder::PriceAsc as i32,
        ..Default::default()
    };
    let first = list(&mut client, Request::new(first_request.clone())).await;
    let token = first.next_page_token;
    assert!(!token.is_empty());
    for (what, reused) in [
        (
            "another category",
            pb::ListProductsRequest {
                category: "garden".into(),
                ..first_request.clone()
            },
        ),
        (
            "another order",
            pb::ListProductsRequest {
                order_by: pb::ProductOrder::Name as i32,
                ..first_request.clone()
            },
        ),
        (
            "a query",
            pb::ListProductsRequest {
                query: "mug".into(),
                ..first_request.clone()
            },
        ),
        (
            "no filter",
            pb::ListProductsRequest {
                page_size: 1,
                ..Default::default()
            },
        ),
    ] {
        let status = client
            .list_products(pb::ListProductsRequest {
                page_token: token.clone(),
                ..reused
            })
            .await
            .expect_err("a foreign token");
        assert_eq!(violated_fields(&status), ["page_token"], "{what}");
    }
    for garbage in ["garbage!", "AAAA", &token[..token.len() / 2]] {
        let status = client
            .list_products(pb::ListProductsRequest {
                page_token: garbage.into(),
                ..first_request.clone()
            })
            .await
            .expect_err("a malformed token");
        assert_eq!(violated_fields(&status), ["page_token"], "{garbage}");
    }
    let status = client
        .list_products(pb::ListProductsRequest {
            page_size: -1,
            currency_code: "ZZZ".into(),
            min_price_minor: Some(10),
            max_price_minor: Some(5),
            query: "q".repeat(201),
            ..Default::default()
        })
        .await
        .expect_err("invalid");
    assert_eq!(
        violated_fields(&status),
        ["currency_code", "min_price_minor", "page_size", "query"]
    );
    let status = client
        .list_products(pb::ListProductsRequest {
            max_price_minor: Some(5),
            ..Default::default()
        })
        .await
        .expect_err("a bound needs a currency");
    assert_eq!(violated_fields(&status), ["max_price_minor"]);
    // The right token still works.
    let second = list(
        &mut client,
        Request::new(pb::ListProductsRequest {
            page_token: token,
            ..first_request
        }),
    )
    .await;
    assert_eq!(names(&second.products), ["Mug 1"]);
}
