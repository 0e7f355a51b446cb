//! Reading an event's payload as the message its type says, the same way in every consumer.

use agora_contracts::agora::events::v1::EventEnvelope;
use prost::{Message, Name};

use super::HandlerError;

/// Decodes the payload of `event` as `M`, refusing an envelope whose payload is missing, of
/// another type, or does not decode: none of those would decode on a retry either, so each is a
/// [`HandlerError::Reject`] (the event goes to the dead-letter stream with the reason).
///
/// The type URL is compared by the message name after its last `/`, whatever host it names
/// (`type.googleapis.com/` or none), as producers in other languages may write either.
///
/// # Errors
/// [`HandlerError::Reject`] with the event id and what is wrong.
pub fn decode<M: Message + Name + Default>(event: &EventEnvelope) -> Result<M, HandlerError> {
    let any = event
        .payload
        .as_ref()
        .ok_or_else(|| HandlerError::Reject(format!("event {} has no payload", event.id)))?;
    let name = M::full_name();
    if any.type_url.rsplit('/').next() != Some(name.as_str()) {
        return Err(HandlerError::Reject(format!(
            "event {} says {} but carries {}",
            event.id, event.r#type, any.type_url
        )));
    }
    M::decode(any.value.as_slice()).map_err(|error| {
        HandlerError::Reject(format!("event {} does not decode: {error}", event.id))
    })
}

#[cfg(test)]
mod tests {
    use agora_contracts::agora::events::v1::{ProductCreated, UserRegistered};

    use super::*;

    fn envelope(payload: Option<prost_types::Any>) -> EventEnvelope {
        EventEnvelope {
            id: "e1".into(),
            r#type: UserRegistered::full_name(),
            payload,
            ..Default::default()
        }
    }

    fn registered() -> UserRegistered {
        UserRegistered {
            user_id: "u1".into(),
            email: "ada@example.com".into(),
            ..Default::default()
        }
    }

    fn reason(result: Result<UserRegistered, HandlerError>) -> String {
        match result {
            Err(HandlerError::Reject(reason)) => reason,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn a_payload_of_the_named_type_decodes_whatever_host_its_type_url_names() {
        let message = registered();
        for type_url in [
            format!("type.googleapis.com/{}", UserRegistered::full_name()),
            UserRegistered::full_name(),
            format!("example.org/types/{}", UserRegistered::full_name()),
        ] {
            let any = prost_types::Any {
                type_url,
                value: message.encode_to_vec(),
            };
            assert_eq!(
                decode::<UserRegistered>(&envelope(Some(any))).ok(),
                Some(message.clone())
            );
        }
    }

    #[test]
    fn a_missing_payload_is_rejected() {
        assert!(reason(decode(&envelope(None))).contains("has no payload"));
    }

    #[test]
    fn a_payload_of_another_type_is_rejected() {
        let other = prost_types::Any::from_msg(&ProductCreated::default()).expect("encodes");
        let reason = reason(decode(&envelope(Some(other))));
        assert!(reason.contains("but carries"), "{reason}");
    }

    #[test]
    fn a_payload_that_does_not_decode_is_rejected() {
        let any = prost_types::Any {
            type_url: format!("type.googleapis.com/{}", UserRegistered::full_name()),
            value: vec![0xff, 0xff, 0xff],
        };
        let reason = reason(decode(&envelope(Some(any))));
        assert!(reason.contains("does not decode"), "{reason}");
    }
}
