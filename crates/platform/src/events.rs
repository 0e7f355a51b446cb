//! The event bus: how a service tells the others what changed, without losing an event and
//! without a distributed transaction.
//!
//! A producer writes each event into its own database's `outbox` table in the same transaction
//! as the change it describes ([`enqueue`]). A [`Relay`] publishes pending rows in order to the
//! producer's stream and marks them sent; a crash between the two re-publishes (at least once,
//! never lost). Consumers read a stream as a consumer group ([`spawn_consumer`]): each event goes
//! to one consumer of the group, is acknowledged only after the consumer's own transaction
//! commits, is reclaimed by another consumer when its consumer dies, and goes to the stream's
//! dead-letter stream, with the reason, when it is poison or fails too often. Consumers are
//! idempotent: [`remember`] records an event id in the consumer's database in the same
//! transaction as its effect.
//!
//! Two transports with the same semantics: Redis Streams (consumer groups, `XCLAIM`) when
//! `REDIS_URL` is set, and an in-process implementation of the same model for the embedded mesh.
//! What travels is the encoded `agora.events.v1.EventEnvelope` (field `envelope` of each stream
//! entry, beside `event_id` and `type`), so a consumer in any language can read it.
//!
//! # When Redis loses data
//! Redis can lose stream entries, consumer groups or whole streams: a restart without
//! persistence, `FLUSHALL`, a failover to a replica that lagged, and, even with persistence, the
//! writes of the last second under `appendfsync everysec` (none with `always`). The bus heals:
//! - A consumer whose group is gone (`NOGROUP`) creates it again at the start of the stream
//!   (`XGROUP CREATE ... 0 MKSTREAM`), says so once at WARN, and asks the producer for a replay
//!   on `<prefix><producer>:replay` ([`Bus::request_replay`]): it cannot know what its group had
//!   not applied yet, so it asks for the whole retention window.
//! - A relay remembers the stream ids of what it published. Before each round that publishes,
//!   and every second when idle, it compares them with the stream's `last-generated-id`: a stream
//!   that is gone or went back lost entries, and the relay publishes again, in outbox order, its
//!   retained events from the first batch that may be lost ([`Relay::heal`]). It also answers
//!   replay requests, skipping those a replay made after them already covers.
//! - Producers keep published events for `events.retention` (default 24 h) before pruning them,
//!   and consumers remember the ids they applied at least as long (the platform never prunes
//!   `processed_events`), so a replayed event is applied once.
//!
//! So with a persistent Redis (AOF `everysec` or `always`), what it can lose (its last second, or
//! what a lagging replica never received) was published recently and is still in the producer's
//! retention window: it is published again. With a Redis without persistence, everything still
//! in the producer's retention window is delivered again after a loss; older events are not.
//! Replays re-deliver events consumers already applied (they skip them) and may deliver an event
//! after ones the producer wrote later. A relay restarted after the loss knows nothing of it,
//! and a loss followed at once by a publish can hide from its check; consumers' requests cover
//! both as long as their group was lost too.
//!
//! A service that publishes carries the `outbox` table in its migrations, and one that consumes
//! the `processed_events` table (PostgreSQL shown; on SQLite `seq` is
//! `INTEGER PRIMARY KEY AUTOINCREMENT` and `envelope` a `BLOB`):
//! ```sql
//! CREATE TABLE outbox (
//!     seq BIGSERIAL PRIMARY KEY,
//!     event_id TEXT NOT NULL UNIQUE,
//!     event_type TEXT NOT NULL,
//!     envelope BYTEA NOT NULL,
//!     created_at BIGINT NOT NULL,
//!     published_at BIGINT
//! );
//! CREATE TABLE processed_events (
//!     consumer TEXT NOT NULL,
//!     event_id TEXT NOT NULL,
//!     processed_at BIGINT NOT NULL,
//!     PRIMARY KEY (consumer, event_id)
//! );
//! ```
//!
//! # Layout
//! - `stream`: [`Stream`], the typed names of the producers' streams.
//! - `bus`: [`Bus`], publishing, reading and inspecting streams; `reader`: one consumer of a
//!   group, which heals a lost group.
//! - `background`: [`Background`], the tasks that run beside a service.
//! - `outbox`: [`enqueue`] and the [`Relay`], which also publishes again what Redis lost.
//! - `consumer`: [`Handler`], [`remember`] and the consumer loop.
//! - `follower`: [`spawn_follower`], which sees every event of a stream in every process (no
//!   group), for per-process views such as [`crate::revocation`].
//! - `memory`, `redis_streams`: the two transports.

mod background;
mod bus;
mod consumer;
mod decode;
mod follower;
mod memory;
mod outbox;
mod reader;
mod redis_streams;
mod stream;

pub use background::Background;
pub use bus::Bus;
pub use consumer::{Handler, HandlerError, remember, spawn_consumer};
pub use decode::decode;
pub use follower::spawn_follower;
pub use outbox::{Relay, enqueue};
pub(crate) use reader::Reader;
pub use stream::Stream;

use bus::Transport;

/// One stream entry as a transport hands it out.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The transport's id of the entry (`<millis>-<seq>` on Redis).
    pub(crate) id: String,
    /// The entry's fields.
    pub(crate) fields: Vec<(String, Vec<u8>)>,
    /// How many times the entry has been delivered to the group, this time included.
    pub(crate) deliveries: u64,
}

impl Entry {
    fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_slice())
    }

    fn text(&self, name: &str) -> String {
        self.field(name)
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default()
    }
}

/// A stream entry id, `<millis>-<sequence>`: ids only grow on a stream, so one lower than an id
/// handed out before means the stream lost entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StreamId(u64, u64);

impl StreamId {
    fn parse(id: &str) -> anyhow::Result<Self> {
        let (millis, sequence) = id.split_once('-').unwrap_or((id, "0"));
        match (millis.parse(), sequence.parse()) {
            (Ok(millis), Ok(sequence)) => Ok(Self(millis, sequence)),
            _ => anyhow::bail!("{id:?} is not a stream entry id"),
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// Whether `error` says the consumer group or its stream does not exist (Redis' `NOGROUP`): it
/// was destroyed, or Redis lost its data.
fn is_lost_group(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<redis::RedisError>()
            .is_some_and(|error| error.code() == Some("NOGROUP"))
    })
}

/// An event set aside by a consumer group, and why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The event's id (empty when the entry did not even carry one).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The consumer group that gave up on it.
    pub group: String,
    /// Why: the handler's rejection, or the last error after the last attempt.
    pub reason: String,
    /// How many times it was delivered.
    pub attempts: u64,
    /// The entry's envelope bytes, unchanged, for replay.
    pub envelope: Vec<u8>,
}
