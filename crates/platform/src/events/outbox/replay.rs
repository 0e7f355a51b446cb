//! Healing a stream that lost entries: what a relay remembers of its batches, the check that its
//! stream still holds them, and replays (after a loss, or when a consumer asks for one).

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use sqlx::Row as _;

use super::{BATCH, REMEMBERED_BATCHES, REPLAY_GROUP, Relay};
use crate::events::{Reader, StreamId};

/// Where a relay's recent batches went.
#[derive(Debug, Default)]
pub(super) struct Published {
    /// Each batch: the stream id of its last entry and the earliest `published_at` among its
    /// rows, oldest batch first. A batch whose last id the stream still reached survived, and so
    /// did every entry before it; the batches after it may be lost.
    pub(super) batches: VecDeque<(StreamId, i64)>,
    /// When the stream was last compared with `batches`.
    pub(super) checked: Option<Instant>,
    /// The last replay: the stream id of its first entry and its `since`. A request made
    /// before that entry, for no earlier events, is covered by it.
    pub(super) replayed: Option<(StreamId, i64)>,
}

impl Published {
    /// Remembers a batch whose last entry is `last`, forgetting the oldest past the limit.
    pub(super) fn record(&mut self, last: StreamId, published_at: i64) {
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

    /// Answers the replay requests consumers left on the bus ([`Bus::request_replay`](crate::events::Bus::request_replay)): one
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

    /// Joins the replay-request group on first use, then serves what is waiting.
    pub(super) async fn answer_requests(
        &self,
        requests: &mut Option<Reader>,
    ) -> anyhow::Result<usize> {
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
