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
//! - `outbox`: [`enqueue`] and the [`Relay`], which also publishes again what Redis lost.
//! - `consumer`: [`Handler`], [`remember`] and the consumer loop.
//! - `follower`: [`spawn_follower`], which sees every event of a stream in every process (no
//!   group), for per-process views such as [`crate::revocation`].
//! - `memory`, `redis_streams`: the two transports.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use agora_contracts::agora::events::v1::EventEnvelope;
use anyhow::Context as _;
use prost::Message as _;

use crate::config::Settings;

mod consumer;
mod decode;
mod follower;
mod memory;
mod outbox;
mod redis_streams;

pub use consumer::{Handler, HandlerError, remember, spawn_consumer};
pub use decode::decode;
pub use follower::spawn_follower;
pub use outbox::{Relay, enqueue};

/// The bus a service publishes to and consumes from.
#[derive(Clone)]
pub struct Bus {
    transport: Transport,
    /// Prepended to every stream name: names the bus (see `EventSettings::prefix`).
    prefix: String,
}

#[derive(Clone)]
enum Transport {
    Memory(Arc<memory::Streams>),
    Redis(redis_streams::RedisStreams),
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.transport {
            Transport::Memory(_) => "memory",
            Transport::Redis(_) => "redis",
        };
        f.debug_struct("Bus")
            .field("transport", &kind)
            .field("prefix", &self.prefix)
            .finish()
    }
}

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

/// In-memory buses by name, so the services of one process (`agora up`) share one bus.
static MEMORY_BUSES: LazyLock<Mutex<HashMap<String, Arc<memory::Streams>>>> =
    LazyLock::new(Mutex::default);

