//! The transactional outbox: events written with the change they describe, and the relay that
//! publishes them. How a relay heals a stream that lost entries, and answers replay requests,
//! is in `replay`.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use agora_contracts::agora::events::v1::EventEnvelope;
use anyhow::Context as _;
use prost::Message as _;
use sqlx::{Any, Row as _, Transaction};

use super::{Background, Bus, Reader, StreamId};
use crate::{
    config::EventSettings,
    storage::{Backend, Database},
    time::now_micros,
};

mod replay;

use replay::Published;

/// Rows a relay publishes in one transaction.
const BATCH: i64 = 100;

/// The consumer group relays read replay requests as.
const REPLAY_GROUP: &str = "relay";

/// How often an idle relay checks that its stream still holds what it published; a relay with
/// rows to publish checks before every round.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Batches a relay remembers the stream ids of; older ones are forgotten, and a loss reaching
/// past them replays the whole retention window.
const REMEMBERED_BATCHES: usize = 4096;

/// The W3C `traceparent` of the current span, or empty when there is none.
fn current_traceparent() -> String {
    let mut headers = http::HeaderMap::new();
    crate::context::inject_trace_context(&mut headers);
    headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Writes `event` to the outbox inside `tx`, so it is published if and only if `tx` commits.
/// Returns the event's id. Call it after the write to the aggregate's own row, so that events of
/// one aggregate are numbered in the order their transactions commit.
///
/// # Errors
/// The insert failed (the caller's transaction should then be rolled back).
pub async fn enqueue<M: prost::Name>(
    tx: &mut Transaction<'static, Any>,
    producer: &str,
    aggregate_id: &str,
    event: &M,
) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = SystemTime::now();
    let envelope = EventEnvelope {
        id: id.clone(),
        r#type: M::full_name(),
        occur_time: Some(now.into()),
        producer: producer.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        traceparent: current_traceparent(),
        payload: Some(prost_types::Any {
            type_url: M::type_url(),
            value: event.encode_to_vec(),
        }),
    };
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, envelope, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(&envelope.r#type)
    .bind(envelope.encode_to_vec())
    .bind(now_micros())
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Publishes a producer's outbox, in order, to its stream.
#[derive(Debug, Clone)]
pub struct Relay {
    db: Database,
    bus: Bus,
    producer: String,
    settings: EventSettings,
    /// Set by tests to stop the next round between publishing and marking, as a crash would.
    crash_after_publish: Arc<AtomicBool>,
    /// What this relay published where, to notice that its stream lost entries and to know
    /// from when to publish again.
    published: Arc<Mutex<Published>>,
}

impl Relay {
    /// A relay for `producer`'s outbox in `db`.
    pub fn new(
        db: Database,
        bus: Bus,
        producer: impl Into<String>,
        settings: &EventSettings,
    ) -> Self {
        Self {
            db,
            bus,
            producer: producer.into(),
            settings: settings.clone(),
            crash_after_publish: Arc::default(),
            published: Arc::default(),
        }
    }

    fn published(&self) -> std::sync::MutexGuard<'_, Published> {
        // Each update is one push or one assignment: a panic cannot leave it half-done.
        self.published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the next round fail after publishing and before marking rows sent, the window in
    /// which a crash re-publishes; for tests of that guarantee.
    pub fn crash_after_next_publish(&self) {
        self.crash_after_publish.store(true, Ordering::SeqCst);
    }

    /// Publishes one batch of pending rows and marks them sent; returns how many.
    ///
    /// Rows are taken in `seq` order under a row lock on PostgreSQL (another replica's relay
    /// waits, then skips what this one sent) and under SQLite's write lock, and marked in the same
    /// transaction. If publishing or marking fails the transaction rolls back and the rows are
    /// published again next round: at least once, in order, never lost.
    ///
    /// Before publishing, and at least every second when idle, it checks that its stream still
    /// holds what it published before ([`Relay::heal`]).
    ///
    /// # Errors
    /// The database or the bus failed; nothing was marked.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        // A cheap look first, so an idle relay does not take SQLite's write lock every round.
        let waiting = sqlx::query("SELECT seq FROM outbox WHERE published_at IS NULL LIMIT 1")
            .fetch_optional(self.db.pool())
            .await
            .context("looking for unpublished events")?;
        let check_due = self
            .published()
            .checked
            .is_none_or(|at| at.elapsed() >= CHECK_EVERY);
        if waiting.is_some() || check_due {
            self.heal().await?;
        }
        if waiting.is_none() {
            return Ok(0);
        }
        let mut tx = self.db.begin_write().await?;
        let lock = match self.db.backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "SELECT seq, event_id, event_type, envelope FROM outbox \
             WHERE published_at IS NULL ORDER BY seq LIMIT {BATCH}{lock}"
        ))
        .fetch_all(&mut *tx)
        .await
        .context("reading the outbox")?;
        let mut sent = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in &rows {
            let seq: i64 = row.try_get("seq")?;
            last = Some(self.publish_row(row).await?);
            sent.push(seq);
        }
        if self.crash_after_publish.swap(false, Ordering::SeqCst) {
            anyhow::bail!("crash injected between publishing and marking");
        }
        let now = now_micros();
        for seq in &sent {
            sqlx::query("UPDATE outbox SET published_at = $1 WHERE seq = $2")
                .bind(now)
                .bind(seq)
                .execute(&mut *tx)
                .await
                .context("marking events published")?;
        }
        tx.commit().await.context("committing the relay round")?;
        if let Some(last) = last {
            self.published().record(last, now);
        }
        Ok(sent.len())
    }

    async fn publish_row(&self, row: &sqlx::any::AnyRow) -> anyhow::Result<StreamId> {
        let event_id: String = row.try_get("event_id")?;
        let event_type: String = row.try_get("event_type")?;
        let envelope: Vec<u8> = row.try_get("envelope")?;
        self.bus
            .publish_encoded(&self.producer, &event_id, &event_type, envelope)
            .await
    }

    /// Records the outbox's backlog and lag (`agora.outbox.backlog`, `agora.outbox.lag`) after
    /// a round: a round that found nothing waiting leaves both at zero without another query.
    async fn measure(&self, round: &anyhow::Result<usize>) {
        let bus = crate::metrics::bus::bus();
        if matches!(round, Ok(0)) {
            bus.outbox(&self.producer, 0, 0.0);
            return;
        }
        let waiting = sqlx::query(
            "SELECT COUNT(*) AS backlog, MIN(created_at) AS oldest FROM outbox \
             WHERE published_at IS NULL",
        )
        .fetch_one(self.db.pool())
        .await
        .and_then(|row| {
            Ok((
                row.try_get::<i64, _>("backlog")?,
                row.try_get::<Option<i64>, _>("oldest")?,
            ))
        });
        match waiting {
            Ok((backlog, oldest)) => {
                let age = oldest.map_or(0, |oldest| now_micros().saturating_sub(oldest));
                #[allow(clippy::cast_precision_loss)] // microseconds of an age fit f64 exactly.
                let lag = age as f64 / 1e6;
                bus.outbox(&self.producer, u64::try_from(backlog).unwrap_or(0), lag);
            }
            Err(error) => {
                tracing::debug!(%error, producer = %self.producer, "measuring the outbox failed");
            }
        }
    }

    /// Deletes published rows older than the retention window (`events.retention`): until
    /// then they can be published again.
    ///
    /// # Errors
    /// The database failed.
    pub async fn prune(&self) -> anyhow::Result<u64> {
        let retention = crate::time::micros(self.settings.retention);
        let before = now_micros().saturating_sub(retention);
        let deleted =
            sqlx::query("DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1")
                .bind(before)
                .execute(self.db.pool())
                .await
                .context("pruning the outbox")?;
        Ok(deleted.rows_affected())
    }

    /// Runs the relay until the returned guard is dropped: a round every `relay_interval`, or at
    /// once after a full batch; failures are logged and retried.
    pub fn spawn(self) -> Background {
        let mut background = Background::default();
        background.spawn(async move {
            let mut rounds: u64 = 0;
            let mut requests: Option<Reader> = None;
            loop {
                if let Err(error) = self.answer_requests(&mut requests).await {
                    tracing::warn!(
                        producer = %self.producer,
                        error = format!("{error:#}"),
                        "answering replay requests failed; retrying"
                    );
                }
                let result = self.run_once().await;
                self.measure(&result).await;
                let pause = match result {
                    Ok(n) if n as i64 == BATCH => Duration::ZERO,
                    Ok(_) => self.settings.relay_interval,
                    Err(error) => {
                        tracing::warn!(
                            producer = %self.producer,
                            error = format!("{error:#}"),
                            "outbox relay round failed; retrying"
                        );
                        self.settings.relay_interval.max(Duration::from_millis(500))
                    }
                };
                rounds = rounds.wrapping_add(1);
                // About once an hour at the default interval.
                if rounds.is_multiple_of(36_000)
                    && let Err(error) = self.prune().await
                {
                    tracing::warn!(error = format!("{error:#}"), "pruning the outbox failed");
                }
                tokio::time::sleep(pause).await;
            }
        });
        background
    }
}
