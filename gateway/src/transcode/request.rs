//! The request message of a route, from its path variables, query string and JSON body.
//!
//! Everything is gathered into one JSON object first and read once with prost-reflect's proto3
//! JSON mapping, so query values take the same forms a body does (enums by name or number, int64
//! as text, `Timestamp`, `Duration`, `FieldMask` in their JSON forms).

use prost_reflect::{DeserializeOptions, DynamicMessage, Kind, MessageDescriptor};
use serde_json::{Map, Value};

use crate::rules::Binding;

/// Builds the request message; every failure is an `INVALID_ARGUMENT` naming what was wrong, and
/// nothing is sent upstream.
///
/// # Errors
/// Malformed JSON, a body value contradicting a path-bound one, or a value that does not parse
/// as its field's type.
pub fn request_message(
    binding: &Binding,
    path_values: &[(Vec<String>, String)],
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, tonic::Status> {
    let input = binding.method.input();
    let mut tree = match binding.body.as_deref() {
        None => Map::new(),
        Some(field) => {
            let parsed: Value = if body.iter().all(u8::is_ascii_whitespace) {
                Value::Object(Map::new())
            } else {
                serde_json::from_slice(body).map_err(|e| {
                    tonic::Status::invalid_argument(format!("the request body is not JSON: {e}"))
                })?
            };
            if field == "*" {
                match parsed {
                    Value::Object(map) => map,
                    _ => {
                        return Err(tonic::Status::invalid_argument(
                            "the request body must be a JSON object",
                        ));
                    }
                }
            } else {
                Map::from_iter([(field.to_owned(), parsed)])
            }
        }
    };
    for (path, text) in path_values {
        let value =
            scalar_json(&input, path, text).ok_or_else(|| unknown_field(&path.join(".")))?;
        insert(&mut tree, path, value, true)?;
    }
    // With `body: "*"` every field comes from the body; otherwise the query fills the rest.
    if binding.body.as_deref() != Some("*") {
        for (key, text) in form_pairs(query.unwrap_or_default()) {
            let path: Vec<String> = key.split('.').map(str::to_owned).collect();
            // Unknown query parameters are ignored, like both reference transcoders do.
            let Some(value) = scalar_json(&input, &path, &text) else {
                continue;
            };
            insert(&mut tree, &path, value, false)?;
        }
    }
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    DynamicMessage::deserialize_with_options(input, Value::Object(tree), &options)
        .map_err(|e| tonic::Status::invalid_argument(format!("invalid request: {e}")))
}

fn unknown_field(name: &str) -> tonic::Status {
    tonic::Status::invalid_argument(format!("{name} is not a field of the request"))
}

/// `key=value` pairs of a query string, `+` as space and percent-decoded.
fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(key), form_decode(value))
        })
        .collect()
}

fn form_decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    let bytes = spaced.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| spaced.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON form of `text` for the field at `path` (proto or JSON names), or `None` when the
/// path names no field. Repeated fields get one element; [`insert`] appends repeats.
fn scalar_json(message: &MessageDescriptor, path: &[String], text: &str) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut message = message.clone();
    for part in parents {
        let field = message
            .get_field_by_name(part)
            .or_else(|| message.get_field_by_json_name(part))?;
        message = field.kind().as_message()?.clone();
    }
    let field = message
        .get_field_by_name(last)
        .or_else(|| message.get_field_by_json_name(last))?;
    let value = match field.kind() {
        Kind::Bool => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text.to_owned()),
        },
        Kind::Enum(_) => text
            .parse::<i64>()
            .map_or_else(|_| Value::String(text.to_owned()), Value::from),
        _ => Value::String(text.to_owned()),
    };
    Some(if field.is_list() {
        Value::Array(vec![value])
    } else {
        value
    })
}

/// Puts `value` at `path`; a path value contradicting the body's is a 400, a repeated query key
/// appends.
fn insert(
    tree: &mut Map<String, Value>,
    path: &[String],
    value: Value,
    from_path: bool,
) -> Result<(), tonic::Status> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut node = tree;
    for part in parents {
        let entry = node
            .entry(part.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        node = entry
            .as_object_mut()
            .ok_or_else(|| tonic::Status::invalid_argument(format!("{part} must be an object")))?;
    }
    match (node.get_mut(last), value) {
        (Some(Value::Array(items)), Value::Array(more)) if !from_path => items.extend(more),
        (Some(existing), value) if from_path => {
            let same = existing == &value
                || existing.to_string().trim_matches('"') == value.to_string().trim_matches('"');
            if !same {
                return Err(tonic::Status::invalid_argument(format!(
                    "{} in the body contradicts the path",
                    path.join(".")
                )));
            }
        }
        (_, value) => {
            node.insert(last.clone(), value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost_reflect::{DescriptorPool, ReflectMessage};

    use super::*;
    use crate::routes::{Lookup, Routes};

    fn transcode(
        method: http::Method,
        path: &str,
        query: Option<&str>,
        body: &str,
    ) -> Result<DynamicMessage, tonic::Status> {
        let pool = DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET)
            .expect("the contracts decode");
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
        let status = transcode(http::Method::PATCH, "/v1/products/p-1", None, "{not json")
            .expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
