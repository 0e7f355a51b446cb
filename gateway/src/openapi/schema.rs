//! JSON Schemas of Protobuf messages, as the edge writes and reads them: the canonical proto3
//! JSON mapping (lowerCamelCase names, 64-bit integers as strings, enums by name, well-known types
//! in their JSON forms), with each proto comment as the description.

use std::collections::BTreeMap;

use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Value, json};

use super::comments::Comments;

/// The component schemas of a document, filled as messages are referenced.
pub(super) struct Schemas<'a> {
    pub(super) components: BTreeMap<String, Value>,
    comments: &'a Comments,
}

/// A `$ref` to a component schema.
pub(super) fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The schema of a well-known type in its JSON form, or `None` for an ordinary message.
fn well_known(full_name: &str) -> Option<Value> {
    let int64 = json!({ "type": "string", "format": "int64", "pattern": "^-?[0-9]+$" });
    let uint64 = json!({ "type": "string", "format": "uint64", "pattern": "^[0-9]+$" });
    Some(match full_name {
        "google.protobuf.Timestamp" => json!({
            "type": "string", "format": "date-time",
            "description": "An RFC 3339 time in UTC, e.g. `2024-05-01T12:00:00Z`."
        }),
        "google.protobuf.Duration" => json!({
            "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$",
            "description": "Seconds with an `s` suffix, e.g. `1.5s`."
        }),
        "google.protobuf.FieldMask" => json!({
            "type": "string",
            "description": "Comma-separated lowerCamelCase field paths, e.g. `displayName,preferences`."
        }),
        "google.protobuf.Struct" => json!({ "type": "object" }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({ "type": "array", "items": {} }),
        "google.protobuf.Empty" => json!({ "type": "object" }),
        "google.protobuf.Any" => json!({
            "type": "object",
            "properties": { "@type": { "type": "string" } },
            "required": ["@type"],
        }),
        "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => json!({ "type": "number" }),
        "google.protobuf.Int64Value" => int64,
        "google.protobuf.UInt64Value" => uint64,
        "google.protobuf.Int32Value" => json!({ "type": "integer", "format": "int32" }),
        "google.protobuf.UInt32Value" => {
            json!({ "type": "integer", "format": "uint32", "minimum": 0 })
        }
        "google.protobuf.BoolValue" => json!({ "type": "boolean" }),
        "google.protobuf.StringValue" => json!({ "type": "string" }),
        "google.protobuf.BytesValue" => json!({ "type": "string", "contentEncoding": "base64" }),
        _ => return None,
    })
}

/// Whether a message travels as a single JSON scalar (and so can be a query parameter).
pub(super) fn is_scalar_message(message: &MessageDescriptor) -> bool {
    matches!(
        message.full_name(),
        "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

impl<'a> Schemas<'a> {
    pub(super) fn new(comments: &'a Comments) -> Self {
        Self {
            components: BTreeMap::new(),
            comments,
        }
    }

    /// The schema of one value of `kind` (a list's item, a map's value, a singular field).
    pub(super) fn kind(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double | Kind::Float => json!({ "type": "number" }),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({ "type": "integer", "format": "int32" })
            }
            Kind::Uint32 | Kind::Fixed32 => {
                json!({ "type": "integer", "format": "uint32", "minimum": 0, "maximum": 4_294_967_295_u64 })
            }
            // 64-bit integers are strings so JavaScript's doubles cannot round them.
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                json!({ "type": "string", "format": "int64", "pattern": "^-?[0-9]+$" })
            }
            Kind::Uint64 | Kind::Fixed64 => {
                json!({ "type": "string", "format": "uint64", "pattern": "^[0-9]+$" })
            }
            Kind::Bool => json!({ "type": "boolean" }),
            Kind::String => json!({ "type": "string" }),
            Kind::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
            Kind::Enum(enumeration) => self.enumeration(enumeration),
            Kind::Message(message) => self.message(message),
        }
    }

    /// The schema of a field: its value's schema, as a list or map when it is one, described by
    /// its comment.
    pub(super) fn field(&mut self, field: &FieldDescriptor) -> Value {
        let mut schema = if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                unreachable!("a map field's kind is its entry message")
            };
            let value = self.kind(&entry.map_entry_value_field().kind());
            let key_kind = entry.map_entry_key_field().kind();
            let mut map = json!({ "type": "object", "additionalProperties": value });
            if !matches!(key_kind, Kind::String) {
                map["propertyNames"] = json!({ "pattern": key_pattern(&key_kind) });
            }
            map
        } else if field.is_list() {
            json!({ "type": "array", "items": self.kind(&field.kind()) })
        } else {
            self.kind(&field.kind())
        };
        if let Some(text) = self.comments.of(&field.parent_file(), field.path()) {
            describe(&mut schema, text);
        }
        schema
    }

    /// A `$ref` to a message's component schema (written the first time), or its inline JSON form
    /// for a well-known type.
    pub(super) fn message(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(schema) = well_known(message.full_name()) {
            return schema;
        }
        let name = message.full_name().to_owned();
        if !self.components.contains_key(&name) {
            // A placeholder first, so a message that contains itself does not recurse forever.
            self.components.insert(name.clone(), Value::Null);
            let schema = self.object(message, &[]);
            self.components.insert(name.clone(), schema);
        }
        reference(&name)
    }

    /// The object schema of a message, without the fields at `excluded` (dotted proto paths,
    /// relative to this message): the body of a request whose path binds those fields.
    pub(super) fn object(&mut self, message: &MessageDescriptor, excluded: &[String]) -> Value {
        let mut properties = serde_json::Map::new();
        for field in message.fields() {
            if excluded.iter().any(|path| path == field.name()) {
                continue;
            }
            let nested: Vec<String> = excluded
                .iter()
                .filter_map(|path| path.strip_prefix(&format!("{}.", field.name())))
                .map(str::to_owned)
                .collect();
            let schema = match field.kind() {
                Kind::Message(inner)
                    if !nested.is_empty() && !field.is_list() && !field.is_map() =>
                {
                    let mut schema = self.object(&inner, &nested);
                    if let Some(text) = self.comments.of(&field.parent_file(), field.path()) {
                        describe(&mut schema, text);
                    }
                    schema
                }
                _ => self.field(&field),
            };
            properties.insert(field.json_name().to_owned(), schema);
        }
        let mut schema = json!({ "type": "object", "properties": properties });
        if let Some(text) = self.comments.of(&message.parent_file(), message.path()) {
            describe(&mut schema, text);
        }
        schema
    }

    /// A `$ref` to an enum's component schema: its value names (numbers are accepted on input
    /// too, but the edge always writes names).
    fn enumeration(&mut self, enumeration: &EnumDescriptor) -> Value {
        if enumeration.full_name() == "google.protobuf.NullValue" {
            return json!({ "type": "null" });
        }
        let name = enumeration.full_name().to_owned();
        if !self.components.contains_key(&name) {
            let file = enumeration.parent_file();
            let names: Vec<String> = enumeration.values().map(|v| v.name().to_owned()).collect();
            let mut text = self
                .comments
                .of(&file, enumeration.path())
                .unwrap_or_default()
                .to_owned();
            for value in enumeration.values() {
                if let Some(comment) = self.comments.of(&file, value.path()) {
                    text.push_str(&format!(
                        "\n- `{}`: {}",
                        value.name(),
                        comment.replace('\n', " ")
                    ));
                }
            }
            let mut schema = json!({ "type": "string", "enum": names });
            describe(&mut schema, text.trim());
            self.components.insert(name.clone(), schema);
        }
        reference(&name)
    }
}

