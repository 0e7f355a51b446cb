//! Notices of changes between replicas, on a Redis pub/sub channel: one connection that
//! publishes the changes made here, and one subscriber connection per process (not per watch)
//! that hands the other replicas' notices to the hub.
//!
//! Pub/sub keeps nothing for a subscriber that is away: whatever was published while the
//! subscriber was disconnected is gone. So after every (re)subscription the hub reads each
//! watched order once; a lost connection is retried with a growing pause.

use std::time::Duration;

use agora_platform::events::Background;
use anyhow::Context as _;
use futures::StreamExt as _;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use super::{Hub, Notice};

/// The first pause before subscribing again, doubled after each failure up to the longest.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);
/// How often a quiet subscriber checks that its connection still answers: a connection that
/// went away without a word (a dead peer, a dropped route) would otherwise look merely quiet.
const PING_EVERY: Duration = Duration::from_secs(10);
/// How long connecting, subscribing or a ping may take before the connection counts as lost.
const PATIENCE: Duration = Duration::from_secs(5);

/// Connects the publisher with `client` (its URL and TLS; start-up fails when Redis cannot be
/// reached) and starts publishing `pending` notices and subscribing to `channel` for `hub`.
pub(super) async fn spawn(
    client: redis::Client,
    channel: String,
    hub: Hub,
    pending: mpsc::UnboundedReceiver<Notice>,
) -> anyhow::Result<Background> {
    let publisher = agora_platform::cache::redis_connection(&client, Duration::from_millis(500))
        .await
        .context("connecting to Redis for order watch notices")?;
    let mut tasks = Background::default();
    tasks.spawn(publish(publisher, channel.clone(), pending));
    tasks.spawn(subscribe(client, channel, hub));
    Ok(tasks)
}

/// Publishes each change made here. A notice that cannot be published is dropped: the
/// other replicas' subscribers lost Redis too, or will read every watched order when they
/// reconnect.
async fn publish(
    mut connection: ConnectionManager,
    channel: String,
    mut pending: mpsc::UnboundedReceiver<Notice>,
) {
    while let Some(notice) = pending.recv().await {
        let published: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(notice.encode())
            .query_async(&mut connection)
            .await;
        if let Err(error) = published {
            tracing::warn!(order_id = %notice.order_id, error = %error, "an order change could not be announced to the other replicas");
        }
    }
}

/// Subscribes to `channel` for as long as the process runs, subscribing again after a loss.
async fn subscribe(client: redis::Client, channel: String, hub: Hub) {
    let mut pause = FIRST_PAUSE;
    let mut lost = false;
    loop {
        match listen(&client, &channel, &hub, &mut pause, lost).await {
            Ok(()) => tracing::warn!("the order watch subscription ended; subscribing again"),
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "the order watch subscription failed; retrying"
                );
            }
        }
        lost = true;
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// One subscription: from subscribing until the connection is lost.
async fn listen(
    client: &redis::Client,
    channel: &str,
    hub: &Hub,
    pause: &mut Duration,
    lost: bool,
) -> anyhow::Result<()> {
    let mut pubsub = tokio::time::timeout(PATIENCE, client.get_async_pubsub())
        .await
        .context("connecting timed out")?
        .context("connecting")?;
    tokio::time::timeout(PATIENCE, pubsub.subscribe(channel))
        .await
        .context("subscribing timed out")?
        .context("subscribing")?;
    *pause = FIRST_PAUSE;
    if lost {
        tracing::info!("subscribed again to order watch notices; reading the watched orders");
    }
    // Subscribed: from here every notice arrives, so one read of each watched order covers
    // whatever was published before.
    hub.refresh_all();
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return Ok(()) };
                let notice = message
                    .get_payload::<String>()
                    .ok()
                    .and_then(|text| Notice::decode(&text));
                match notice {
                    Some(notice) => hub.notice(&notice.order_id, Some(notice.version)),
                    None => tracing::warn!("an unreadable order watch notice was ignored"),
                }
            }
            _ = ping.tick() => {
                tokio::time::timeout(PATIENCE, sink.ping::<redis::Value>())
                    .await
                    .context("a ping timed out")?
                    .context("a ping failed")?;
            }
        }
    }
}
