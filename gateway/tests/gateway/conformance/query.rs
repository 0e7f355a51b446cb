//! Query parameters: every field type, both field spellings, dotted paths, repeated keys, and the
//! 400s that name the parameter without calling the upstream.

use prost_reflect::Value;
use serde_json::json;

use super::edge::Edge;

/// `GET /v1/scalars?{query}` (every field from the query); the request that reached gRPC.
async fn query(edge: &Edge, query: &str) -> serde_json::Value {
    edge.get(&format!("/v1/scalars?{query}")).await.ok();
    let call = edge.echo.only_call();
    assert_eq!(call.method, "Query");
    call.json()
}

#[tokio::test]
async fn strings_numbers_and_booleans_parse_by_their_field_types() {
    let edge = Edge::start().await;
    let received = query(
        &edge,
        "text=red&int32_value=-7&uint64_value=18446744073709551615&bool_value=true&double_value=2.5",
    )
    .await;
    assert_eq!(received["text"], "red");
    assert_eq!(received["int32Value"], -7);
    assert_eq!(received["uint64Value"], "18446744073709551615");
    assert_eq!(received["boolValue"], true);
    assert_eq!(received["doubleValue"], 2.5);
}

#[tokio::test]
async fn an_int64_beyond_2_to_the_53_reaches_grpc_without_losing_precision() {
    let edge = Edge::start().await;
    // 2^53 + 1: a JSON number parsed as a double would come out as 2^53.
    edge.get("/v1/scalars?int64_value=9007199254740993&numbers=-9007199254740993")
        .await
        .ok();
    let call = edge.echo.only_call();
    assert_eq!(
        call.message.get_field_by_name("int64_value").as_deref(),
        Some(&Value::I64(9_007_199_254_740_993))
    );
    assert_eq!(
        call.message.get_field_by_name("numbers").as_deref(),
        Some(&Value::List(vec![Value::I64(-9_007_199_254_740_993)]))
    );
}

#[tokio::test]
async fn query_values_are_form_decoded_so_a_plus_is_a_space() {
    let edge = Edge::start().await;
    let received = query(&edge, "text=red+shoe%26co%2B1").await;
    assert_eq!(received["text"], "red shoe&co+1");
}

#[tokio::test]
async fn enums_parse_by_name_or_by_number() {
    let edge = Edge::start().await;
    let received = query(&edge, "color=COLOR_GREEN&colors=COLOR_RED&colors=2").await;
    assert_eq!(received["color"], "COLOR_GREEN");
    assert_eq!(received["colors"], json!(["COLOR_RED", "COLOR_GREEN"]));
    let edge = Edge::start().await;
    assert_eq!(query(&edge, "color=1").await["color"], "COLOR_RED");
}

#[tokio::test]
async fn a_repeated_scalar_repeats_its_key() {
    let edge = Edge::start().await;
    let received = query(&edge, "tags=a&tags=b%2Cc&tags=&numbers=1&numbers=2").await;
    assert_eq!(received["tags"], json!(["a", "b,c", ""]));
    assert_eq!(received["numbers"], json!(["1", "2"]));
}

#[tokio::test]
async fn keys_name_fields_by_proto_name_or_json_name_and_dotted_paths_reach_nested_fields() {
    let edge = Edge::start().await;
    let received = query(
        &edge,
        "int32Value=3&int64_value=4&filter.author=ann&filter.minRating=5",
    )
    .await;
    assert_eq!(received["int32Value"], 3);
    assert_eq!(received["int64Value"], "4");
    assert_eq!(received["filter"], json!({"author": "ann", "minRating": 5}));
    let edge = Edge::start().await;
    let received = query(&edge, "filter.min_rating=6").await;
    assert_eq!(received["filter"], json!({"minRating": 6}));
}

#[tokio::test]
async fn a_timestamp_parses_as_rfc_3339() {
    let edge = Edge::start().await;
    let received = query(&edge, "since=2024-05-01T12:30:00.250%2B02:00").await;
    assert_eq!(received["since"], "2024-05-01T10:30:00.250Z");
}

#[tokio::test]
async fn a_duration_parses_as_seconds_with_a_fraction() {
    let edge = Edge::start().await;
    edge.get("/v1/scalars?within=1.5s").await.ok();
    let call = edge.echo.only_call();
    let Some(Value::Message(within)) = call.message.get_field_by_name("within").as_deref().cloned()
    else {
        panic!("within is set: {:?}", call.message);
    };
    assert_eq!(
        within.get_field_by_name("seconds").as_deref(),
        Some(&Value::I64(1))
    );
    assert_eq!(
        within.get_field_by_name("nanos").as_deref(),
        Some(&Value::I32(500_000_000))
    );
}

