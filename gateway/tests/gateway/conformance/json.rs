//! The JSON the edge writes: canonical proto3 JSON with lowerCamelCase names, 64-bit integers as
//! strings, enums by name, bytes as base64, well-known types in their JSON forms, and every
//! unpopulated field emitted.

use serde_json::json;

use super::edge::Edge;

/// What `POST /v1/scalars` (the echo of its whole body) answers for `body`.
async fn echoed(body: &str) -> serde_json::Value {
    let edge = Edge::start().await;
    let answer = edge.call("POST", "/v1/scalars", body).await;
    assert_eq!(answer.header("content-type"), Some("application/json"));
    answer.ok().clone()
}

#[tokio::test]
async fn every_field_is_emitted_even_when_unpopulated() {
    assert_eq!(
        echoed("{}").await,
        json!({
            "text": "",
            "int32Value": 0,
            "int64Value": "0",
            "uint64Value": "0",
            "boolValue": false,
            "doubleValue": 0.0,
            "color": "COLOR_UNSPECIFIED",
            "tags": [],
            "numbers": [],
            "filter": null,
            "since": null,
            "within": null,
            "mask": null,
            "limit": null,
            "flag": null,
            "nickname": null,
            "blob": "",
            "filters": [],
            "labels": {},
            "colors": [],
        })
    );
}

#[tokio::test]
async fn nested_messages_emit_their_unpopulated_fields_too() {
    let body = echoed(r#"{"filter": {}, "filters": [{"author": "ann"}]}"#).await;
    assert_eq!(body["filter"], json!({"author": "", "minRating": 0}));
    assert_eq!(body["filters"], json!([{"author": "ann", "minRating": 0}]));
}

#[tokio::test]
async fn output_names_are_lower_camel_case_whatever_the_input_spelling() {
    let body = echoed(r#"{"int32_value": 1, "double_value": 0.5}"#).await;
    let object = body.as_object().expect("an object");
    assert!(object.contains_key("int32Value") && object.contains_key("doubleValue"));
    assert!(!object.keys().any(|k| k.contains('_')), "{body}");
}

#[tokio::test]
async fn sixty_four_bit_integers_are_written_as_strings() {
    let body = echoed(
        r#"{"int64Value": 9007199254740993, "uint64Value": "18446744073709551615", "numbers": [1, "-2"]}"#,
    )
    .await;
    assert_eq!(body["int64Value"], "9007199254740993");
    assert_eq!(body["uint64Value"], "18446744073709551615");
    assert_eq!(body["numbers"], json!(["1", "-2"]));
}

#[tokio::test]
async fn enums_are_written_by_name_whether_they_came_by_name_or_number() {
    let body = echoed(r#"{"color": 2, "colors": [1, "COLOR_GREEN"]}"#).await;
    assert_eq!(body["color"], "COLOR_GREEN");
    assert_eq!(body["colors"], json!(["COLOR_RED", "COLOR_GREEN"]));
}

#[tokio::test]
async fn bytes_are_written_as_standard_base64() {
    let body = echoed(r#"{"blob": "-_8"}"#).await;
    assert_eq!(body["blob"], "+/8=");
}

#[tokio::test]
async fn well_known_types_are_written_in_their_json_forms() {
    let body = echoed(
        r#"{"since": "2024-05-01T12:30:00Z", "within": "1.5s", "mask": "title,pageCount",
            "limit": 5, "flag": false, "nickname": "bo", "labels": {"k": "v"}}"#,
    )
    .await;
    assert_eq!(body["since"], "2024-05-01T12:30:00Z");
    let within = body["within"].as_str().expect("a duration string");
    assert!(
        within.strip_suffix('s').and_then(|s| s.parse::<f64>().ok()) == Some(1.5),
        "{within}"
    );
    assert_eq!(body["mask"], "title,pageCount");
    assert_eq!(body["limit"], 5);
    assert_eq!(body["flag"], false);
    assert_eq!(body["nickname"], "bo");
    assert_eq!(body["labels"], json!({"k": "v"}));
}
