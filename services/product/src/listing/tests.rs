use super::*;

fn parse(request: &pb::ListProductsRequest) -> Result<Listing, tonic::Status> {
    Listing::try_from(request.clone()).map_err(tonic::Status::from)
}

fn token(order: Order, filter: Filter, key: SortKey) -> String {
    let position = Position {
        key,
        id: uuid::Uuid::now_v7().to_string(),
    };
    paging::encode_token(&position, &binding(&filter, order))
}

#[test]
fn page_sizes_default_to_20_and_are_capped_at_100() {
    let size = |page_size| {
        parse(&pb::ListProductsRequest {
            page_size,
            ..Default::default()
        })
    };
    assert_eq!(size(0).expect("valid").page_size, 20);
    assert_eq!(size(7).expect("valid").page_size, 7);
    assert_eq!(size(1000).expect("valid").page_size, 100);
    assert_eq!(
        size(-1).expect_err("negative").code(),
        tonic::Code::InvalidArgument
    );
}

#[test]
fn queries_become_lower_cased_words() {
    let listing = parse(&pb::ListProductsRequest {
        query: "  Blue   MUG ".into(),
        ..Default::default()
    })
    .expect("valid");
    assert_eq!(listing.filter.words, ["blue", "mug"]);
}

#[test]
fn every_filter_problem_is_reported_at_once() {
    let status = parse(&pb::ListProductsRequest {
        page_size: -5,
        min_price_minor: Some(500),
        max_price_minor: Some(100),
        query: "x".repeat(201),
        order_by: 42,
        ..Default::default()
    })
    .expect_err("invalid");
    // page_size, order_by, both bounds without currency, min > max, query.
    assert!(status.message().contains("6 invalid fields"), "{status:?}");
}

#[test]
fn a_token_is_accepted_only_with_the_filters_and_order_it_was_issued_for() {
    let filter = Filter {
        category: Some("kitchen".into()),
        ..Filter::default()
    };
    let issued = token(Order::PriceAsc, filter, SortKey::Int(1999));
    let same = pb::ListProductsRequest {
        category: "kitchen".into(),
        order_by: pb::ProductOrder::PriceAsc as i32,
        page_token: issued.clone(),
        ..Default::default()
    };
    let listing = parse(&same).expect("valid");
    assert_eq!(listing.after.map(|p| p.key), Some(SortKey::Int(1999)));
    for other in [
        pb::ListProductsRequest {
            category: "garden".into(),
            ..same.clone()
        },
        pb::ListProductsRequest {
            order_by: pb::ProductOrder::PriceDesc as i32,
            ..same.clone()
        },
        pb::ListProductsRequest {
            include_archived: true,
            ..same.clone()
        },
    ] {
        assert!(parse(&other).is_err(), "{other:?}");
    }
}

#[test]
fn garbage_tokens_are_invalid_arguments() {
    for garbage in ["%%%", "bm90IGEgdG9rZW4", "AAAA"] {
        let status = parse(&pb::ListProductsRequest {
            page_token: garbage.into(),
            ..Default::default()
        })
        .expect_err("malformed");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{garbage}");
    }
}

#[test]
fn an_unspecified_order_is_newest_first() {
    let listing = parse(&pb::ListProductsRequest::default()).expect("valid");
    assert_eq!(listing.order, Order::Newest);
    assert!(listing.order.descending());
}

#[test]
fn a_listing_request_with_every_field_wrong_reports_every_violation() {
    let error = Listing::try_from(pb::ListProductsRequest {
        page_size: -5,
        min_price_minor: Some(500),
        max_price_minor: Some(100),
        query: "x".repeat(201),
        order_by: 42,
        ..Default::default()
    })
    .expect_err("invalid");
    assert_eq!(
        crate::wire::tests::violated_fields(error),
        [
            "page_size",
            "order_by",
            "min_price_minor",
            "max_price_minor",
            "min_price_minor",
            "query",
        ]
    );
}

#[test]
fn a_bad_page_token_is_reported_only_when_the_rest_is_valid() {
    let garbage = |page_size| {
        let request = pb::ListProductsRequest {
            page_size,
            page_token: "%%%".into(),
            ..Default::default()
        };
        crate::wire::tests::violated_fields(Listing::try_from(request).expect_err("invalid"))
    };
    assert_eq!(garbage(10), ["page_token"]);
    assert_eq!(garbage(-1), ["page_size"]);
}

#[test]
fn only_administrators_may_list_archived_products() {
    let archived = parse(&pb::ListProductsRequest {
        include_archived: true,
        ..Default::default()
    })
    .expect("valid");
    assert!(archived.check_access(true).is_ok());
    assert!(matches!(
        archived.check_access(false),
        Err(ServiceError::ArchivedListingForbidden)
    ));
    let active = parse(&pb::ListProductsRequest::default()).expect("valid");
    assert!(active.check_access(false).is_ok());
}
