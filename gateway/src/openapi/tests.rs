use super::*;

fn contracts() -> (DescriptorPool, Vec<Binding>) {
    let pool =
        DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET).expect("the contracts decode");
    let bindings = crate::rules::bindings(&pool).expect("the contracts' rules parse");
    (pool, bindings)
}

fn doc() -> Value {
    let (pool, bindings) = contracts();
    document(&pool, &bindings)
}

fn op<'a>(doc: &'a Value, path: &str, verb: &str) -> &'a Value {
    let op = &doc["paths"][path][verb];
    assert!(op.is_object(), "no {verb} {path} in {}", doc["paths"]);
    op
}

/// Follows a `$ref` (or returns the schema itself).
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

#[test]
fn every_http_rule_of_the_contracts_is_one_operation() {
    let (pool, bindings) = contracts();
    let doc = document(&pool, &bindings);
    let operations: usize = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().expect("an item").len())
        .sum();
    assert_eq!(operations, bindings.len());
    // An additional binding is an operation of its own.
    op(&doc, "/.well-known/jwks.json", "get");
    op(&doc, "/v1/auth/jwks", "get");
    op(&doc, "/v1/orders/{order_id}:cancel", "post");
    let ids: std::collections::HashSet<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("an item").values())
        .map(|op| op["operationId"].as_str().expect("an id"))
        .collect();
    assert_eq!(ids.len(), operations, "operation ids are unique");
}

#[test]
fn proto_comments_become_summaries_and_descriptions() {
    let doc = doc();
    let get = op(&doc, "/v1/products/{product_id}", "get");
    let description = get["description"].as_str().expect("a description");
    assert!(description.contains("Access: anyone."), "{description}");
    assert!(
        description.len() > 40,
        "the method's comment: {description}"
    );
    assert!(get["summary"].as_str().is_some_and(|s| !s.is_empty()));
    let tag = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .find(|t| t["name"] == "agora.order.v1.OrderService")
        .expect("the order service's tag");
    assert!(
        tag["description"]
            .as_str()
            .is_some_and(|d| d.contains("saga")),
        "{tag}"
    );
    let order = &doc["components"]["schemas"]["agora.order.v1.Order"];
    assert!(
        order["properties"]["id"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("UUIDv7")),
        "field comments describe properties: {order}"
    );
}

#[test]
fn path_and_query_parameters_follow_the_template_and_the_request() {
    let doc = doc();
    let get = op(&doc, "/v1/products/{product_id}", "get");
    let path = &get["parameters"][0];
    assert_eq!(path["name"], "product_id");
    assert_eq!(path["in"], "path");
    assert_eq!(path["required"], true);

    let list = op(&doc, "/v1/products", "get");
    let parameters = list["parameters"].as_array().expect("parameters");
    let by_name = |name: &str| {
        parameters
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no query parameter {name}: {parameters:?}"))
    };
    assert_eq!(by_name("pageSize")["in"], "query");
    assert_eq!(
        by_name("minPriceMinor")["schema"]["type"],
        "string",
        "int64 as a string"
    );
    let order_by = resolve(&doc, &by_name("orderBy")["schema"]);
    assert!(order_by["enum"].is_array(), "enums by name: {order_by}");

    let batch = op(&doc, "/v1/stock:batchGet", "get");
    let ids = &batch["parameters"][0];
    assert_eq!(ids["name"], "productIds");
    assert_eq!(ids["schema"]["type"], "array");
    assert_eq!(ids["explode"], true, "a repeated field repeats its key");
    assert!(batch.get("requestBody").is_none());
}

