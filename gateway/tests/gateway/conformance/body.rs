//! Body modes (`body: "*"`, `body: "field"`), collisions with the path, malformed JSON, unknown
//! fields, and `response_body`.

use http::StatusCode;
use serde_json::json;

use super::edge::Edge;

#[tokio::test]
async fn the_whole_body_fills_every_field_the_path_does_not_bind() {
    let edge = Edge::start().await;
    let answer = edge
        .call(
            "PUT",
            "/v1/scalars/t-1",
            r#"{"int32Value": 3, "tags": ["x", "y"], "filter": {"author": "ann"}}"#,
        )
        .await;
    let body = answer.ok();
    assert_eq!(body["text"], "t-1");
    assert_eq!(body["int32Value"], 3);
    assert_eq!(body["tags"], json!(["x", "y"]));
    assert_eq!(body["filter"]["author"], "ann");
    assert_eq!(edge.echo.only_call().method, "Echo");
}

#[tokio::test]
async fn a_body_field_comes_from_the_body_and_the_rest_from_the_path_and_the_query() {
    let edge = Edge::start().await;
    edge.call(
        "POST",
        "/v1/shelves/s1/books?book_id=b7",
        r#"{"title": "Dune", "pageCount": 412}"#,
    )
    .await
    .ok();
    let call = edge.echo.only_call();
    assert_eq!(call.method, "CreateBook");
    assert_eq!(
        call.json(),
        json!({
            "parent": "shelves/s1",
            "bookId": "b7",
            "book": {"title": "Dune", "pageCount": 412},
        })
    );
}

#[tokio::test]
async fn a_response_body_rule_answers_only_that_field() {
    let edge = Edge::start().await;
    let answer = edge
        .call(
            "POST",
            "/v1/shelves/s1/books?book_id=b7",
            r#"{"title": "Dune"}"#,
        )
        .await;
    assert_eq!(
        answer.ok(),
        &json!({"name": "", "title": "Dune", "pageCount": 0})
    );
}

#[tokio::test]
async fn the_body_field_is_never_read_from_the_query() {
    let edge = Edge::start().await;
    let answer = edge
        .call(
            "PATCH",
            "/v1/shelves/s/books/b?book.title=query&book.page_count=9",
            r#"{"title": "body"}"#,
        )
        .await;
    assert_eq!(
        answer.ok()["book"],
        json!({"name": "shelves/s/books/b", "title": "body", "pageCount": 0})
    );
}

#[tokio::test]
async fn a_body_value_contradicting_the_path_is_400_and_the_upstream_is_never_called() {
    let edge = Edge::start().await;
    edge.call("PUT", "/v1/scalars/t-1", r#"{"text": "t-2"}"#)
        .await
        .assert_invalid("text");
    edge.call(
        "PATCH",
        "/v1/shelves/s/books/b",
        r#"{"name": "shelves/s/books/other"}"#,
    )
    .await
    .assert_invalid("book.name");
    assert_eq!(edge.upstream_calls(), 0);
}

#[tokio::test]
async fn a_body_value_equal_to_the_path_is_accepted() {
    let edge = Edge::start().await;
    let answer = edge
        .call(
            "PATCH",
            "/v1/shelves/s/books/b",
            r#"{"name": "shelves/s/books/b", "title": "T"}"#,
        )
        .await;
    assert_eq!(answer.ok()["book"]["name"], "shelves/s/books/b");
}

#[tokio::test]
async fn malformed_json_is_400_with_a_google_rpc_status_body_and_the_upstream_is_never_called() {
    let edge = Edge::start().await;
    for (method, uri, body) in [
        ("POST", "/v1/scalars", "{nope"),
        ("POST", "/v1/scalars", r#"{"text": "a",}"#),
        ("PATCH", "/v1/shelves/s/books/b", "{"),
        ("POST", "/v1/shelves/s/books", "Dune"),
    ] {
        let answer = edge.call(method, uri, body).await;
        answer.assert_error(StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument);
    }
    assert_eq!(edge.upstream_calls(), 0);
}

#[tokio::test]
async fn a_whole_body_that_is_not_a_json_object_is_400() {
    let edge = Edge::start().await;
    for body in ["[1]", r#""text""#, "3", "null"] {
        let answer = edge.call("POST", "/v1/scalars", body).await;
        answer.assert_error(StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument);
    }
    assert_eq!(edge.upstream_calls(), 0);
}

#[tokio::test]
async fn a_body_value_of_the_wrong_type_is_400_and_the_upstream_is_never_called() {
    let edge = Edge::start().await;
    for body in [
        r#"{"int32Value": "many"}"#,
        r#"{"boolValue": "yes"}"#,
        r#"{"since": "yesterday"}"#,
        r#"{"tags": "not-a-list"}"#,
    ] {
        let answer = edge.call("POST", "/v1/scalars", body).await;
        answer.assert_error(StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument);
    }
    assert_eq!(edge.upstream_calls(), 0);
}

#[tokio::test]
async fn unknown_json_fields_are_ignored() {
    let edge = Edge::start().await;
    let answer = edge
        .call(
            "POST",
            "/v1/scalars",
            r#"{"text": "kept", "nope": {"deep": [1]}, "filter": {"nope": true}}"#,
        )
        .await;
    assert_eq!(answer.ok()["text"], "kept");
}

#[tokio::test]
async fn the_body_accepts_json_names_and_proto_names() {
    let edge = Edge::start().await;
    let answer = edge
        .call(
            "POST",
            "/v1/scalars",
            r#"{"int32_value": 1, "int64Value": "2", "filter": {"min_rating": 3}}"#,
        )
        .await;
    let body = answer.ok();
    assert_eq!(body["int32Value"], 1);
    assert_eq!(body["int64Value"], "2");
    assert_eq!(body["filter"]["minRating"], 3);
}

#[tokio::test]
async fn an_empty_body_is_an_empty_message() {
    let edge = Edge::start().await;
    assert_eq!(edge.call("POST", "/v1/scalars", "").await.ok()["text"], "");
    assert_eq!(
        edge.call("PUT", "/v1/scalars/t", " \n").await.ok()["text"],
        "t"
    );
}
