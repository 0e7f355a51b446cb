//! Redis Streams with consumer groups: `XADD` to publish, `XREADGROUP` to read, `XACK` after the
//! consumer's commit, `XPENDING ... IDLE` + `XCLAIM` to take over what a dead consumer left.

use std::{collections::HashMap, time::Duration};

use anyhow::Context as _;
use redis::{
    AsyncCommands as _, Value,
    aio::ConnectionManager,
    streams::{StreamClaimReply, StreamId, StreamPendingCountReply, StreamRangeReply},
};

use super::Entry;

/// The publishing side: one shared connection with short timeouts, so an outage fails a relay
/// round quickly instead of stalling it.
#[derive(Clone)]
pub(crate) struct RedisStreams {
    client: redis::Client,
    connection: ConnectionManager,
}

/// One consumer's connection. Blocking reads hold a connection until they return, so each
/// consumer has its own and its response timeout outlasts the block time.
pub(crate) struct RedisReader {
    connection: ConnectionManager,
}

/// The longest a blocking read waits; the reply timeout must outlast it.
const MAX_BLOCK: Duration = Duration::from_secs(2);

async fn manager(client: &redis::Client, response: Duration) -> anyhow::Result<ConnectionManager> {
    crate::cache::redis_connection(client, response)
        .await
        .context("connecting to Redis for the event bus")
}

impl RedisStreams {
    /// Connects with `client`, which carries the URL and its TLS.
    pub(crate) async fn connect(client: redis::Client) -> anyhow::Result<Self> {
        let connection = manager(&client, Duration::from_secs(2)).await?;
        Ok(Self { client, connection })
    }

    pub(crate) async fn reader(&self) -> anyhow::Result<RedisReader> {
        Ok(RedisReader {
            connection: manager(&self.client, MAX_BLOCK + Duration::from_secs(3)).await?,
        })
    }

    pub(crate) async fn add(
        &self,
        stream: &str,
        fields: &[(String, Vec<u8>)],
    ) -> anyhow::Result<String> {
        add(&mut self.connection.clone(), stream, fields).await
    }

    /// The stream's `last-generated-id`, or `None` when the stream does not exist.
    pub(crate) async fn last_id(&self, stream: &str) -> anyhow::Result<Option<String>> {
        let info: redis::RedisResult<HashMap<String, Value>> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(stream)
            .query_async(&mut self.connection.clone())
            .await;
        let info = match info {
            Ok(info) => info,
            Err(error) if error.to_string().contains("no such key") => return Ok(None),
            Err(error) => return Err(error).context("XINFO STREAM"),
        };
        match info.get("last-generated-id") {
            Some(Value::BulkString(id)) => Ok(Some(String::from_utf8_lossy(id).into_owned())),
            Some(Value::SimpleString(id)) => Ok(Some(id.clone())),
            other => anyhow::bail!("XINFO STREAM {stream}: no last-generated-id ({other:?})"),
        }
    }

    pub(crate) async fn range(&self, stream: &str) -> anyhow::Result<Vec<Entry>> {
        let reply: StreamRangeReply = self
            .connection
            .clone()
            .xrange_all(stream)
            .await
            .context("XRANGE")?;
        Ok(reply.ids.into_iter().map(|id| entry(id, 0)).collect())
    }

    /// Entries of `stream` the group has not acknowledged: its `lag` (never delivered) plus its
    /// `pending`, from `XINFO GROUPS`. Redis leaves `lag` unknown after entries inside the
    /// group's range were deleted; then the entries after its last delivered id are counted.
    pub(crate) async fn unacknowledged(&self, stream: &str, group: &str) -> anyhow::Result<u64> {
        let groups: redis::RedisResult<Vec<HashMap<String, Value>>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(stream)
            .query_async(&mut self.connection.clone())
            .await;
        let groups = match groups {
            Ok(groups) => groups,
            Err(error) if error.to_string().contains("no such key") => return Ok(0),
            Err(error) => return Err(error).context("XINFO GROUPS"),
        };
        let Some(info) = groups
            .iter()
            .find(|info| info.get("name").and_then(text).as_deref() == Some(group))
        else {
            return Ok(0);
        };
        let pending = info.get("pending").and_then(count).unwrap_or(0);
        let unread = match info.get("lag").and_then(count) {
            Some(lag) => lag,
            None => {
                let after = info
                    .get("last-delivered-id")
                    .and_then(text)
                    .unwrap_or_else(|| "0-0".to_owned());
                let reply: StreamRangeReply = self
                    .connection
                    .clone()
                    .xrange(stream, format!("({after}"), "+")
                    .await
                    .context("XRANGE")?;
                reply.ids.len() as u64
            }
        };
        Ok(unread + pending)
    }

    pub(crate) async fn pending(&self, stream: &str, group: &str) -> anyhow::Result<u64> {
        let reply: redis::RedisResult<Value> = redis::cmd("XPENDING")
            .arg(stream)
            .arg(group)
            .query_async(&mut self.connection.clone())
            .await;
        let reply = match reply {
            // No group (yet, or any more): nothing is pending in it.
            Err(error) if error.code() == Some("NOGROUP") => return Ok(0),
            reply => reply.context("XPENDING")?,
        };
        // The summary form starts with the number of pending entries.
        match reply {
            Value::Array(items) => match items.first() {
                Some(Value::Int(count)) => Ok(u64::try_from(*count).unwrap_or_default()),
                _ => Ok(0),
            },
            _ => Ok(0),
        }
    }
}

