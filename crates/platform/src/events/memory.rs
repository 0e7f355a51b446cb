//! An in-process model of Redis Streams with consumer groups, for the embedded mesh: the same
//! delivery, pending, acknowledgement and reclaim rules, so services cannot tell the difference
//! (except that it lives as long as the process).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use super::Entry;

/// An id this module made, as `(millis, sequence)`.
fn parse_id(id: &str) -> (u64, u64) {
    let (millis, sequence) = id.split_once('-').unwrap_or((id, "0"));
    (
        millis.parse().unwrap_or_default(),
        sequence.parse().unwrap_or_default(),
    )
}

/// Every stream of one bus.
#[derive(Default)]
pub(crate) struct Streams {
    state: Mutex<HashMap<String, Stream>>,
    /// Wakes blocked readers when an entry is added.
    added: Notify,
}

/// An entry's fields, in the order they were added.
type Fields = Vec<(String, Vec<u8>)>;

#[derive(Default)]
struct Stream {
    entries: Vec<(String, Fields)>,
    groups: HashMap<String, Group>,
    /// The last id handed out, `(millis, sequence)`: ids look and grow like Redis' ones, so
    /// they compare the same way.
    last: (u64, u64),
}

#[derive(Default)]
struct Group {
    /// Index of the next entry never delivered to this group.
    next: usize,
    /// Delivered and not yet acknowledged, by entry index.
    pending: BTreeMap<usize, Pending>,
}

struct Pending {
    consumer: String,
    delivered_at: Instant,
    deliveries: u64,
}

impl Streams {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Stream>) -> T) -> T {
        // A panic while holding the lock cannot leave a stream half-updated in a way later
        // readers would misread (each update is one push or one map change), so carry on.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }

