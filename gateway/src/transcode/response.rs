//! The JSON of a response message: unpopulated fields emitted, 64-bit integers as strings, enums
//! by name, and only the `response_body` field when the rule names one.

use prost_reflect::{DynamicMessage, ReflectMessage, SerializeOptions};

/// The options every JSON the edge writes is serialized with.
pub fn serialize_options() -> SerializeOptions {
    SerializeOptions::new()
        .skip_default_fields(false)
        .stringify_64_bit_integers(true)
        .use_enum_numbers(false)
}

/// The JSON body of `message`, or of its `response_body` field when given.
///
/// # Errors
/// `INTERNAL` when the message does not serialize or the field is not in the message (both would
/// mean the descriptors and the upstream disagree).
pub fn response_json(
    message: &DynamicMessage,
    response_body: Option<&str>,
) -> Result<Vec<u8>, tonic::Status> {
    let internal = |e: &dyn std::fmt::Display| tonic::Status::internal(format!("response: {e}"));
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut out);
    let options = serialize_options();
    match response_body {
        None => message
            .serialize_with_options(&mut serializer, &options)
            .map_err(|e| internal(&e))?,
        Some(field) => {
            // Serialize the whole message, then pick the field by its JSON name, so the field is
            // written with the same options (a scalar field has no message to serialize alone).
            let descriptor = message
                .descriptor()
                .get_field_by_name(field)
                .ok_or_else(|| internal(&format!("no field {field}")))?;
            let mut whole = Vec::new();
            message
                .serialize_with_options(&mut serde_json::Serializer::new(&mut whole), &options)
                .map_err(|e| internal(&e))?;
            let value: serde_json::Value =
                serde_json::from_slice(&whole).map_err(|e| internal(&e))?;
            let picked = value
                .get(descriptor.json_name())
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            serde::Serialize::serialize(&picked, &mut serializer).map_err(|e| internal(&e))?;
        }
    }
    Ok(out)
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