/// The pattern of a map key that JSON writes as a string.
fn key_pattern(kind: &Kind) -> &'static str {
    match kind {
        Kind::Bool => "^(true|false)$",
        Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => "^[0-9]+$",
        _ => "^-?[0-9]+$",
    }
}

/// Sets a schema's description. A `$ref` cannot have siblings in older tools, but OpenAPI 3.1
/// (JSON Schema 2020-12) allows them, and a field's comment says more than its type's.
pub(super) fn describe(schema: &mut Value, text: &str) {
    if !text.is_empty()
        && let Some(object) = schema.as_object_mut()
    {
        object.insert("description".into(), Value::String(text.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::DescriptorPool;

    /// The contracts' message named `name`.
    fn message(name: &str) -> MessageDescriptor {
        DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET)
            .expect("the contracts decode")
            .get_message_by_name(name)
            .expect("a message")
    }

    #[test]
    fn sixty_four_bit_integers_are_strings_and_enums_are_names() {
        let comments = Comments::default();
        let mut schemas = Schemas::new(&comments);
        let stock = message("agora.inventory.v1.StockLevel");
        let reference = schemas.message(&stock);
        assert_eq!(
            reference["$ref"],
            "#/components/schemas/agora.inventory.v1.StockLevel"
        );
        let schema = &schemas.components["agora.inventory.v1.StockLevel"];
        let properties = schema["properties"].as_object().expect("properties");
        assert!(
            properties.contains_key("productId"),
            "lowerCamelCase: {schema}"
        );
        assert!(!properties.contains_key("product_id"));
        let int64 = properties
            .values()
            .find(|p| p["format"] == "int64")
            .expect("an int64 field");
        assert_eq!(int64["type"], "string");
    }

    #[test]
    fn timestamps_are_rfc3339_strings_and_enums_list_their_names() {
        let comments = Comments::default();
        let mut schemas = Schemas::new(&comments);
        let product = message("agora.product.v1.Product");
        schemas.message(&product);
        let schema = &schemas.components["agora.product.v1.Product"];
        assert_eq!(
            schema["properties"]["createTime"]["format"], "date-time",
            "{schema}"
        );
        let status = &schemas.components["agora.product.v1.ProductStatus"];
        let names = status["enum"].as_array().expect("names");
        assert!(
            names.iter().any(|n| n == "PRODUCT_STATUS_ACTIVE"),
            "{status}"
        );
    }

    #[test]
    fn an_excluded_field_is_left_out_of_the_body_even_when_nested() {
        let comments = Comments::default();
        let mut schemas = Schemas::new(&comments);
        let update = message("agora.product.v1.UpdateProductRequest");
        let body = schemas.object(&update, &["product.id".to_owned()]);
        let product = &body["properties"]["product"];
        assert!(product["properties"].get("id").is_none(), "{product}");
        assert!(product["properties"].get("name").is_some(), "{product}");
    }
}
