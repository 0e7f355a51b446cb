//! The JSON of a response message: unpopulated fields emitted (singular messages as `null`),
//! 64-bit integers as strings, enums by name, and only the `response_body` field when the rule
//! names one.

use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, ReflectMessage, SerializeOptions};
use serde_json::Value;

/// The options every JSON the edge writes is serialized with.
pub fn serialize_options() -> SerializeOptions {
    SerializeOptions::new()
        .skip_default_fields(false)
        .stringify_64_bit_integers(true)
        .use_enum_numbers(false)
}

/// The JSON body of `message`, or of its `response_body` field when given, with the fields in
/// the order the message declares them.
///
/// # Errors
/// `INTERNAL` when the message does not serialize or the field is not in the message (both would
/// mean the descriptors and the upstream disagree).
pub fn response_json(
    message: &DynamicMessage,
    response_body: Option<&str>,
) -> Result<Vec<u8>, tonic::Status> {
    let internal = |e: &dyn std::fmt::Display| tonic::Status::internal(format!("response: {e}"));
    let descriptor = message.descriptor();
    let picked = match response_body {
        None => Some(message),
        Some(name) => {
            let field = descriptor
                .get_field_by_name(name)
                .ok_or_else(|| internal(&format!("no field {name}")))?;
            match message.get_field(&field) {
                std::borrow::Cow::Borrowed(prost_reflect::Value::Message(inner))
                    if !field.is_list() && message.has_field(&field) =>
                {
                    Some(inner)
                }
                _ => None,
            }
        }
    };
    // The common case, every message field set: written straight from the message.
    if let Some(picked) = picked.filter(|m| complete(m)) {
        let mut json = Vec::with_capacity(256);
        picked
            .serialize_with_options(
                &mut serde_json::Serializer::new(&mut json),
                &serialize_options(),
            )
            .map_err(|e| internal(&e))?;
        return Ok(json);
    }
    let mut whole = message
        .serialize_with_options(serde_json::value::Serializer, &serialize_options())
        .map_err(|e| internal(&e))?;
    emit_unpopulated(&mut whole, &descriptor);
    let picked = match response_body {
        None => whole,
        // The whole message is serialized and the field picked by its JSON name, so the field
        // is written with the same options (a scalar field has no message to serialize).
        Some(field) => {
            let field = descriptor
                .get_field_by_name(field)
                .ok_or_else(|| internal(&format!("no field {field}")))?;
            whole
                .get_mut(field.json_name())
                .map(Value::take)
                .unwrap_or(Value::Null)
        }
    };
    serde_json::to_vec(&picked).map_err(|e| internal(&e))
}

/// Whether every singular message field of `message` and of the messages inside it is set, so
/// its JSON needs no `null` written in (oneof members and well-known types aside).
fn complete(message: &DynamicMessage) -> bool {
    let descriptor = message.descriptor();
    if descriptor.full_name().starts_with("google.protobuf.") {
        return true;
    }
    descriptor.fields().all(|field| {
        if field.kind().as_message().is_none() {
            return true;
        }
        if !message.has_field(&field) {
            return field.is_list() || field.is_map() || field.containing_oneof().is_some();
        }
        match &*message.get_field(&field) {
            prost_reflect::Value::Message(inner) => complete(inner),
            prost_reflect::Value::List(items) => items
                .iter()
                .all(|item| item.as_message().is_none_or(complete)),
            prost_reflect::Value::Map(entries) => entries
                .values()
                .all(|value| value.as_message().is_none_or(complete)),
            _ => true,
        }
    })
}

/// Writes `null` for every unset singular message field of `message` and of the messages inside
/// it: prost-reflect leaves fields with presence out even when asked for defaults, and the edge
/// shows browsers every field. Oneof members stay out (only the set one is meaningful), and
/// well-known types keep their own JSON forms. Each object's fields are put back in the order
/// the message declares them, as a message written straight out has them.
fn emit_unpopulated(json: &mut Value, message: &MessageDescriptor) {
    if message.full_name().starts_with("google.protobuf.") {
        return;
    }
    let Some(object) = json.as_object_mut() else {
        return;
    };
    let mut ordered = serde_json::Map::with_capacity(object.len());
    for field in message.fields() {
        let name = field.json_name();
        let Some(mut child) = object.remove(name) else {
            if field.kind().as_message().is_some()
                && !field.is_list()
                && !field.is_map()
                && field.containing_oneof().is_none()
            {
                ordered.insert(name.to_owned(), Value::Null);
            }
            continue;
        };
        if let Kind::Message(inner) = field.kind() {
            if field.is_map() {
                if let Kind::Message(value_type) = inner.map_entry_value_field().kind()
                    && let Some(entries) = child.as_object_mut()
                {
                    for entry in entries.values_mut() {
                        emit_unpopulated(entry, &value_type);
                    }
                }
            } else if let Some(items) = child.as_array_mut() {
                for item in items {
                    emit_unpopulated(item, &inner);
                }
            } else {
                emit_unpopulated(&mut child, &inner);
            }
        }
        ordered.insert(name.to_owned(), child);
    }
    // Anything the descriptor does not name (none today) is kept, after the declared fields.
    ordered.extend(std::mem::take(object));
    *object = ordered;
}

#[cfg(test)]
mod tests {
    use prost_reflect::{DescriptorPool, Value};
    use serde_json::json;

    use super::*;

    fn message(name: &str) -> DynamicMessage {
        let pool = DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET)
            .expect("the contracts decode");
        DynamicMessage::new(pool.get_message_by_name(name).expect("message exists"))
    }

    #[test]
    fn unpopulated_fields_are_emitted_with_int64_as_text_and_enums_by_name() {
        let mut request = message("agora.product.v1.ListProductsRequest");
        request.set_field_by_name("page_size", Value::I32(3));
        request.set_field_by_name("min_price_minor", Value::I64(1200));
        let body: serde_json::Value =
            serde_json::from_slice(&response_json(&request, None).expect("serializes"))
                .expect("JSON");
        assert_eq!(body["pageSize"], 3);
        assert_eq!(body["minPriceMinor"], "1200");
        assert_eq!(body["pageToken"], "");
        assert_eq!(body["includeArchived"], false);
        assert_eq!(body["orderBy"], "PRODUCT_ORDER_UNSPECIFIED");
    }

    #[test]
    fn a_response_body_rule_sends_only_that_field() {
        let mut request = message("agora.product.v1.ListProductsRequest");
        request.set_field_by_name("page_token", Value::String("next".into()));
        let body: serde_json::Value = serde_json::from_slice(
            &response_json(&request, Some("page_token")).expect("serializes"),
        )
        .expect("JSON");
        assert_eq!(body, json!("next"));
        assert!(response_json(&request, Some("missing")).is_err());
    }
}