    /// Appends an entry; returns its id, `<millis>-<sequence>` like Redis' `XADD *`.
    pub(crate) fn add(&self, stream: &str, fields: Fields) -> String {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |now| u64::try_from(now.as_millis()).unwrap_or(u64::MAX));
        let id = self.with(|state| {
            let stream = state.entry(stream.to_owned()).or_default();
            stream.last = if millis > stream.last.0 {
                (millis, 0)
            } else {
                (stream.last.0, stream.last.1 + 1)
            };
            let id = format!("{}-{}", stream.last.0, stream.last.1);
            stream.entries.push((id.clone(), fields));
            id
        });
        self.added.notify_waiters();
        id
    }

    /// The last id handed out on `stream`, or `None` when it does not exist. An in-process
    /// stream never loses entries, so this only grows.
    pub(crate) fn last_id(&self, stream: &str) -> Option<String> {
        self.with(|state| {
            state
                .get(stream)
                .map(|stream| format!("{}-{}", stream.last.0, stream.last.1))
        })
    }

    pub(crate) fn range(&self, stream: &str) -> Vec<Entry> {
        self.with(|state| {
            state.get(stream).map_or_else(Vec::new, |stream| {
                stream
                    .entries
                    .iter()
                    .map(|(id, fields)| Entry {
                        id: id.clone(),
                        fields: fields.clone(),
                        deliveries: 0,
                    })
                    .collect()
            })
        })
    }

    /// Creates the group at the start of the stream, like `XGROUP CREATE ... 0 MKSTREAM`; an
    /// existing group is left as it is.
    pub(crate) fn create_group(&self, stream: &str, group: &str) {
        self.with(|state| {
            state
                .entry(stream.to_owned())
                .or_default()
                .groups
                .entry(group.to_owned())
                .or_default();
        });
    }

    pub(crate) fn pending(&self, stream: &str, group: &str) -> u64 {
        self.with(|state| {
            state
                .get(stream)
                .and_then(|stream| stream.groups.get(group))
                .map_or(0, |group| group.pending.len() as u64)
        })
    }

    /// Entries of `stream` the group has not acknowledged: never delivered, or pending.
    pub(crate) fn unacknowledged(&self, stream: &str, group: &str) -> u64 {
        self.with(|state| {
            state
                .get(stream)
                .and_then(|stream| {
                    let group = stream.groups.get(group)?;
                    let unread = stream.entries.len().saturating_sub(group.next);
                    Some((unread + group.pending.len()) as u64)
                })
                .unwrap_or(0)
        })
    }

    pub(crate) async fn read_new(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Vec<Entry> {
        self.wait_for(block, || self.take_new(stream, group, consumer, count))
            .await
    }

    /// What `take` finds, waiting up to `block` for an entry to be added when it finds nothing.
    async fn wait_for(&self, block: Duration, take: impl Fn() -> Vec<Entry>) -> Vec<Entry> {
        let deadline = tokio::time::Instant::now() + block;
        loop {
            // Registered before looking, so an entry added in between still wakes this reader.
            let added = self.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            let entries = take();
            if !entries.is_empty() {
                return entries;
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return Vec::new();
            }
        }
    }

    fn take_new(&self, stream: &str, group: &str, consumer: &str, count: usize) -> Vec<Entry> {
        self.with(|state| {
            let Some(stream) = state.get_mut(stream) else {
                return Vec::new();
            };
            let Some(group) = stream.groups.get_mut(group) else {
                return Vec::new();
            };
            let end = stream.entries.len().min(group.next + count);
            let taken = (group.next..end)
                .map(|index| {
                    group.pending.insert(
                        index,
                        Pending {
                            consumer: consumer.to_owned(),
                            delivered_at: Instant::now(),
                            deliveries: 1,
                        },
                    );
                    let (id, fields) = &stream.entries[index];
                    Entry {
                        id: id.clone(),
                        fields: fields.clone(),
                        deliveries: 1,
                    }
                })
                .collect();
            group.next = end;
            taken
        })
    }

    /// Entries after `after` (a stream id), oldest first, waiting up to `block` for one: a read
    /// outside any group, like `XREAD`, for followers that see every entry.
    pub(crate) async fn read_after(
        &self,
        stream: &str,
        after: (u64, u64),
        count: usize,
        block: Duration,
    ) -> Vec<Entry> {
        self.wait_for(block, || {
            self.with(|state| {
                let Some(stream) = state.get(stream) else {
                    return Vec::new();
                };
                // Ids only grow along a stream: the first entry after `after` is found by
                // bisection, not by a scan of everything the process has published.
                let first = stream
                    .entries
                    .partition_point(|(id, _)| parse_id(id) <= after);
                stream.entries[first..]
                    .iter()
                    .take(count)
                    .map(|(id, fields)| Entry {
                        id: id.clone(),
                        fields: fields.clone(),
                        deliveries: 1,
                    })
                    .collect()
            })
        })
        .await
    }

    pub(crate) fn claim_idle(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Vec<Entry> {
        self.with(|state| {
            let Some(stream) = state.get_mut(stream) else {
                return Vec::new();
            };
            let Some(group) = stream.groups.get_mut(group) else {
                return Vec::new();
            };
            group
                .pending
                .iter_mut()
                .filter(|(_, pending)| pending.delivered_at.elapsed() >= min_idle)
                .take(count)
                .map(|(index, pending)| {
                    pending.consumer = consumer.to_owned();
                    pending.delivered_at = Instant::now();
                    pending.deliveries += 1;
                    let (id, fields) = &stream.entries[*index];
                    Entry {
                        id: id.clone(),
                        fields: fields.clone(),
                        deliveries: pending.deliveries,
                    }
                })
                .collect()
        })
    }

    pub(crate) fn ack(&self, stream: &str, group: &str, id: &str) {
        self.with(|state| {
            let Some(stream) = state.get_mut(stream) else {
                return;
            };
            let Some(index) = stream.entries.iter().position(|(entry, _)| entry == id) else {
                return;
            };
            if let Some(group) = stream.groups.get_mut(group) {
                group.pending.remove(&index);
            }
        });
    }

    /// Which consumer holds an entry, for tests of reclaiming.
    #[cfg(test)]
    pub(crate) fn holder(&self, stream: &str, group: &str, id: &str) -> Option<String> {
        self.with(|state| {
            let stream = state.get(stream)?;
            let index = stream.entries.iter().position(|(entry, _)| entry == id)?;
            Some(
                stream
                    .groups
                    .get(group)?
                    .pending
                    .get(&index)?
                    .consumer
                    .clone(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(n: u8) -> Fields {
        vec![("n".into(), vec![n])]
    }

    #[tokio::test]
    async fn a_group_delivers_each_entry_once_and_keeps_it_pending_until_acknowledged() {
        let streams = Streams::default();
        streams.create_group("s", "g");
        streams.add("s", fields(1));
        streams.add("s", fields(2));
        let first = streams.read_new("s", "g", "a", 1, Duration::ZERO).await;
        let second = streams.read_new("s", "g", "b", 10, Duration::ZERO).await;
        assert_eq!(first.len(), 1);
        assert_eq!(second.len(), 1);
        assert_ne!(first[0].id, second[0].id);
        assert!(
            streams
                .read_new("s", "g", "a", 10, Duration::ZERO)
                .await
                .is_empty()
        );
        assert_eq!(streams.pending("s", "g"), 2);
        streams.ack("s", "g", &first[0].id);
        assert_eq!(streams.pending("s", "g"), 1);
    }

    #[tokio::test]
    async fn an_idle_entry_is_reclaimed_by_another_consumer_with_its_delivery_count() {
        let streams = Streams::default();
        streams.create_group("s", "g");
        streams.add("s", fields(1));
        let taken = streams.read_new("s", "g", "dead", 1, Duration::ZERO).await;
        assert!(
            streams
                .claim_idle("s", "g", "alive", Duration::from_secs(60), 10)
                .is_empty(),
            "not idle long enough yet"
        );
        let claimed = streams.claim_idle("s", "g", "alive", Duration::ZERO, 10);
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].deliveries, 2);
        assert_eq!(
            streams.holder("s", "g", &taken[0].id).as_deref(),
            Some("alive")
        );
    }

    #[tokio::test]
    async fn a_blocked_reader_wakes_when_an_entry_arrives() {
        let streams = std::sync::Arc::new(Streams::default());
        streams.create_group("s", "g");
        let reader = {
            let streams = streams.clone();
            tokio::spawn(async move {
                streams
                    .read_new("s", "g", "a", 1, Duration::from_secs(10))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        streams.add("s", fields(7));
        let entries = tokio::time::timeout(Duration::from_secs(2), reader)
            .await
            .expect("woken well before its block time")
            .expect("reader task");
        assert_eq!(entries.len(), 1);
    }

    #[tokio::test]
    async fn groups_are_independent_and_start_at_the_beginning_of_the_stream() {
        let streams = Streams::default();
        streams.add("s", fields(1));
        streams.create_group("s", "late");
        streams.create_group("s", "other");
        assert_eq!(
            streams
                .read_new("s", "late", "a", 10, Duration::ZERO)
                .await
                .len(),
            1
        );
        assert_eq!(
            streams
                .read_new("s", "other", "a", 10, Duration::ZERO)
                .await
                .len(),
            1
        );
    }
}