#[test]
fn bodies_leave_out_the_fields_the_path_binds() {
    let doc = doc();
    let adjust = op(&doc, "/v1/stock/{product_id}:adjust", "post");
    let body = &adjust["requestBody"]["content"]["application/json"]["schema"];
    assert!(body["properties"].get("productId").is_none(), "{body}");
    assert!(body["properties"].get("delta").is_some(), "{body}");

    let update = op(&doc, "/v1/products/{product_id}", "patch");
    let body = &update["requestBody"]["content"]["application/json"]["schema"];
    assert!(body["properties"].get("id").is_none(), "{body}");
    assert!(
        body["properties"].get("name").is_some(),
        "body: \"product\" is the product: {body}"
    );
    // body: "product" leaves the update mask to the query string.
    let parameters = update["parameters"].as_array().expect("parameters");
    assert!(
        parameters
            .iter()
            .any(|p| p["name"] == "updateMask" && p["in"] == "query"),
        "{parameters:?}"
    );
    // The nested path field is a parameter tools can fill in, its field path in the text.
    let id = parameters
        .iter()
        .find(|p| p["in"] == "path")
        .expect("a path parameter");
    assert_eq!(id["name"], "product_id", "{id}");
    assert!(
        id["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("`product.id`")),
        "{id}"
    );
}

#[test]
fn only_methods_for_signed_in_callers_carry_the_bearer_scheme() {
    let doc = doc();
    let login = op(&doc, "/v1/auth/login", "post");
    assert!(login.get("security").is_none(), "{login}");
    let create = op(&doc, "/v1/orders", "post");
    assert_eq!(create["security"], json!([{ "bearerAuth": [] }]));
    assert!(create["responses"]["401"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
}

#[test]
fn errors_are_google_rpc_status_and_streams_are_ndjson_or_sse() {
    let doc = doc();
    let create = op(&doc, "/v1/orders", "post");
    assert_eq!(
        create["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/google.rpc.Status"
    );
    let watch = op(&doc, "/v1/orders/{order_id}:watch", "get");
    let content = &watch["responses"]["200"]["content"];
    assert!(content["application/x-ndjson"].is_object(), "{content}");
    assert!(content["text/event-stream"].is_object(), "{content}");
}

#[test]
fn every_reference_resolves_to_a_component() {
    fn walk(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    found.push(reference.clone());
                }
                map.values().for_each(|v| walk(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let doc = doc();
    let mut references = Vec::new();
    walk(&doc, &mut references);
    assert!(references.len() > 20);
    for reference in references {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a local schema reference: {reference}"));
        let schema = &doc["components"]["schemas"][name];
        assert!(schema.is_object(), "{reference} resolves");
    }
}

#[test]
fn a_template_becomes_an_openapi_path_with_its_variables() {
    assert_eq!(
        openapi_path("/v1/{name=shelves/*/books/*}:read"),
        ("/v1/{name}:read".to_owned(), vec!["name".to_owned()])
    );
    assert_eq!(
        openapi_path("/v1/products/{product.id}"),
        (
            "/v1/products/{product_id}".to_owned(),
            vec!["product.id".to_owned()]
        )
    );
    assert_eq!(
        openapi_path("/v1/categories"),
        ("/v1/categories".to_owned(), vec![])
    );
}

#[test]
fn the_api_page_fetches_nothing_but_the_document() {
    for external in ["http://", "https://", "src=", "<link", "@import"] {
        assert!(
            !DOCS_PAGE.contains(external),
            "the page must be self-contained: {external}"
        );
    }
    assert!(DOCS_PAGE.contains("fetch(\"/openapi.json\")"));
}

#[tokio::test]
async fn the_router_serves_the_document_and_the_page() {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let router: Router = router(doc());
    let response = router
        .clone()
        .oneshot(
            http::Request::get("/openapi.json")
                .body(axum::body::Body::empty())
                .expect("a request"),
        )
        .await
        .expect("answered");
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let served: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(served["openapi"], "3.1.0");
    let page = router
        .oneshot(
            http::Request::get("/docs")
                .body(axum::body::Body::empty())
                .expect("a request"),
        )
        .await
        .expect("answered");
    assert_eq!(page.status(), http::StatusCode::OK);
}

#[test]
fn a_summary_is_the_first_sentence_and_e_g_does_not_end_it() {
    assert_eq!(
        first_sentence("Revokes a session, e.g. a lost device. More.\n\nDetails."),
        "Revokes a session, e.g. a lost device"
    );
    assert_eq!(first_sentence("Lists the\nsessions."), "Lists the sessions");
}
