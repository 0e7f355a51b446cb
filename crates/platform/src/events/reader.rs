//! [`Reader`]: one consumer of one group on one stream, which heals a lost group.

use std::{sync::Arc, time::Duration};

use super::{Entry, is_lost_group, memory, redis_streams};

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

/// Where a reader reads: on Redis, its own connection.
pub(super) enum ReaderTransport {
    Memory(Arc<memory::Streams>),
    Redis(redis_streams::RedisReader),
}

impl Reader {
    /// A new consumer of `group` on `stream`, with a fresh unique name.
    pub(super) fn new(transport: ReaderTransport, stream: String, group: String) -> Self {
        Self {
            transport,
            stream,
            group,
            consumer: format!("{}", uuid::Uuid::now_v7()),
            recreated: false,
        }
    }

    pub(super) async fn create_group(&self) -> anyhow::Result<()> {
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
    pub(super) fn take_recreated(&mut self) -> bool {
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
    pub(super) async fn read_new(
        &mut self,
        count: usize,
        block: Duration,
    ) -> anyhow::Result<Vec<Entry>> {
        let read = match &mut self.transport {
            ReaderTransport::Memory(streams) => Ok(streams
                .read_new(&self.stream, &self.group, &self.consumer, count, block)
                .await),
            ReaderTransport::Redis(redis) => {
                redis
                    .read_new(&self.stream, &self.group, &self.consumer, count, block)
                    .await
            }
        };
        self.heal(read).await
    }

    /// Entries delivered to any consumer of the group and unacknowledged for `min_idle`, now
    /// delivered to this one.
    pub(super) async fn claim_idle(
        &mut self,
        min_idle: Duration,
        count: usize,
    ) -> anyhow::Result<Vec<Entry>> {
        let claimed = match &mut self.transport {
            ReaderTransport::Memory(streams) => {
                Ok(streams.claim_idle(&self.stream, &self.group, &self.consumer, min_idle, count))
            }
            ReaderTransport::Redis(redis) => {
                redis
                    .claim_idle(&self.stream, &self.group, &self.consumer, min_idle, count)
                    .await
            }
        };
        self.heal(claimed).await
    }

    pub(super) async fn ack(&mut self, id: &str) -> anyhow::Result<()> {
        match &mut self.transport {
            ReaderTransport::Memory(streams) => {
                streams.ack(&self.stream, &self.group, id);
                Ok(())
            }
            ReaderTransport::Redis(redis) => redis.ack(&self.stream, &self.group, id).await,
        }
    }

    /// Moves an entry to the dead-letter stream with the reason, then acknowledges it.
    pub(super) async fn dead_letter(
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
