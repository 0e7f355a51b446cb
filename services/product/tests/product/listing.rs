//! Browsing the catalog through the real gRPC surface: ListProducts' filters, sort orders and
//! archived products, and ListCategories, on both backends. Paging is in `paging.rs`.

use crate::common::{Catalog, draft, ids, list, names};
use agora_contracts::agora::product::v1 as pb;
use agora_testkit::{TestBackend, authed, email, on_both_backends};
use tonic::{Code, Request};

on_both_backends!(
    filters_select_exactly_the_matching_products,
    each_sort_order_returns_products_in_that_order,
    only_admins_list_archived_products,
    categories_count_active_products_by_name,
);

async fn filters_select_exactly_the_matching_products(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let mut mug = draft("MUG", "Blue MUG", "kitchen", 1200, "EUR");
    mug.description = "Holds 350 ml of Tea.".into();
    let mug = catalog.create(mug).await;
    let mut pot = draft("POT", "Teapot", "kitchen", 3500, "EUR");
    pot.description = "A blue teapot, 100% porcelain.".into();
    let pot = catalog.create(pot).await;
    let usd_mug = catalog
        .create(draft("MUG-US", "Blue mug (US)", "kitchen", 1300, "USD"))
        .await;
    let spade = catalog
        .create(draft("SPADE", "Spade", "garden", 2500, "EUR"))
        .await;
    let umlaut = catalog
        .create(draft("UMLAUT", "ÄRGER Tasse", "kitchen", 800, "EUR"))
        .await;
    let archived = catalog
        .create(draft("OLD-MUG", "Old blue mug", "kitchen", 1000, "EUR"))
        .await;
    catalog.archive(&archived.id).await.expect("archived");

    let mut client = catalog.client();
    let matching = |request: pb::ListProductsRequest| {
        let mut client = client.clone();
        async move {
            let mut found = ids(&list(&mut client, Request::new(request)).await.products);
            found.sort();
            found
        }
    };
    let sorted = |products: &[&pb::Product]| {
        let mut ids: Vec<String> = products.iter().map(|p| p.id.clone()).collect();
        ids.sort();
        ids
    };
    let by_category = matching(pb::ListProductsRequest {
        category: "garden".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_category, sorted(&[&spade]));
    let in_usd = matching(pb::ListProductsRequest {
        currency_code: "USD".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(in_usd, sorted(&[&usd_mug]));
    let price_range = matching(pb::ListProductsRequest {
        currency_code: "EUR".into(),
        min_price_minor: Some(1200),
        max_price_minor: Some(2500),
        ..Default::default()
    })
    .await;
    assert_eq!(price_range, sorted(&[&mug, &spade]), "bounds are inclusive");
    // Every word must occur, in the name or the description, whatever the case.
    let words = matching(pb::ListProductsRequest {
        query: "BLUE tea".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(words, sorted(&[&mug, &pot]));
    let literal_percent = matching(pb::ListProductsRequest {
        query: "100%".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        literal_percent,
        sorted(&[&pot]),
        "LIKE wildcards match themselves"
    );
    let wildcard = matching(pb::ListProductsRequest {
        query: "_".into(),
        ..Default::default()
    })
    .await;
    assert!(wildcard.is_empty(), "an underscore is not a wildcard");
    let unicode = matching(pb::ListProductsRequest {
        query: "ärger".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        unicode,
        sorted(&[&umlaut]),
        "case folding beyond ASCII on both backends"
    );
    let combined = matching(pb::ListProductsRequest {
        category: "kitchen".into(),
        currency_code: "EUR".into(),
        max_price_minor: Some(2000),
        query: "mug".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(combined, sorted(&[&mug]), "the archived mug is not listed");
    let as_admin = list(
        &mut client,
        authed(
            pb::ListProductsRequest {
                query: "mug".into(),
                include_archived: true,
                ..Default::default()
            },
            &catalog.admin,
        ),
    )
    .await;
    let mut found = ids(&as_admin.products);
    found.sort();
    assert_eq!(found, sorted(&[&mug, &usd_mug, &archived]));
}

async fn each_sort_order_returns_products_in_that_order(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    for (sku, name, price) in [
        ("B", "banana", 300),
        ("A", "Apple", 100),
        ("C", "cherry", 200),
        ("E", "Éclair", 50),
    ] {
        catalog.create(draft(sku, name, "food", price, "EUR")).await;
    }
    let client = catalog.client();
    let ordered = |order: pb::ProductOrder| {
        let mut client = client.clone();
        async move {
            let request = pb::ListProductsRequest {
                order_by: order as i32,
                ..Default::default()
            };
            names(&list(&mut client, Request::new(request)).await.products)
        }
    };
    assert_eq!(
        ordered(pb::ProductOrder::Unspecified).await,
        ["Éclair", "cherry", "Apple", "banana"]
    );
    assert_eq!(
        ordered(pb::ProductOrder::Newest).await,
        ["Éclair", "cherry", "Apple", "banana"]
    );
    assert_eq!(
        ordered(pb::ProductOrder::PriceAsc).await,
        ["Éclair", "Apple", "cherry", "banana"]
    );
    assert_eq!(
        ordered(pb::ProductOrder::PriceDesc).await,
        ["banana", "cherry", "Apple", "Éclair"]
    );
    // Case-insensitive by name; letters beyond ASCII sort by code point on both backends.
    assert_eq!(
        ordered(pb::ProductOrder::Name).await,
        ["Apple", "banana", "cherry", "Éclair"]
    );
}

async fn only_admins_list_archived_products(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let kept = catalog
        .create(draft("KEPT", "Kept", "kitchen", 100, "EUR"))
        .await;
    let gone = catalog
        .create(draft("GONE", "Gone", "kitchen", 100, "EUR"))
        .await;
    catalog.archive(&gone.id).await.expect("archived");
    let (_, user) = catalog.mesh.register(&email("ada")).await;
    let mut client = catalog.client();
    let with_archived = pb::ListProductsRequest {
        include_archived: true,
        ..Default::default()
    };
    let anonymous = client
        .list_products(with_archived.clone())
        .await
        .expect_err("not an admin");
    assert_eq!(anonymous.code(), Code::PermissionDenied);
    let as_user = client
        .list_products(authed(with_archived.clone(), &user))
        .await
        .expect_err("not an admin");
    assert_eq!(as_user.code(), Code::PermissionDenied);

    let as_admin = list(&mut client, authed(with_archived, &catalog.admin)).await;
    assert_eq!(ids(&as_admin.products), [gone.id.clone(), kept.id.clone()]);
    let as_user = list(
        &mut client,
        authed(pb::ListProductsRequest::default(), &user),
    )
    .await;
    assert_eq!(ids(&as_user.products), [kept.id]);
}

async fn categories_count_active_products_by_name(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let mut client = catalog.client();
    let empty = client
        .list_categories(pb::ListCategoriesRequest {})
        .await
        .expect("anyone lists categories")
        .into_inner();
    assert!(empty.categories.is_empty());

    for (sku, category) in [
        ("A", "kitchen"),
        ("B", "garden"),
        ("C", "kitchen"),
        ("D", "bath-room"),
        ("E", "attic"),
    ] {
        let product = catalog.create(draft(sku, sku, category, 100, "EUR")).await;
        if sku == "C" || category == "attic" {
            catalog.archive(&product.id).await.expect("archived");
        }
    }
    let categories = client
        .list_categories(pb::ListCategoriesRequest {})
        .await
        .expect("anyone lists categories")
        .into_inner()
        .categories;
    let counted: Vec<(String, i64)> = categories
        .into_iter()
        .map(|c| (c.name, c.product_count))
        .collect();
    assert_eq!(
        counted,
        [
            ("bath-room".to_owned(), 1),
            ("garden".to_owned(), 1),
            ("kitchen".to_owned(), 1)
        ],
        "archived products are not counted; a category of archived products only is gone"
    );
}
