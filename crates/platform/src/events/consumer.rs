//! Consuming a stream as a member of a consumer group.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use agora_contracts::agora::events::v1::EventEnvelope;
use prost::Message as _;
use sqlx::{Any, Transaction};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::{Background, Bus, Entry, Reader};
use crate::config::EventSettings;

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A failure that may pass (a database hiccup): the event stays pending and is delivered
    /// again after `claim_after`, until `max_attempts`.
    #[error("{0:#}")]
    Retry(#[from] anyhow::Error),
    /// The event can never be applied (it does not decode, it breaks an invariant): it goes to
    /// the dead-letter stream at once, with this reason.
    #[error("{0}")]
    Reject(String),
}

/// What a consumer does with each event of its stream.
///
/// A handler applies an event in one transaction of its own database that also calls
/// [`remember`], and returns only after that transaction commits; the event is acknowledged
/// after that. Events of types it does not care about are simply `Ok`.
pub trait Handler: Send + Sync + 'static {
    /// Applies one event.
    fn handle(
        &self,
        event: &EventEnvelope,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Records that `consumer` applied `event_id`, inside the transaction that applies it. Returns
/// `false` when it had been applied already: the caller then commits nothing else.
///
/// # Errors
/// The insert failed.
pub async fn remember(
    tx: &mut Transaction<'static, Any>,
    consumer: &str,
    event_id: &str,
) -> Result<bool, sqlx::Error> {
    let now = crate::time::now_micros();
    let inserted = sqlx::query(
        "INSERT INTO processed_events (consumer, event_id, processed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Entries read at once.
const BATCH: usize = 16;

/// How often a busy consumer measures its group's lag.
const MEASURE_EVERY: Duration = Duration::from_secs(1);

/// Runs `handler` over `producer`'s stream as a member of `group` until the returned guard is
/// dropped. Every consumer process of one service uses the same group, so each event is applied
/// by one of them.
pub fn spawn_consumer<H: Handler>(
    bus: Bus,
    producer: &str,
    group: &str,
    handler: H,
    settings: &EventSettings,
) -> Background {
    let consumer = Consumer {
        producer: producer.to_owned(),
        replay_owed: false,
        stream: bus.stream(producer),
        dead_letters: bus.dead_letter_stream(producer),
        group: group.to_owned(),
        bus,
        handler,
        settings: settings.clone(),
        last_errors: HashMap::new(),
        measured: None,
    };
    let mut background = Background::default();
    background.spawn(consumer.run());
    background
}

struct Consumer<H> {
    bus: Bus,
    producer: String,
    /// Set when the group had to be made again (its stream was reset, so events may be gone)
    /// until the producer's relay has been asked to publish its retained events again.
    replay_owed: bool,
    stream: String,
    dead_letters: String,
    group: String,
    handler: H,
    settings: EventSettings,
    /// The last error of each entry this consumer failed, so the dead letter says why.
    last_errors: HashMap<String, String>,
    /// When the group's lag was last measured.
    measured: Option<Instant>,
}

impl<H: Handler> Consumer<H> {
    async fn run(mut self) {
        let mut reader = loop {
            match self
                .bus
                .reader(self.stream.clone(), self.group.clone())
                .await
            {
                Ok(reader) => break reader,
                Err(error) => {
                    tracing::warn!(stream = %self.stream, error = format!("{error:#}"), "cannot join the consumer group; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        // Look for abandoned entries a few times per claim period.
        let claim_every = (self.settings.claim_after / 4).max(Duration::from_millis(50));
        let mut last_claim: Option<Instant> = None;
        loop {
            if let Err(error) = self.round(&mut reader, claim_every, &mut last_claim).await {
                tracing::warn!(stream = %self.stream, group = %self.group, error = format!("{error:#}"), "consumer round failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    async fn round(
        &mut self,
        reader: &mut Reader,
        claim_every: Duration,
        last_claim: &mut Option<Instant>,
    ) -> anyhow::Result<()> {
        if last_claim.is_none_or(|at| at.elapsed() >= claim_every) {
            let claimed = reader.claim_idle(self.settings.claim_after, BATCH).await?;
            *last_claim = Some(Instant::now());
            for entry in claimed {
                self.process(reader, entry).await?;
            }
        }
        let entries = reader.read_new(BATCH, claim_every).await?;
        self.replay_owed |= reader.take_recreated();
        if self.replay_owed {
            // The producer cannot know what this group had not applied yet: ask for its whole
            // retention window. What was applied already is skipped by `remember`.
            self.bus.request_replay(&self.producer, None).await?;
            self.replay_owed = false;
            tracing::warn!(stream = %self.stream, group = %self.group, "asked the producer to publish its retained events again");
        }
        let idle = entries.is_empty();
        for entry in entries {
            self.process(reader, entry).await?;
        }
        self.measure(idle).await;
        Ok(())
    }

    /// Records the group's lag (`agora.consumer.lag`): after every round that found nothing
    /// new, so an idle group reads exact, and at most every [`MEASURE_EVERY`] while busy.
    async fn measure(&mut self, idle: bool) {
        if !idle && self.measured.is_some_and(|at| at.elapsed() < MEASURE_EVERY) {
            return;
        }
        self.measured = Some(Instant::now());
        match self.bus.unacknowledged(&self.producer, &self.group).await {
            Ok(lag) => crate::metrics::bus::bus().consumer_lag(&self.producer, &self.group, lag),
            Err(error) => {
                tracing::debug!(stream = %self.stream, group = %self.group, error = format!("{error:#}"), "measuring the consumer lag failed");
            }
        }
    }

    async fn process(&mut self, reader: &mut Reader, entry: Entry) -> anyhow::Result<()> {
        // Delivered past the limit without an answer: its consumers died handling it (or the
        // handler hangs), which retrying will not fix.
        if entry.deliveries > u64::from(self.settings.max_attempts) {
            let last = self.last_errors.get(&entry.id).cloned();
            let reason = format!(
                "delivered {} times without being acknowledged{}",
                entry.deliveries,
                last.map(|error| format!("; last error: {error}"))
                    .unwrap_or_default()
            );
            return self.give_up(reader, &entry, &reason).await;
        }
        let envelope = match EventEnvelope::decode(entry.field("envelope").unwrap_or_default()) {
            Ok(envelope) => envelope,
            Err(error) => {
                let reason = format!("the entry is not an agora.events.v1.EventEnvelope: {error}");
                return self.give_up(reader, &entry, &reason).await;
            }
        };
        let span = tracing::info_span!(
            "consume",
            otel.kind = "consumer",
            event.id = %envelope.id,
            event.r#type = %envelope.r#type,
            consumer.group = %self.group,
            attempt = entry.deliveries,
        );
        if !envelope.traceparent.is_empty() {
            let mut headers = http::HeaderMap::new();
            if let Ok(value) = http::HeaderValue::from_str(&envelope.traceparent) {
                headers.insert("traceparent", value);
                let _ = span.set_parent(crate::context::extract_trace_context(&headers));
            }
        }
        let outcome = self.handler.handle(&envelope).instrument(span).await;
        match outcome {
            Ok(()) => {
                self.last_errors.remove(&entry.id);
                reader.ack(&entry.id).await
            }
            Err(HandlerError::Reject(reason)) => self.give_up(reader, &entry, &reason).await,
            Err(HandlerError::Retry(error)) => {
                let reason = format!("{error:#}");
                tracing::warn!(event.id = %envelope.id, attempt = entry.deliveries, error = %reason, "event handling failed; it will be retried");
                if entry.deliveries >= u64::from(self.settings.max_attempts) {
                    let reason = format!("failed {} times; last error: {reason}", entry.deliveries);
                    return self.give_up(reader, &entry, &reason).await;
                }
                self.last_errors.insert(entry.id.clone(), reason);
                Ok(())
            }
        }
    }

    async fn give_up(
        &mut self,
        reader: &mut Reader,
        entry: &Entry,
        reason: &str,
    ) -> anyhow::Result<()> {
        tracing::error!(stream = %self.stream, group = %self.group, entry = %entry.id, reason, "event moved to the dead-letter stream");
        self.last_errors.remove(&entry.id);
        reader
            .dead_letter(&self.dead_letters, entry, reason)
            .await?;
        crate::metrics::bus::bus().dead_lettered(&self.producer, &self.group);
        Ok(())
    }
}
