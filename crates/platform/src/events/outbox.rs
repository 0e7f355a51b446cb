//! The transactional outbox: events written with the change they describe, and the relay that
//! publishes them.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use agora_contracts::agora::events::v1::EventEnvelope;
use anyhow::Context as _;
use prost::Message as _;
use sqlx::{Any, Row as _, Transaction};

use super::{Background, Bus, Reader, StreamId};
use crate::{
    config::EventSettings,
    storage::{Backend, Database, now_micros},
};

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

/// Where a relay's recent batches went.
#[derive(Debug, Default)]
struct Published {
    /// Each batch: the stream id of its last entry and the earliest `published_at` among its
    /// rows, oldest batch first. A batch whose last id the stream still reached survived, and so
    /// did every entry before it; the batches after it may be lost.
    batches: VecDeque<(StreamId, i64)>,
    /// When the stream was last compared with `batches`.
    checked: Option<Instant>,
    /// The last replay: the stream id of its first entry and its `since`. A request made
    /// before that entry, for no earlier events, is covered by it.
    replayed: Option<(StreamId, i64)>,
}

impl Published {
    fn record(&mut self, last: StreamId, published_at: i64) {
        if self.batches.len() == REMEMBERED_BATCHES {
            self.batches.pop_front();
        }
        self.batches.push_back((last, published_at));
    }

    /// From when to publish again if the stream now ends at `last` (`None`: the stream is
    /// gone): `None` when nothing was lost, `Some(0)` when the loss may reach before the first
    /// remembered batch.
    fn lost_since(&self, last: Option<StreamId>) -> Option<i64> {
        let newest = self.batches.back()?.0;
        let kept = last.unwrap_or(StreamId(0, 0));
        if kept >= newest {
            return None;
        }
        let survived = self.batches.iter().rposition(|(id, _)| *id <= kept);
        Some(match survived {
            Some(index) => self
                .batches
                .iter()
                .skip(index + 1)
                .map(|(_, published_at)| *published_at)
                .min()
                .unwrap_or(0),
            None => 0,
        })
    }
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

    /// Checks that the stream still reaches the last entry this relay published (Redis
    /// restarted empty, was flushed, or failed over to a replica that lagged: the stream is
    /// gone or its last id went back) and, if not, publishes again what was lost. Returns how
    /// many events it published again.
    ///
    /// # Errors
    /// The bus or the database failed; the next check tries again.
    pub async fn heal(&self) -> anyhow::Result<usize> {
        let last = self.bus.last_id(&self.bus.stream(&self.producer)).await?;
        let since = {
            let mut published = self.published();
            published.checked = Some(Instant::now());
            published.lost_since(last)
        };
        let Some(since) = since else {
            return Ok(0);
        };
        tracing::warn!(
            producer = %self.producer,
            stream_last_id = %last.map_or_else(|| "none".to_owned(), |id| id.to_string()),
            since,
            "the event stream lost entries this relay published; publishing them again"
        );
        self.published().batches.clear();
        self.replay(since).await
    }

    /// Publishes again, in outbox order, the published events still retained whose
    /// `published_at` is at or after `since` (microseconds since the epoch; 0 for all).
    /// Consumers remember what they applied, so each is applied once. Returns how many.
    ///
    /// # Errors
    /// The database or the bus failed part way; publishing again from the start is safe.
    pub async fn replay(&self, since: i64) -> anyhow::Result<usize> {
        let mut after = i64::MIN;
        let mut count = 0;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT seq, event_id, event_type, envelope, published_at FROM outbox \
                 WHERE published_at IS NOT NULL AND published_at >= $1 AND seq > $2 \
                 ORDER BY seq LIMIT {BATCH}"
            ))
            .bind(since)
            .bind(after)
            .fetch_all(self.db.pool())
            .await
            .context("reading the outbox to replay it")?;
            let mut earliest = i64::MAX;
            let mut last = None;
            for row in &rows {
                let id = self.publish_row(row).await?;
                {
                    let mut published = self.published();
                    if count == 0 {
                        published.replayed = Some((id, since));
                    }
                }
                after = row.try_get("seq")?;
                earliest = earliest.min(row.try_get("published_at")?);
                last = Some(id);
                count += 1;
            }
            if let Some(last) = last {
                self.published().record(last, earliest);
            }
            if rows.len() < BATCH as usize {
                return Ok(count);
            }
        }
    }

    /// Answers the replay requests consumers left on the bus ([`Bus::request_replay`]): one
    /// replay from the earliest `since` asked, unless a replay made after the requests already
    /// covers them. Returns how many events it published again.
    async fn serve_replay_requests(&self, requests: &mut Reader) -> anyhow::Result<usize> {
        let mut entries = requests.claim_idle(self.settings.claim_after, 16).await?;
        entries.extend(requests.read_new(16, Duration::from_millis(1)).await?);
        if entries.is_empty() {
            return Ok(0);
        }
        let replayed = self.published().replayed;
        let mut since: Option<i64> = None;
        for entry in &entries {
            let asked: i64 = entry.text("since").parse().unwrap_or(0);
            let covered = replayed.is_some_and(|(first, from)| {
                StreamId::parse(&entry.id).is_ok_and(|id| id < first) && from <= asked
            });
            if !covered {
                since = Some(since.map_or(asked, |since| since.min(asked)));
            }
        }
        let count = match since {
            Some(since) => {
                tracing::warn!(producer = %self.producer, since, "a consumer asked for a replay; publishing retained events again");
                self.replay(since).await?
            }
            None => 0,
        };
        for entry in &entries {
            requests.ack(&entry.id).await?;
        }
        Ok(count)
    }

    /// Deletes published rows older than the retention window (`events.retention`): until
    /// then they can be published again.
    ///
    /// # Errors
    /// The database failed.
    pub async fn prune(&self) -> anyhow::Result<u64> {
        let retention = i64::try_from(self.settings.retention.as_micros()).unwrap_or(i64::MAX);
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

    /// Joins the replay-request group on first use, then serves what is waiting.
    async fn answer_requests(&self, requests: &mut Option<Reader>) -> anyhow::Result<usize> {
        let reader = match requests {
            Some(reader) => reader,
            None => requests.insert(
                self.bus
                    .reader(
                        self.bus.replay_stream(&self.producer),
                        REPLAY_GROUP.to_owned(),
                    )
                    .await?,
            ),
        };
        self.serve_replay_requests(reader).await
    }
}
