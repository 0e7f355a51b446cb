//! What the user service consumes: auth's `agora.events.v1.UserRegistered`, which creates the
//! account's profile. The service publishes nothing (no other service needs to hear about
//! profile changes yet).

use agora_contracts::agora::events::v1::{EventEnvelope, UserRegistered};
use agora_platform::{
    events::{Handler, HandlerError, decode},
    time::{now_micros, timestamp_micros},
};
use prost::Name as _;

use crate::{
    domain::Registration,
    store::{Recorded, Store, StoreError},
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
        let registered: UserRegistered = decode(event)?;
        // An event without its own time still has its envelope's; either is the account's
        // registration time to within a transaction.
        let registered_at = registered
            .register_time
            .as_ref()
            .or(event.occur_time.as_ref())
            .map_or_else(now_micros, timestamp_micros);
        let registration =
            Registration::parse(&registered.user_id, &registered.email, registered_at).map_err(
                |error| HandlerError::Reject(format!("invalid UserRegistered: {error}")),
            )?;
        let recorded = self
            .store
            .record_registration(GROUP, &event.id, &registration)
            .await?;
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

/// A store failure may pass (a database hiccup): the event is delivered again.
impl From<StoreError> for HandlerError {
    fn from(error: StoreError) -> Self {
        HandlerError::Retry(error.into())
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