impl Bus {
    /// The bus the settings describe: Redis Streams when `redis_url` is set, else the in-process
    /// bus named by `events.prefix`.
    ///
    /// # Errors
    /// A malformed Redis URL or a server that cannot be reached.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let prefix = settings.events.prefix.clone();
        match settings.redis_client()? {
            Some(client) => Self::with_redis(client, prefix).await,
            None => Ok(Self::memory(prefix)),
        }
    }

    /// The in-process bus named `prefix` (created on first use, shared afterwards).
    pub fn memory(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let streams = MEMORY_BUSES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(prefix.clone())
            .or_default()
            .clone();
        Self {
            transport: Transport::Memory(streams),
            prefix,
        }
    }

    /// Redis Streams at `url` under `prefix`; a `rediss://` URL trusts the bundled Mozilla roots
    /// ([`Bus::connect`] honours `datastore_tls.ca_file`).
    ///
    /// # Errors
    /// A malformed URL or a server that cannot be reached.
    pub async fn redis(url: &str, prefix: impl Into<String>) -> anyhow::Result<Self> {
        let client = crate::datastore_tls::DatastoreTls::default().redis_client(url)?;
        Self::with_redis(client, prefix).await
    }

    /// Redis Streams on the server `client` reaches, under `prefix`.
    ///
    /// # Errors
    /// A server that cannot be reached.
    pub async fn with_redis(
        client: redis::Client,
        prefix: impl Into<String>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            transport: Transport::Redis(redis_streams::RedisStreams::connect(client).await?),
            prefix: prefix.into(),
        })
    }

    /// The stream a producer's events go to.
    pub fn stream(&self, producer: &str) -> String {
        format!("{}{producer}", self.prefix)
    }

    /// Where consumers of a producer's stream set aside the events they give up on.
    pub fn dead_letter_stream(&self, producer: &str) -> String {
        format!("{}{producer}:dead-letter", self.prefix)
    }

    /// Publishes one event to its producer's stream.
    ///
    /// # Errors
    /// The transport failed; the event may or may not have been published.
    pub async fn publish(&self, envelope: &EventEnvelope) -> anyhow::Result<()> {
        self.publish_encoded(
            &envelope.producer,
            &envelope.id,
            &envelope.r#type,
            envelope.encode_to_vec(),
        )
        .await?;
        Ok(())
    }

    /// Publishes an encoded envelope; returns the entry's stream id.
    pub(crate) async fn publish_encoded(
        &self,
        producer: &str,
        event_id: &str,
        event_type: &str,
        envelope: Vec<u8>,
    ) -> anyhow::Result<StreamId> {
        let fields = vec![
            ("event_id".to_owned(), event_id.as_bytes().to_vec()),
            ("type".to_owned(), event_type.as_bytes().to_vec()),
            ("envelope".to_owned(), envelope),
        ];
        self.add(&self.stream(producer), fields).await
    }

    /// Every event in a producer's stream, oldest first: for tests and operators.
    ///
    /// # Errors
    /// The transport failed, or an entry is not an envelope.
    pub async fn events(&self, producer: &str) -> anyhow::Result<Vec<EventEnvelope>> {
        self.range(&self.stream(producer))
            .await?
            .iter()
            .map(|entry| {
                EventEnvelope::decode(entry.field("envelope").unwrap_or_default())
                    .with_context(|| format!("entry {} is not an envelope", entry.id))
            })
            .collect()
    }

    /// The events consumer groups of a producer's stream gave up on, oldest first.
    ///
    /// # Errors
    /// The transport failed.
    pub async fn dead_letters(&self, producer: &str) -> anyhow::Result<Vec<DeadLetter>> {
        Ok(self
            .range(&self.dead_letter_stream(producer))
            .await?
            .iter()
            .map(|entry| DeadLetter {
                event_id: entry.text("event_id"),
                event_type: entry.text("type"),
                group: entry.text("group"),
                reason: entry.text("reason"),
                attempts: entry.text("attempts").parse().unwrap_or_default(),
                envelope: entry.field("envelope").unwrap_or_default().to_vec(),
            })
            .collect())
    }

    /// How many events a group has been handed and not yet acknowledged.
    ///
    /// # Errors
    /// The transport failed.
    pub async fn pending(&self, producer: &str, group: &str) -> anyhow::Result<u64> {
        let stream = self.stream(producer);
        match &self.transport {
            Transport::Memory(streams) => Ok(streams.pending(&stream, group)),
            Transport::Redis(redis) => redis.pending(&stream, group).await,
        }
    }

    /// Where consumers whose stream was reset ask its producer's relay to publish again.
    pub fn replay_stream(&self, producer: &str) -> String {
        format!("{}{producer}:replay", self.prefix)
    }

    /// Asks `producer`'s relay to publish again the events it still retains that it published
    /// at or after `since` (all of them when `None`): what a consumer does when its stream was
    /// reset, and what an operator can do after restoring Redis from an old snapshot.
    ///
    /// # Errors
    /// The transport failed; nothing was asked.
    pub async fn request_replay(
        &self,
        producer: &str,
        since: Option<std::time::SystemTime>,
    ) -> anyhow::Result<()> {
        let since = since.map_or(0, |since| {
            let micros = since
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_micros();
            i64::try_from(micros).unwrap_or(i64::MAX)
        });
        let fields = vec![("since".to_owned(), since.to_string().into_bytes())];
        self.add(&self.replay_stream(producer), fields).await?;
        Ok(())
    }

    /// The id of the last entry ever added to `stream` (Redis' `last-generated-id`, which
    /// survives deleting entries), or `None` when the stream does not exist.
    async fn last_id(&self, stream: &str) -> anyhow::Result<Option<StreamId>> {
        let id = match &self.transport {
            Transport::Memory(streams) => streams.last_id(stream),
            Transport::Redis(redis) => redis.last_id(stream).await?,
        };
        id.map(|id| StreamId::parse(&id)).transpose()
    }

    async fn add(&self, stream: &str, fields: Vec<(String, Vec<u8>)>) -> anyhow::Result<StreamId> {
        let id = match &self.transport {
            Transport::Memory(streams) => streams.add(stream, fields),
            Transport::Redis(redis) => redis.add(stream, &fields).await?,
        };
        StreamId::parse(&id)
    }

    async fn range(&self, stream: &str) -> anyhow::Result<Vec<Entry>> {
        match &self.transport {
            Transport::Memory(streams) => Ok(streams.range(stream)),
            Transport::Redis(redis) => redis.range(stream).await,
        }
    }

    /// A handle for one consumer of `group`: on Redis it owns a connection, because blocking
    /// reads hold their connection.
    async fn reader(&self, stream: String, group: String) -> anyhow::Result<Reader> {
        let transport = match &self.transport {
            Transport::Memory(streams) => ReaderTransport::Memory(Arc::clone(streams)),
            Transport::Redis(redis) => ReaderTransport::Redis(redis.reader().await?),
        };
        let reader = Reader {
            transport,
            stream,
            group,
            consumer: format!("{}", uuid::Uuid::now_v7()),
            recreated: false,
        };
        reader.create_group().await?;
        Ok(reader)
    }
}

/// One consumer of one group on one stream.
pub(crate) struct Reader {
    transport: ReaderTransport,
    stream: String,
    group: String,
    /// This consumer's name within its group: unique, so a restarted consumer is a new one and
    /// its predecessor's pending events are reclaimed rather than silently inherited.
    consumer: String,
    /// Set when this reader found its group gone and made it again; taken by
    /// [`Reader::take_recreated`].
    recreated: bool,
}

enum ReaderTransport {
    Memory(Arc<memory::Streams>),
    Redis(redis_streams::RedisReader),
}

