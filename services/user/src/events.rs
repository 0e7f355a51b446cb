//! What the user service consumes: auth's `agora.events.v1.UserRegistered`, which creates the
//! account's profile. The service publishes nothing (no other service needs to hear about
//! profile changes yet).

use agora_contracts::agora::events::v1::{EventEnvelope, UserRegistered};
use agora_platform::events::{Handler, HandlerError};
use prost::{Message as _, Name as _};

use crate::{
    domain::Registration,
    store::{Recorded, Store},
};

/// The stream the registrations come from.
pub const PRODUCER: &str = agora_platform::events::Stream::Auth.name();
/// The consumer group of every user service replica, and the name events are remembered under.
pub const GROUP: &str = agora_platform::config::ServiceKind::User.name();

/// Creates a profile for every registered account, once.
#[derive(Debug, Clone)]
pub struct Registrations {
    store: Store,
}

impl Registrations {
    /// A handler writing to `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn apply(&self, event: &EventEnvelope) -> Result<(), HandlerError> {
        if event.r#type != UserRegistered::full_name() {
            // Auth's stream may carry other events one day; they are not ours to handle.
            return Ok(());
        }
        let registered = decode(event)?;
        // An event without its own time still has its envelope's; either is the account's
        // registration time to within a transaction.
        let registered_at = registered
            .register_time
            .as_ref()
            .or(event.occur_time.as_ref())
            .map_or_else(crate::store::now_micros, micros);
        let registration =
            Registration::parse(&registered.user_id, &registered.email, registered_at).map_err(
                |error| HandlerError::Reject(format!("invalid UserRegistered: {error}")),
            )?;
        let recorded = self
            .store
            .record_registration(GROUP, &event.id, &registration)
            .await
            .map_err(|error| HandlerError::Retry(error.into()))?;
        match recorded {
            Recorded::Created => {
                tracing::info!(user_id = registration.user_id, "profile created");
            }
            Recorded::ProfileExisted => tracing::warn!(
                user_id = registration.user_id,
                event.id = %event.id,
                "a second registration event for an existing profile; the profile is unchanged"
            ),
            Recorded::AlreadyApplied => {
                tracing::debug!(event.id = %event.id, "registration applied before; skipped");
            }
        }
        Ok(())
    }
}

impl Handler for Registrations {
    fn handle(
        &self,
        event: &EventEnvelope,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        self.apply(event)
    }
}

/// The envelope's payload as a `UserRegistered`.
fn decode(event: &EventEnvelope) -> Result<UserRegistered, HandlerError> {
    let payload = event
        .payload
        .as_ref()
        .ok_or_else(|| HandlerError::Reject("the event carries no payload".into()))?;
    // The type URL's host part is not meaningful (`type.googleapis.com/` or none): compare the
    // message name after the last slash.
    let name = payload.type_url.rsplit('/').next().unwrap_or_default();
    if name != UserRegistered::full_name() {
        return Err(HandlerError::Reject(format!(
            "the envelope says {} but the payload is {}",
            event.r#type, payload.type_url
        )));
    }
    UserRegistered::decode(payload.value.as_slice())
        .map_err(|error| HandlerError::Reject(format!("the payload does not decode: {error}")))
}

/// A protobuf timestamp in microseconds since the epoch.
fn micros(timestamp: &prost_types::Timestamp) -> i64 {
    timestamp
        .seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(timestamp.nanos) / 1000)
}
