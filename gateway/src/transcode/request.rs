//! The request message of a route, from its path variables, query string and JSON body.
//!
//! Everything is gathered into one JSON object and read once with prost-reflect's proto3 JSON
//! mapping, so query values take the same forms a body does (enums by name or number, int64 as
//! text, `Timestamp`, `Duration`, `FieldMask` in their JSON forms). Each path and query value is
//! first read alone against its field, so the 400 for a value that does not parse names it.

use prost_reflect::{DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};

use crate::rules::Binding;

/// Builds the request message; every failure is an `INVALID_ARGUMENT` naming what was wrong, and
/// nothing is sent upstream.
///
/// # Errors
/// Malformed JSON, a body or query value contradicting a path-bound one, a query parameter that
/// cannot be bound or is given twice, or a value that does not parse as its field's type.
pub fn request_message(
    binding: &Binding,
    path_values: &[(Vec<String>, String)],
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, tonic::Status> {
    let input = binding.method.input();
    let mut tree = body_tree(binding.body.as_deref(), body)?;
    let bound = bind_path(&input, &mut tree, path_values)?;
    // With `body: "*"` every field comes from the body; otherwise the query fills the rest.
    if binding.body.as_deref() != Some("*") {
        bind_query(
            &input,
            &mut tree,
            &bound,
            binding.body.as_deref(),
            query.unwrap_or_default(),
        )?;
    }
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    DynamicMessage::deserialize_with_options(input, Value::Object(tree), &options)
        .map_err(|e| invalid(format!("invalid request: {e}")))
}

/// A path-bound field and its value, which neither the body nor the query may change.
type Bound = (Vec<FieldDescriptor>, prost_reflect::Value);

/// Puts each path variable into `tree`; a body value for the same field must agree.
fn bind_path(
    input: &MessageDescriptor,
    tree: &mut Map<String, Value>,
    path_values: &[(Vec<String>, String)],
) -> Result<Vec<Bound>, tonic::Status> {
    let mut bound = Vec::with_capacity(path_values.len());
    for (path, text) in path_values {
        let name = path.join(".");
        let fields = resolve(input, path).ok_or_else(|| unknown_field(&name))?;
        let json = text_json(&fields, text);
        let value = leaf_value(input, &fields, &json)
            .map_err(|e| invalid(format!("path variable {name}: {text:?} {e}")))?;
        let (node, leaf) = parent_object(tree, &fields)?;
        match find_key(node, leaf).and_then(|key| node.get(&key)) {
            Some(given) => match leaf_value(input, &fields, given) {
                Ok(given) if given == value => {}
                Ok(_) => return Err(invalid(format!("{name} in the body contradicts the path"))),
                Err(e) => return Err(invalid(format!("{name} in the body {e}"))),
            },
            None => {
                node.insert(leaf.name().to_owned(), json);
            }
        }
        bound.push((fields, value));
    }
    Ok(bound)
}

/// Puts each query parameter into `tree`: repeated keys append, unknown keys and the body field
/// are ignored, a path-bound field may only be repeated with the same value.
fn bind_query(
    input: &MessageDescriptor,
    tree: &mut Map<String, Value>,
    bound: &[Bound],
    body_field: Option<&str>,
    query: &str,
) -> Result<(), tonic::Status> {
    let mut seen: Vec<Vec<FieldDescriptor>> = Vec::new();
    for (key, text) in form_pairs(query)? {
        let path: Vec<&str> = key.split('.').collect();
        // Unknown query parameters are ignored, like both reference transcoders do; so is the
        // body field, which comes from the body only.
        let Some(fields) = resolve(input, &path) else {
            continue;
        };
        if body_field.is_some() && body_field == fields.first().map(FieldDescriptor::name) {
            continue;
        }
        bindable(&fields).map_err(|why| invalid(format!("query parameter {key} {why}")))?;
        let json = text_json(&fields, &text);
        let value = leaf_value(input, &fields, &json)
            .map_err(|e| invalid(format!("query parameter {key}: {text:?} {e}")))?;
        if let Some((_, path_value)) = bound.iter().find(|(b, _)| *b == fields) {
            if *path_value != value {
                return Err(invalid(format!(
                    "query parameter {key} contradicts the path"
                )));
            }
            continue;
        }
        let (node, leaf) = parent_object(tree, &fields)?;
        if !leaf.is_list() && seen.contains(&fields) {
            return Err(invalid(format!(
                "query parameter {key} is given twice but {} is not repeated",
                leaf.name()
            )));
        }
        let name = find_key(node, leaf).unwrap_or_else(|| leaf.name().to_owned());
        match (node.get_mut(&name), json) {
            (Some(Value::Array(items)), Value::Array(more)) => items.extend(more),
            (_, json) => {
                node.insert(name, json);
            }
        }
        seen.push(fields);
    }
    Ok(())
}

fn invalid(message: String) -> tonic::Status {
    tonic::Status::invalid_argument(message)
}

fn unknown_field(name: &str) -> tonic::Status {
    invalid(format!("{name} is not a field of the request"))
}

/// The JSON object the body contributes: the whole body, one field of it, or nothing.
fn body_tree(mode: Option<&str>, body: &[u8]) -> Result<Map<String, Value>, tonic::Status> {
    let Some(field) = mode else {
        return Ok(Map::new());
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the request body is not JSON: {e}")))?;
    match (field, parsed) {
        ("*", Value::Object(map)) => Ok(map),
        ("*", _) => Err(invalid("the request body must be a JSON object".to_owned())),
        (field, parsed) => Ok(Map::from_iter([(field.to_owned(), parsed)])),
    }
}

/// The fields a dotted path names, by proto or JSON name; `None` when it names no field.
fn resolve<S: AsRef<str>>(message: &MessageDescriptor, path: &[S]) -> Option<Vec<FieldDescriptor>> {
    let mut message = message.clone();
    let mut fields = Vec::with_capacity(path.len());
    for (i, part) in path.iter().enumerate() {
        let part = part.as_ref();
        let field = message
            .get_field_by_name(part)
            .or_else(|| message.get_field_by_json_name(part))?;
        if i + 1 < path.len() {
            message = field.kind().as_message()?.clone();
        }
        fields.push(field);
    }
    (!fields.is_empty()).then_some(fields)
}

/// Well-known types whose JSON form is one string or scalar, so a query value can carry them.
const SCALAR_LIKE: &[&str] = &[
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
];

/// Whether a query parameter may set the field at `fields`: scalars (repeated ones by repeating
/// the key) through singular messages; never a map, a repeated message or a whole message.
fn bindable(fields: &[FieldDescriptor]) -> Result<(), &'static str> {
    let (leaf, parents) = fields.split_last().ok_or("names no field")?;
    if parents.iter().any(|f| f.is_list() || f.is_map()) || leaf.is_map() {
        return Err("cannot be set from the query: repeated messages and maps are not bindable");
    }
    match leaf.kind() {
        Kind::Message(m) if SCALAR_LIKE.contains(&m.full_name()) => Ok(()),
        Kind::Message(_) if leaf.is_list() => {
            Err("cannot be set from the query: repeated messages and maps are not bindable")
        }
        Kind::Message(_) => Err("names a message: set its fields by their dotted paths"),
        _ => Ok(()),
    }
}

/// The JSON form of a path or query value for the field at the end of `fields`; a repeated field
/// gets a one-element list, which repeated keys extend.
fn text_json(fields: &[FieldDescriptor], text: &str) -> Value {
    let Some(leaf) = fields.last() else {
        return Value::String(text.to_owned());
    };
    let kind = leaf.kind();
    let wrapped = kind.as_message().map(|m| m.full_name().to_owned());
    let value = match (&kind, wrapped.as_deref()) {
        (Kind::Bool, _) | (_, Some("google.protobuf.BoolValue")) => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text.to_owned()),
        },
        (Kind::Enum(_), _) => text
            .parse::<i64>()
            .map_or_else(|_| Value::String(text.to_owned()), Value::from),
        // The JSON form of a mask is lowerCamelCase; in a query the proto names are as common.
        (_, Some("google.protobuf.FieldMask")) => Value::String(camel_case_mask(text)),
        _ => Value::String(text.to_owned()),
    };
    if leaf.is_list() {
        Value::Array(vec![value])
    } else {
        value
    }
}