impl Reader {
    async fn create_group(&self) -> anyhow::Result<()> {
        match &self.transport {
            ReaderTransport::Memory(streams) => {
                streams.create_group(&self.stream, &self.group);
                Ok(())
            }
            ReaderTransport::Redis(redis) => redis.create_group(&self.stream, &self.group).await,
        }
    }

    /// Whether the group was made again since the last call: its stream was reset, so entries
    /// published before may be gone.
    fn take_recreated(&mut self) -> bool {
        std::mem::take(&mut self.recreated)
    }

    /// Passes `result` on, except that a lost group (destroyed, or Redis restarted empty) is
    /// created again, at the start of the stream, and reads as nothing this time.
    async fn heal(&mut self, result: anyhow::Result<Vec<Entry>>) -> anyhow::Result<Vec<Entry>> {
        match result {
            Err(error) if is_lost_group(&error) => {
                self.create_group().await?;
                tracing::warn!(
                    stream = %self.stream,
                    group = %self.group,
                    "the consumer group was gone (destroyed, or Redis lost its data); recreated it"
                );
                self.recreated = true;
                Ok(Vec::new())
            }
            other => other,
        }
    }

    /// New entries for this consumer, waiting up to `block` for some.
    async fn read_new(&mut self, count: usize, block: Duration) -> anyhow::Result<Vec<Entry>> {
        let read = self.read_new_once(count, block).await;
        self.heal(read).await
    }

    async fn read_new_once(&mut self, count: usize, block: Duration) -> anyhow::Result<Vec<Entry>> {
        match &mut self.transport {
            ReaderTransport::Memory(streams) => Ok(streams
                .read_new(&self.stream, &self.group, &self.consumer, count, block)
                .await),
            ReaderTransport::Redis(redis) => {
                redis
                    .read_new(&self.stream, &self.group, &self.consumer, count, block)
                    .await
            }
        }
    }

    /// Entries delivered to any consumer of the group and unacknowledged for `min_idle`, now
    /// delivered to this one.
    async fn claim_idle(&mut self, min_idle: Duration, count: usize) -> anyhow::Result<Vec<Entry>> {
        let claimed = self.claim_idle_once(min_idle, count).await;
        self.heal(claimed).await
    }

    async fn claim_idle_once(
        &mut self,
        min_idle: Duration,
        count: usize,
    ) -> anyhow::Result<Vec<Entry>> {
        match &mut self.transport {
            ReaderTransport::Memory(streams) => {
                Ok(streams.claim_idle(&self.stream, &self.group, &self.consumer, min_idle, count))
            }
            ReaderTransport::Redis(redis) => {
                redis
                    .claim_idle(&self.stream, &self.group, &self.consumer, min_idle, count)
                    .await
            }
        }
    }

    async fn ack(&mut self, id: &str) -> anyhow::Result<()> {
        match &mut self.transport {
            ReaderTransport::Memory(streams) => {
                streams.ack(&self.stream, &self.group, id);
                Ok(())
            }
            ReaderTransport::Redis(redis) => redis.ack(&self.stream, &self.group, id).await,
        }
    }

    /// Moves an entry to the dead-letter stream with the reason, then acknowledges it.
    async fn dead_letter(
        &mut self,
        dead_letter_stream: &str,
        entry: &Entry,
        reason: &str,
    ) -> anyhow::Result<()> {
        let mut fields: Vec<(String, Vec<u8>)> = entry
            .fields
            .iter()
            .filter(|(key, _)| matches!(key.as_str(), "event_id" | "type" | "envelope"))
            .cloned()
            .collect();
        fields.push(("group".into(), self.group.clone().into_bytes()));
        fields.push(("reason".into(), reason.as_bytes().to_vec()));
        fields.push(("attempts".into(), entry.deliveries.to_string().into_bytes()));
        fields.push(("entry_id".into(), entry.id.clone().into_bytes()));
        match &mut self.transport {
            ReaderTransport::Memory(streams) => {
                streams.add(dead_letter_stream, fields);
            }
            ReaderTransport::Redis(redis) => {
                redis.add(dead_letter_stream, &fields).await?;
            }
        }
        self.ack(&entry.id).await
    }
}

/// Tasks that run beside a service (relays, consumers, sweepers) and stop with it: dropping this
/// aborts them. Aborting is safe: each task's work is a transaction that either commits or
/// rolls back, and unacknowledged events are redelivered.
#[derive(Debug, Default)]
pub struct Background(Vec<tokio::task::AbortHandle>);

impl Background {
    /// Runs `task` until this value is dropped.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(task).abort_handle());
    }

    /// Takes over another set of tasks.
    pub fn extend(&mut self, other: Background) {
        let mut other = other;
        self.0.append(&mut other.0);
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