/// A reply's text (a bulk or simple string).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

/// A reply's count (an integer; `None` for nil, which Redis answers for an unknown lag).
fn count(value: &Value) -> Option<u64> {
    match value {
        Value::Int(count) => u64::try_from(*count).ok(),
        _ => None,
    }
}

async fn add(
    connection: &mut ConnectionManager,
    stream: &str,
    fields: &[(String, Vec<u8>)],
) -> anyhow::Result<String> {
    let mut command = redis::cmd("XADD");
    command.arg(stream).arg("*");
    for (key, value) in fields {
        command.arg(key).arg(value.as_slice());
    }
    command
        .query_async(connection)
        .await
        .with_context(|| format!("XADD to {stream}"))
}

/// The entries of an `XREAD`/`XREADGROUP` reply (none when the read timed out), each delivered
/// once.
fn read_entries(reply: Option<redis::streams::StreamReadReply>) -> Vec<Entry> {
    reply
        .into_iter()
        .flat_map(|reply| reply.keys)
        .flat_map(|key| key.ids)
        .map(|id| entry(id, 1))
        .collect()
}

fn entry(id: StreamId, deliveries: u64) -> Entry {
    let fields = id
        .map
        .into_iter()
        .map(|(key, value)| {
            let bytes = match value {
                Value::BulkString(bytes) => bytes,
                Value::SimpleString(text) => text.into_bytes(),
                other => format!("{other:?}").into_bytes(),
            };
            (key, bytes)
        })
        .collect();
    Entry {
        id: id.id,
        fields,
        deliveries,
    }
}

impl RedisReader {
    pub(crate) async fn create_group(&self, stream: &str, group: &str) -> anyhow::Result<()> {
        let created: redis::RedisResult<()> = self
            .connection
            .clone()
            .xgroup_create_mkstream(stream, group, "0")
            .await;
        match created {
            Ok(()) => Ok(()),
            // The group exists already: another consumer (or an earlier run) made it.
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            Err(error) => Err(error).context("XGROUP CREATE"),
        }
    }

    pub(crate) async fn read_new(
        &mut self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> anyhow::Result<Vec<Entry>> {
        self.read(Some((group, consumer)), stream, ">", count, block)
            .await
    }

    /// Entries after `after`, outside any group (`XREAD`), waiting up to `block` for one.
    pub(crate) async fn read_after(
        &mut self,
        stream: &str,
        after: &str,
        count: usize,
        block: Duration,
    ) -> anyhow::Result<Vec<Entry>> {
        self.read(None, stream, after, count, block).await
    }

    /// Up to `count` entries of `stream` from the position `from`, waiting up to `block` (at
    /// most [`MAX_BLOCK`]): with `XREADGROUP` as the consumer of `group` named in it, or with a
    /// plain `XREAD` when there is none.
    async fn read(
        &mut self,
        group: Option<(&str, &str)>,
        stream: &str,
        from: &str,
        count: usize,
        block: Duration,
    ) -> anyhow::Result<Vec<Entry>> {
        let name = if group.is_some() {
            "XREADGROUP"
        } else {
            "XREAD"
        };
        let mut command = redis::cmd(name);
        if let Some((group, consumer)) = group {
            command.arg("GROUP").arg(group).arg(consumer);
        }
        let block = block.min(MAX_BLOCK);
        let reply: Option<redis::streams::StreamReadReply> = command
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1))
            .arg("STREAMS")
            .arg(stream)
            .arg(from)
            .query_async(&mut self.connection)
            .await
            .context(name)?;
        Ok(read_entries(reply))
    }

    pub(crate) async fn claim_idle(
        &mut self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> anyhow::Result<Vec<Entry>> {
        let min_idle_ms = u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX);
        let idle: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(stream)
            .arg(group)
            .arg("IDLE")
            .arg(min_idle_ms)
            .arg("-")
            .arg("+")
            .arg(count)
            .query_async(&mut self.connection)
            .await
            .context("XPENDING IDLE")?;
        if idle.ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = idle.ids.iter().map(|pending| pending.id.as_str()).collect();
        // XCLAIM re-checks the idle time, so two consumers racing for one entry cannot both win.
        let claimed: StreamClaimReply = self
            .connection
            .xclaim(stream, group, consumer, min_idle_ms, &ids)
            .await
            .context("XCLAIM")?;
        Ok(claimed
            .ids
            .into_iter()
            .map(|id| {
                let before = idle
                    .ids
                    .iter()
                    .find(|pending| pending.id == id.id)
                    .map_or(0, |pending| pending.times_delivered as u64);
                entry(id, before + 1)
            })
            .collect())
    }

    pub(crate) async fn ack(&mut self, stream: &str, group: &str, id: &str) -> anyhow::Result<()> {
        let _: u64 = self
            .connection
            .xack(stream, group, &[id])
            .await
            .context("XACK")?;
        Ok(())
    }

    pub(crate) async fn add(
        &mut self,
        stream: &str,
        fields: &[(String, Vec<u8>)],
    ) -> anyhow::Result<String> {
        add(&mut self.connection, stream, fields).await
    }
}
