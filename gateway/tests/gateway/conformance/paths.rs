//! Path templates: variables, percent-decoding, `**`, custom verbs, precedence, additional
//! bindings, and the 404 and 405 answers.

use http::StatusCode;
use serde_json::json;

use super::edge::{Answer, Edge};

/// The methods of an `Allow` header, sorted.
fn allowed(answer: &Answer) -> Vec<String> {
    let mut methods: Vec<String> = answer
        .header("allow")
        .unwrap_or_default()
        .split(',')
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    methods.sort();
    methods
}

#[tokio::test]
async fn a_one_segment_variable_is_fully_percent_decoded() {
    let edge = Edge::start().await;
    let answer = edge.get("/v1/items/a%2Fb%20c%3Fd").await;
    assert_eq!(answer.ok()["id"], "a/b c?d");
    let call = edge.echo.only_call();
    assert_eq!(call.method, "GetItem");
    assert_eq!(call.json()["id"], "a/b c?d");
}

#[tokio::test]
async fn a_multi_segment_variable_decodes_all_but_reserved_characters() {
    let edge = Edge::start().await;
    let answer = edge.get("/v1/shelves/s%2F1/books/b%20%3A2").await;
    assert_eq!(answer.ok()["name"], "shelves/s%2F1/books/b %3A2");
    assert_eq!(edge.echo.only_call().method, "GetBook");
}

#[tokio::test]
async fn a_plus_in_a_path_stays_a_plus() {
    let edge = Edge::start().await;
    assert_eq!(edge.get("/v1/items/a+b").await.ok()["id"], "a+b");
    assert_eq!(edge.get("/v1/files/x+y/z+w").await.ok()["path"], "x+y/z+w");
}

#[tokio::test]
async fn a_nested_path_field_fills_the_nested_message() {
    let edge = Edge::start().await;
    let answer = edge
        .call("PATCH", "/v1/shelves/s1/books/b1", r#"{"title": "Dune"}"#)
        .await;
    assert_eq!(
        answer.ok()["book"],
        json!({"name": "shelves/s1/books/b1", "title": "Dune", "pageCount": 0})
    );
    assert_eq!(edge.echo.only_call().method, "UpdateBook");
}

#[tokio::test]
async fn a_double_wildcard_tail_binds_zero_or_more_segments() {
    let edge = Edge::start().await;
    assert_eq!(
        edge.get("/v1/files/a/b/c.txt").await.ok()["path"],
        "a/b/c.txt"
    );
    assert_eq!(edge.get("/v1/files").await.ok()["path"], "");
    let methods: Vec<String> = edge.echo.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(methods, ["GetFile", "GetFile"]);
}

#[tokio::test]
async fn a_literal_segment_beats_a_variable() {
    let edge = Edge::start().await;
    edge.get("/v1/items/featured").await.ok();
    edge.get("/v1/items/featureless").await.ok();
    let methods: Vec<String> = edge.echo.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(methods, ["GetFeaturedItem", "GetItem"]);
}

#[tokio::test]
async fn a_variable_beats_a_double_wildcard() {
    let edge = Edge::start().await;
    assert_eq!(
        edge.get("/v1/files/report/info").await.ok()["path"],
        "report"
    );
    assert_eq!(
        edge.get("/v1/files/a/report/info").await.ok()["path"],
        "a/report/info"
    );
    let methods: Vec<String> = edge.echo.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(methods, ["GetFileInfo", "GetFile"]);
}

#[tokio::test]
async fn a_custom_verb_selects_the_route_that_declares_it() {
    let edge = Edge::start().await;
    let item = edge
        .call("POST", "/v1/items/i-1:publish", r#"{"note": "now"}"#)
        .await;
    assert_eq!(item.ok(), &json!({"id": "i-1", "note": "now"}));
    let book = edge
        .call("POST", "/v1/shelves/s/books/b:publish", "{}")
        .await;
    assert_eq!(book.ok()["name"], "shelves/s/books/b");
    let methods: Vec<String> = edge.echo.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(methods, ["PublishItem", "PublishBook"]);
}

#[tokio::test]
async fn a_colon_is_part_of_the_value_where_no_template_declares_the_verb_after_it() {
    let edge = Edge::start().await;
    assert_eq!(edge.get("/v1/items/a:b").await.ok()["id"], "a:b");
    assert_eq!(edge.get("/v1/files/x:y/z").await.ok()["path"], "x:y/z");
}

#[tokio::test]
async fn a_declared_verb_is_never_read_as_part_of_a_value() {
    let edge = Edge::start().await;
    // `:publish` is declared (by PublishItem, a POST), so this GET is not GetItem("a:publish").
    let answer = edge.get("/v1/items/a:publish").await;
    answer.assert_error(StatusCode::METHOD_NOT_ALLOWED, tonic::Code::Unimplemented);
    assert_eq!(allowed(&answer), ["POST"]);
    assert_eq!(edge.upstream_calls(), 0);
}

#[tokio::test]
async fn additional_bindings_add_routes_to_the_same_method() {
    let edge = Edge::start().await;
    assert_eq!(
        edge.get("/v1/shelves/s/books/b").await.ok()["name"],
        "shelves/s/books/b"
    );
    assert_eq!(
        edge.get("/v2/shelves/s/books/b").await.ok()["name"],
        "shelves/s/books/b"
    );
    assert_eq!(
        edge.call("POST", "/v1/shelves/s/books/b:fetch", "{}")
            .await
            .ok()["name"],
        "shelves/s/books/b"
    );
    let methods: Vec<String> = edge.echo.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(methods, ["GetBook", "GetBook", "GetBook"]);
}

#[tokio::test]
async fn a_delete_takes_its_unbound_fields_from_the_query() {
    let edge = Edge::start().await;
    let answer = edge
        .send(
            super::edge::request("DELETE", "/v1/items/i-9?note=gone")
                .body(axum::body::Body::empty())
                .expect("a request"),
        )
        .await;
    assert_eq!(answer.ok(), &json!({"id": "i-9", "note": "gone"}));
    assert_eq!(edge.echo.only_call().method, "DeleteItem");
}

#[tokio::test]
async fn a_path_known_only_under_other_methods_is_405_with_allow() {
    let edge = Edge::start().await;
    let answer = edge.call("PUT", "/v1/items/i-1", "{}").await;
    answer.assert_error(StatusCode::METHOD_NOT_ALLOWED, tonic::Code::Unimplemented);
    assert_eq!(allowed(&answer), ["DELETE", "GET"]);
    assert_eq!(edge.upstream_calls(), 0);
}

#[tokio::test]
async fn a_path_no_template_matches_is_404_as_a_google_rpc_status() {
    let edge = Edge::start().await;
    for path in [
        "/v1/nothing",
        "/v1/items/a/b",
        "/v1/items/",
        "/v1/shelves/s",
    ] {
        let answer = edge.get(path).await;
        answer.assert_error(StatusCode::NOT_FOUND, tonic::Code::NotFound);
    }
    assert_eq!(edge.upstream_calls(), 0);
}
