use super::*;

fn parse(text: &str) -> PathTemplate {
    PathTemplate::parse(text).expect("template parses")
}

fn bound(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    parse(template).matches(path).map(|values| {
        values
            .into_iter()
            .map(|(field, value)| (field.join("."), value))
            .collect()
    })
}

fn pair(field: &str, value: &str) -> (String, String) {
    (field.to_owned(), value.to_owned())
}

#[test]
fn a_plain_variable_binds_one_segment() {
    assert_eq!(
        bound("/v1/products/{product_id}", "/v1/products/p-1"),
        Some(vec![pair("product_id", "p-1")])
    );
    assert_eq!(
        bound("/v1/products/{product_id}", "/v1/products/p-1/x"),
        None
    );
    assert_eq!(bound("/v1/products/{product_id}", "/v1/products/"), None);
    assert_eq!(bound("/v1/products/{product_id}", "/v1/items/p-1"), None);
}

#[test]
fn nested_field_paths_and_multi_segment_patterns_bind_the_joined_segments() {
    assert_eq!(
        bound(
            "/v1/{book.name=shelves/*/books/*}",
            "/v1/shelves/s1/books/b2"
        ),
        Some(vec![pair("book.name", "shelves/s1/books/b2")])
    );
    assert_eq!(
        bound(
            "/v1/{book.name=shelves/*/books/*}",
            "/v1/shelves/s1/notes/b2"
        ),
        None
    );
}

#[test]
fn a_double_wildcard_binds_zero_or_more_trailing_segments() {
    assert_eq!(
        bound("/v1/files/{path=**}", "/v1/files/a/b/c"),
        Some(vec![pair("path", "a/b/c")])
    );
    assert_eq!(
        bound("/v1/files/{path=**}", "/v1/files"),
        Some(vec![pair("path", "")])
    );
}

#[test]
fn a_single_segment_variable_decodes_slashes_but_a_multi_segment_one_keeps_them() {
    assert_eq!(
        bound("/v1/items/{id}", "/v1/items/a%2Fb%20c"),
        Some(vec![pair("id", "a/b c")])
    );
    assert_eq!(
        bound("/v1/files/{path=**}", "/v1/files/a%2Fb/c%20d"),
        Some(vec![pair("path", "a%2Fb/c d")])
    );
}

#[test]
fn a_plus_in_a_path_stays_a_plus() {
    assert_eq!(
        bound("/v1/items/{id}", "/v1/items/a+b"),
        Some(vec![pair("id", "a+b")])
    );
}

#[test]
fn a_malformed_escape_does_not_match() {
    assert_eq!(bound("/v1/items/{id}", "/v1/items/a%zz"), None);
    assert_eq!(bound("/v1/items/{id}", "/v1/items/a%2"), None);
}

#[test]
fn a_custom_verb_is_a_verb_only_where_the_template_declares_it() {
    assert_eq!(
        bound("/v1/orders/{order_id}:cancel", "/v1/orders/o-1:cancel"),
        Some(vec![pair("order_id", "o-1")])
    );
    assert_eq!(
        bound("/v1/orders/{order_id}:cancel", "/v1/orders/o-1"),
        None
    );
    // Without a declared verb, the colon is part of the value.
    assert_eq!(
        bound("/v1/orders/{order_id}", "/v1/orders/o-1:cancel"),
        Some(vec![pair("order_id", "o-1:cancel")])
    );
}

#[test]
fn malformed_templates_are_rejected_with_a_reason() {
    for text in [
        "v1/items",
        "/v1//items",
        "/v1/{id",
        "/v1/{a{b}}",
        "/v1/**/items",
        "/v1/items:",
        "/v1/x{id}",
        "/v1/{1id}",
        "/v1/items/",
        "/v1/items:x/more",
    ] {
        let error = PathTemplate::parse(text).expect_err(text);
        assert!(!error.reason.is_empty(), "{text}");
    }
}

#[test]
fn identical_templates_have_the_same_shape_whatever_their_variable_names() {
    assert_eq!(
        parse("/v1/products/{product_id}").shape(),
        parse("/v1/products/{id}").shape()
    );
    assert_ne!(
        parse("/v1/orders/{id}:cancel").shape(),
        parse("/v1/orders/{id}").shape()
    );
}

#[test]
fn literals_beat_wildcards_which_beat_double_wildcards() {
    let literal = parse("/v1/products/featured");
    let variable = parse("/v1/products/{id}");
    let rest = parse("/v1/products/{path=**}");
    assert_eq!(literal.precedence(&variable), Ordering::Less);
    assert_eq!(variable.precedence(&rest), Ordering::Less);
    assert_eq!(rest.precedence(&literal), Ordering::Greater);
}