#[tokio::test]
async fn a_field_mask_is_comma_separated_in_either_spelling() {
    let edge = Edge::start().await;
    edge.call(
        "PATCH",
        "/v1/shelves/s/books/b?update_mask=title,page_count",
        "{}",
    )
    .await
    .ok();
    edge.call("PATCH", "/v1/shelves/s/books/b?updateMask=pageCount", "{}")
        .await
        .ok();
    let masks: Vec<serde_json::Value> = edge
        .echo
        .calls()
        .iter()
        .map(|c| c.json()["updateMask"].clone())
        .collect();
    // The JSON form of a FieldMask is lowerCamelCase; the message holds `page_count`.
    assert_eq!(masks, [json!("title,pageCount"), json!("pageCount")]);
}

#[tokio::test]
async fn wrapper_types_parse_as_the_value_they_wrap() {
    let edge = Edge::start().await;
    let received = query(&edge, "limit=5&flag=false&nickname=bo").await;
    assert_eq!(received["limit"], 5);
    assert_eq!(received["flag"], false, "a set BoolValue(false) is kept");
    assert_eq!(received["nickname"], "bo");
}

#[tokio::test]
async fn bytes_parse_as_base64_standard_or_url_safe() {
    let edge = Edge::start().await;
    // 0xfb 0xff: `+/8=` in the standard alphabet, `-_8` URL-safe and unpadded.
    edge.get("/v1/scalars?blob=%2B%2F8%3D").await.ok();
    edge.get("/v1/scalars?blob=-_8").await.ok();
    for call in edge.echo.calls() {
        assert_eq!(
            call.message.get_field_by_name("blob").as_deref(),
            Some(&Value::Bytes(vec![0xfb, 0xff].into()))
        );
    }
    assert_eq!(edge.upstream_calls(), 2);
}

#[tokio::test]
async fn unknown_query_parameters_are_ignored() {
    let edge = Edge::start().await;
    let received = query(&edge, "nope=1&filter.nope=2&text=kept&=&nope.deeper").await;
    assert_eq!(received["text"], "kept");
}

#[tokio::test]
async fn a_value_that_does_not_parse_is_400_naming_the_parameter_and_the_upstream_is_never_called()
{
    let edge = Edge::start().await;
    for (parameter, value) in [
        ("int32_value", "many"),
        ("int32Value", "2147483648"),
        ("int64_value", "1.5"),
        ("uint64_value", "-1"),
        ("bool_value", "yes"),
        ("double_value", "abc"),
        ("color", "COLOR_PURPLE"),
        ("colors", "PURPLE"),
        ("numbers", "x"),
        ("filter.min_rating", "high"),
        ("since", "yesterday"),
        ("within", "soon"),
        ("limit", "five"),
        ("flag", "maybe"),
        ("blob", "%21%21"),
    ] {
        let answer = edge
            .get(&format!("/v1/scalars?text=ok&{parameter}={value}"))
            .await;
        answer.assert_invalid(parameter);
    }
    assert_eq!(edge.upstream_calls(), 0);
}

#[tokio::test]
async fn a_field_that_is_not_repeated_given_twice_is_400() {
    let edge = Edge::start().await;
    edge.get("/v1/scalars?text=a&text=b")
        .await
        .assert_invalid("text");
    edge.get("/v1/scalars?int32_value=1&int32Value=2")
        .await
        .assert_invalid("int32Value");
    assert_eq!(edge.upstream_calls(), 0);
}

#[tokio::test]
async fn repeated_messages_and_maps_are_not_bindable_from_the_query() {
    let edge = Edge::start().await;
    for parameter in [
        "filters",
        "filters.author",
        "labels",
        "labels.key",
        "filter",
    ] {
        let answer = edge.get(&format!("/v1/scalars?{parameter}=x")).await;
        answer.assert_invalid(parameter);
    }
    assert_eq!(edge.upstream_calls(), 0);
}

#[tokio::test]
async fn a_query_value_contradicting_a_path_bound_field_is_400() {
    let edge = Edge::start().await;
    edge.get("/v1/items/i-1?id=i-2").await.assert_invalid("id");
    assert_eq!(edge.upstream_calls(), 0);
    // The same value says nothing new.
    assert_eq!(edge.get("/v1/items/i-1?id=i-1").await.ok()["id"], "i-1");
}

#[tokio::test]
async fn a_rule_with_the_whole_body_reads_no_query_parameters() {
    let edge = Edge::start().await;
    let answer = edge
        .call(
            "POST",
            "/v1/scalars?text=query&int32_value=not-a-number",
            r#"{"text": "body"}"#,
        )
        .await;
    assert_eq!(answer.ok()["text"], "body");
    assert_eq!(answer.json["int32Value"], 0);
}