/// `title,page_count` -> `title,pageCount`; lowerCamelCase paths pass unchanged.
fn camel_case_mask(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut upper = false;
    for c in text.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// The field's value once `json` is read into it alone: the check that the value parses, and the
/// value a path-bound field is compared by.
fn leaf_value(
    input: &MessageDescriptor,
    fields: &[FieldDescriptor],
    json: &Value,
) -> Result<prost_reflect::Value, String> {
    let mut tree = json.clone();
    for field in fields.iter().rev() {
        tree = Value::Object(Map::from_iter([(field.name().to_owned(), tree)]));
    }
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let mut message = DynamicMessage::deserialize_with_options(input.clone(), tree, &options)
        .map_err(|e| format!("does not parse: {e}"))?;
    let (leaf, parents) = fields.split_last().ok_or("names no field")?;
    for field in parents {
        match message.get_field(field).into_owned() {
            prost_reflect::Value::Message(inner) => message = inner,
            _ => return Err(format!("{} is not a message", field.name())),
        }
    }
    Ok(message.get_field(leaf).into_owned())
}

/// The object holding the field at the end of `fields` (created as needed), and that field.
fn parent_object<'t, 'f>(
    tree: &'t mut Map<String, Value>,
    fields: &'f [FieldDescriptor],
) -> Result<(&'t mut Map<String, Value>, &'f FieldDescriptor), tonic::Status> {
    let (leaf, parents) = fields
        .split_last()
        .ok_or_else(|| invalid("an empty field path".to_owned()))?;
    let mut node = tree;
    for field in parents {
        let key = find_key(node, field).unwrap_or_else(|| field.name().to_owned());
        node = node
            .entry(key)
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| invalid(format!("{} must be an object", field.name())))?;
    }
    Ok((node, leaf))
}

/// The key `field` has in `node`, by proto name or JSON name, if it is there.
fn find_key(node: &Map<String, Value>, field: &FieldDescriptor) -> Option<String> {
    [field.name(), field.json_name()]
        .into_iter()
        .find(|k| node.contains_key(*k))
        .map(str::to_owned)
}

/// `key=value` pairs of a query string, `+` as space and percent-decoded.
///
/// # Errors
/// A key or value that is not UTF-8 once decoded.
fn form_pairs(query: &str) -> Result<Vec<(String, String)>, tonic::Status> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = form_decode(key)
                .ok_or_else(|| invalid("a query parameter name is not UTF-8".to_owned()))?;
            let value = form_decode(value)
                .ok_or_else(|| invalid(format!("query parameter {key} is not UTF-8")))?;
            Ok((key, value))
        })
        .collect()
}

fn form_decode(text: &str) -> Option<String> {
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
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
