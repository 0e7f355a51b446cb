//! [`Bus`]: the handle a service publishes to and reads from, over Redis Streams or memory.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
};

use agora_contracts::agora::events::v1::EventEnvelope;
use anyhow::Context as _;
use prost::Message as _;

use super::{DeadLetter, Entry, Reader, StreamId, memory, reader::ReaderTransport, redis_streams};
use crate::config::Settings;

/// The bus a service publishes to and consumes from.
#[derive(Clone)]
pub struct Bus {
    pub(super) transport: Transport,
    /// Prepended to every stream name: names the bus (see `EventSettings::prefix`).
    prefix: String,
}

/// Where a bus's streams live.
#[derive(Clone)]
pub(super) enum Transport {
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

    /// How many events of a producer's stream a group has not acknowledged: never read by any
    /// of its consumers, or read and still pending.
    ///
    /// # Errors
    /// The transport failed.
    pub async fn unacknowledged(&self, producer: &str, group: &str) -> anyhow::Result<u64> {
        let stream = self.stream(producer);
        match &self.transport {
            Transport::Memory(streams) => Ok(streams.unacknowledged(&stream, group)),
            Transport::Redis(redis) => redis.unacknowledged(&stream, group).await,
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
        let since = since.map_or(0, crate::time::micros_since_epoch);
        let fields = vec![("since".to_owned(), since.to_string().into_bytes())];
        self.add(&self.replay_stream(producer), fields).await?;
        Ok(())
    }

    /// The id of the last entry ever added to `stream` (Redis' `last-generated-id`, which
    /// survives deleting entries), or `None` when the stream does not exist.
    pub(super) async fn last_id(&self, stream: &str) -> anyhow::Result<Option<StreamId>> {
        let id = match &self.transport {
            Transport::Memory(streams) => streams.last_id(stream),
            Transport::Redis(redis) => redis.last_id(stream).await?,
        };
        id.map(|id| StreamId::parse(&id)).transpose()
    }

    pub(super) async fn add(
        &self,
        stream: &str,
        fields: Vec<(String, Vec<u8>)>,
    ) -> anyhow::Result<StreamId> {
        let id = match &self.transport {
            Transport::Memory(streams) => streams.add(stream, fields),
            Transport::Redis(redis) => redis.add(stream, &fields).await?,
        };
        StreamId::parse(&id)
    }

    pub(super) async fn range(&self, stream: &str) -> anyhow::Result<Vec<Entry>> {
        match &self.transport {
            Transport::Memory(streams) => Ok(streams.range(stream)),
            Transport::Redis(redis) => redis.range(stream).await,
        }
    }

    /// A handle for one consumer of `group`: on Redis it owns a connection, because blocking
    /// reads hold their connection.
    pub(super) async fn reader(&self, stream: String, group: String) -> anyhow::Result<Reader> {
        let transport = match &self.transport {
            Transport::Memory(streams) => ReaderTransport::Memory(Arc::clone(streams)),
            Transport::Redis(redis) => ReaderTransport::Redis(redis.reader().await?),
        };
        let reader = Reader::new(transport, stream, group);
        reader.create_group().await?;
        Ok(reader)
    }
}
