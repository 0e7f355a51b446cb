use prost_reflect::{DescriptorPool, ReflectMessage};

use super::*;
use crate::routes::{Lookup, Routes};

fn transcode(
    method: http::Method,
    path: &str,
    query: Option<&str>,
    body: &str,
) -> Result<DynamicMessage, tonic::Status> {
    let pool =
        DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET).expect("the contracts decode");
    let routes = Routes::build(&pool).expect("routes build");
    let Lookup::Found(route, values) = routes.lookup(&method, path) else {
        panic!("{method} {path} has a route");
    };
    request_message(&route.binding, &values, query, body.as_bytes())
}

fn json(message: &DynamicMessage) -> Value {
    serde_json::to_value(message).expect("serializes")
}

#[test]
fn query_parameters_fill_scalars_enums_by_name_and_int64_from_text() {
    let message = transcode(
        http::Method::GET,
        "/v1/products",
        Some("pageSize=5&order_by=PRODUCT_ORDER_NEWEST&min_price_minor=1200&query=red+shoe&unknown=1"),
        "",
    )
    .expect("transcodes");
    assert_eq!(message.descriptor().name(), "ListProductsRequest");
    let body = json(&message);
    assert_eq!(body["pageSize"], 5);
    assert_eq!(body["orderBy"], "PRODUCT_ORDER_NEWEST");
    assert_eq!(body["minPriceMinor"], "1200");
    assert_eq!(body["query"], "red shoe");
}

#[test]
fn an_unparsable_query_value_is_an_invalid_argument() {
    let status = transcode(
        http::Method::GET,
        "/v1/products",
        Some("page_size=many"),
        "",
    )
    .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

#[test]
fn a_body_field_and_a_nested_path_variable_make_one_message() {
    let message = transcode(
        http::Method::PATCH,
        "/v1/products/p-1",
        Some("update_mask=name,description"),
        r#"{"name": "Lamp"}"#,
    )
    .expect("transcodes");
    let body = json(&message);
    assert_eq!(body["product"]["id"], "p-1");
    assert_eq!(body["product"]["name"], "Lamp");
    assert_eq!(body["updateMask"], "name,description");
}

#[test]
fn a_body_contradicting_the_path_is_refused() {
    let status = transcode(
        http::Method::PATCH,
        "/v1/products/p-1",
        None,
        r#"{"id": "p-2"}"#,
    )
    .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("contradicts"),
        "{}",
        status.message()
    );
}

#[test]
fn malformed_json_is_an_invalid_argument() {
    let status =
        transcode(http::Method::PATCH, "/v1/products/p-1", None, "{not json").expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}
