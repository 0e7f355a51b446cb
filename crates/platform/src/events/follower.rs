//! Following a stream outside any consumer group: every follower sees every event, which is what
//! a per-process view (such as the revocations every verifier keeps) needs, where a consumer
//! group would hand each event to one process only.

use std::time::{Duration, SystemTime};

use agora_contracts::agora::events::v1::EventEnvelope;
use prost::Message as _;

use super::{Background, Bus, Entry, StreamId, Transport, memory, redis_streams};

/// Entries read at once.
const BATCH: usize = 64;
/// How long a read waits for an entry before the follower checks that its stream still exists.
const BLOCK: Duration = Duration::from_secs(1);

/// Calls `apply` with every event published on `producer`'s stream from now on, in this
/// process, until the returned guard is dropped. First it asks the producer's relay to publish
/// again what it published within `lookback`, so the follower also learns what happened before
/// it started (events may then arrive twice or out of order: `apply` must not mind). A stream
/// that went back (Redis lost it) is read again from its start, after the same request.
pub fn spawn_follower(
    bus: Bus,
    producer: &str,
    lookback: Duration,
    apply: impl Fn(&EventEnvelope) + Send + Sync + 'static,
) -> Background {
    let follower = Follower {
        stream: bus.stream(producer),
        producer: producer.to_owned(),
        bus,
        lookback,
    };
    let mut background = Background::default();
    background.spawn(follower.run(apply));
    background
}

struct Follower {
    bus: Bus,
    producer: String,
    stream: String,
    lookback: Duration,
}

enum Cursor {
    Memory(std::sync::Arc<memory::Streams>),
    Redis(redis_streams::RedisReader),
}

impl Follower {
    async fn run(self, apply: impl Fn(&EventEnvelope)) {
        let mut cursor = loop {
            match self.start().await {
                Ok(cursor) => break cursor,
                Err(error) => {
                    tracing::warn!(stream = %self.stream, error = format!("{error:#}"), "cannot follow the stream; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let mut after = match self.bus.last_id(&self.stream).await {
            Ok(id) => id.unwrap_or(StreamId(0, 0)),
            Err(_) => StreamId(0, 0),
        };
        let mut replay_owed = true;
        loop {
            if replay_owed {
                let since = SystemTime::now() - self.lookback;
                match self.bus.request_replay(&self.producer, Some(since)).await {
                    Ok(()) => replay_owed = false,
                    Err(error) => {
                        tracing::warn!(stream = %self.stream, error = format!("{error:#}"), "cannot ask for a replay; retrying");
                    }
                }
            }
            match self.read(&mut cursor, after).await {
                Ok(entries) if entries.is_empty() => {
                    // Quiet: check that the stream did not go back under the cursor.
                    match self.bus.last_id(&self.stream).await {
                        Ok(last) if last.unwrap_or(StreamId(0, 0)) < after => {
                            tracing::warn!(stream = %self.stream, "the stream lost entries; following it from its start again");
                            after = StreamId(0, 0);
                            replay_owed = true;
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(stream = %self.stream, error = format!("{error:#}"), "cannot check the stream");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
                Ok(entries) => {
                    for entry in entries {
                        if let Ok(id) = StreamId::parse(&entry.id) {
                            after = after.max(id);
                        }
                        match EventEnvelope::decode(entry.field("envelope").unwrap_or_default()) {
                            Ok(event) => apply(&event),
                            Err(error) => {
                                tracing::warn!(stream = %self.stream, entry = %entry.id, %error, "skipping an entry that is not an envelope");
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(stream = %self.stream, error = format!("{error:#}"), "reading the stream failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    async fn start(&self) -> anyhow::Result<Cursor> {
        Ok(match &self.bus.transport {
            Transport::Memory(streams) => Cursor::Memory(std::sync::Arc::clone(streams)),
            // Blocking reads hold their connection: the follower has its own.
            Transport::Redis(redis) => Cursor::Redis(redis.reader().await?),
        })
    }

    async fn read(&self, cursor: &mut Cursor, after: StreamId) -> anyhow::Result<Vec<Entry>> {
        match cursor {
            Cursor::Memory(streams) => Ok(streams
                .read_after(&self.stream, (after.0, after.1), BATCH, BLOCK)
                .await),
            Cursor::Redis(redis) => {
                redis
                    .read_after(&self.stream, &after.to_string(), BATCH, BLOCK)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn event(id: &str) -> EventEnvelope {
        EventEnvelope {
            id: id.into(),
            producer: "p".into(),
            r#type: "t".into(),
            ..EventEnvelope::default()
        }
    }

    async fn until<F: Future<Output = bool>>(check: impl Fn() -> F) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !check().await {
            assert!(tokio::time::Instant::now() < deadline, "not within 5 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn every_follower_sees_every_event_published_after_it_started() {
        let bus = Bus::memory(format!("follow-{}:", uuid::Uuid::now_v7()));
        bus.publish(&event("before")).await.expect("published");
        let seen = [
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(Mutex::new(Vec::new())),
        ];
        let _followers: Vec<Background> = seen
            .iter()
            .map(|seen| {
                let seen = Arc::clone(seen);
                spawn_follower(bus.clone(), "p", Duration::from_secs(60), move |e| {
                    seen.lock().expect("not poisoned").push(e.id.clone());
                })
            })
            .collect();
        // The followers ask for a replay first: its request is the sign they are reading.
        let replay = bus.replay_stream("p");
        until(|| async { bus.range(&replay).await.is_ok_and(|asked| asked.len() == 2) }).await;
        bus.publish(&event("one")).await.expect("published");
        bus.publish(&event("two")).await.expect("published");
        for seen in &seen {
            until(|| async { seen.lock().expect("not poisoned").len() == 2 }).await;
            assert_eq!(*seen.lock().expect("not poisoned"), ["one", "two"]);
        }
    }
}
