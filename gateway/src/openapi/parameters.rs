//! Parameters of an operation: the path's variables from the template, and the query
//! parameters from the request message's fields that the path and body leave unbound.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Value, json};

use super::{
    QUERY_DEPTH,
    comments::Comments,
    schema::{Schemas, is_scalar_message},
};

/// The name of the path parameter bound to `field_path`: dots become underscores
/// (`product.id` -> `product_id`), since OpenAPI tools read `{a.b}` in a path as an attribute
/// lookup and cannot fill it in.
pub(crate) fn parameter_name(field_path: &str) -> String {
    field_path.replace('.', "_")
}

/// The OpenAPI path of a template (`{product_id}` for `{product.id=*}`, custom verbs kept) and
/// the field path of each variable.
pub(crate) fn openapi_path(template: &str) -> (String, Vec<String>) {
    let mut path = String::new();
    let mut variables = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        path.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let inside = &rest[open + 1..open + close];
        let name = inside.split('=').next().unwrap_or(inside).trim();
        path.push_str(&format!("{{{}}}", parameter_name(name)));
        variables.push(name.to_owned());
        rest = &rest[open + close + 1..];
    }
    path.push_str(rest);
    (path, variables)
}

/// Adds a query parameter for every field of `message` under `prefix` that the path and body do
/// not bind: scalars, enums, repeated scalars (`?tag=a&tag=b`), and nested messages by dotted
/// path. Maps and repeated messages cannot be written in a query string.
pub(super) fn query_parameters(
    schemas: &mut Schemas<'_>,
    comments: &Comments,
    message: &MessageDescriptor,
    prefix: &str,
    bound: &[String],
    depth: usize,
    parameters: &mut Vec<Value>,
) {
    for field in message.fields() {
        let path = if prefix.is_empty() {
            field.name().to_owned()
        } else {
            format!("{prefix}.{}", field.name())
        };
        if bound.contains(&path) || field.is_map() {
            continue;
        }
        let name = if prefix.is_empty() {
            field.json_name().to_owned()
        } else {
            json_path(message, prefix, &field)
        };
        match field.kind() {
            Kind::Message(inner) if !is_scalar_message(&inner) => {
                if !field.is_list() && depth < QUERY_DEPTH {
                    query_parameters(
                        schemas,
                        comments,
                        &inner,
                        &path,
                        bound,
                        depth + 1,
                        parameters,
                    );
                }
            }
            _ => {
                let mut parameter = json!({
                    "name": name,
                    "in": "query",
                    "required": false,
                    "schema": schemas.field(&field),
                });
                if field.is_list() {
                    parameter["style"] = "form".into();
                    parameter["explode"] = true.into();
                }
                if let Some(text) = comments.of(&field.parent_file(), field.path()) {
                    parameter["description"] = text.into();
                }
                parameters.push(parameter);
            }
        }
    }
}

/// The dotted JSON-name path of a nested query field. The prefix is in proto names (as the
/// edge accepts both), so only the last part is converted.
fn json_path(_message: &MessageDescriptor, prefix: &str, field: &FieldDescriptor) -> String {
    format!("{prefix}.{}", field.json_name())
}

/// The field at a dotted path of proto names.
pub(super) fn field_at(message: &MessageDescriptor, path: &str) -> Option<FieldDescriptor> {
    let mut message = message.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let field = message.get_field_by_name(part)?;
        if parts.peek().is_none() {
            return Some(field);
        }
        let Kind::Message(inner) = field.kind() else {
            return None;
        };
        message = inner;
    }
    None
}
