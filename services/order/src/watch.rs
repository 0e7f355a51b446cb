//! WatchOrder by push: a hub that hands every committed change of an order to the streams
//! watching it, in this process and, through Redis, in every replica.
//!
//! The hub keeps one [`tokio::sync::watch`] channel per watched order, created by the first
//! watcher and removed with the last. The store tells the hub of each change after its
//! transaction commits ([`Hub::changed`]): the order's id and its new version. When the order has
//! watchers here, the hub reads its row once and puts it in the channel, where every watcher
//! finds the newest state (a watcher that was slow skips intermediate states, never the last).
//! Versions order the states, so an older read never replaces a newer one.
//!
//! In the distributed mode the hub also publishes each change as a small notice on a Redis
//! pub/sub channel, and one subscriber connection per process feeds the notices of every replica
//! to its own hub, which reads the row once per notice that has watchers here (see `redis`).
//! Redis pub/sub keeps nothing for a subscriber that is away, so after the subscriber
//! reconnects the hub reads every watched order once (`Hub::refresh_all`).
//!
//! A watch subscribes before it reads its order, so a change committed between the read and the
//! subscription cannot be missed: it is either in the read or announced to the subscription.
//!
//! # Layout
//! - this file: the hub and a watch's subscription.
//! - `redis`: the notices between replicas.
//! - `slots`: the caps on open watches, per user and per process.
//! - `stream`: one WatchOrder stream.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use agora_platform::{events::Background, storage::Database};
use tokio::sync::{mpsc, watch};

use crate::store::{self, OrderRow};

mod redis;
mod slots;
mod stream;

pub use slots::{Slot, Slots};
pub use stream::{WatchStream, stream};

/// The newest state of one order that the hub knows, shared by its watchers.
pub type Latest = Option<Arc<OrderRow>>;

/// Tries to read a changed order before its watchers are left with the state before it.
const READ_ATTEMPTS: u32 = 4;

/// Hands committed changes of orders to the watches of this process (and, with Redis, of every
/// replica). Cheap to clone: clones share one hub.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Where a changed order is read, once per change that has watchers here.
    db: Database,
    /// The watched orders: one channel each, while at least one watch holds it.
    topics: Mutex<HashMap<String, Topic>>,
    /// Changes made here, for the other replicas; `None` in the embedded mode.
    notices: Option<mpsc::UnboundedSender<Notice>>,
}

#[derive(Debug)]
struct Topic {
    sender: watch::Sender<Latest>,
    /// The newest version announced or read, so a notice of a state already read (this
    /// process's own, echoed by Redis) costs no read.
    known: i64,
}

/// A change of an order, as replicas tell each other: its id and its new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub(crate) order_id: String,
    pub(crate) version: i64,
}

impl Notice {
    /// `<order id> <version>`: small, and readable with `redis-cli SUBSCRIBE`.
    pub(crate) fn encode(&self) -> String {
        format!("{} {}", self.order_id, self.version)
    }

    pub(crate) fn decode(text: &str) -> Option<Self> {
        let (order_id, version) = text.split_once(' ')?;
        Some(Self {
            order_id: order_id.to_owned(),
            version: version.parse().ok()?,
        })
    }
}

impl Hub {
    /// A hub for this process only (the embedded mode: every watcher is here).
    pub fn local(db: Database) -> Self {
        Self::with_notices(db, None)
    }

    fn with_notices(db: Database, notices: Option<mpsc::UnboundedSender<Notice>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                topics: Mutex::new(HashMap::new()),
                notices,
            }),
        }
    }

    /// A hub shared with every replica through the Redis `redis` reaches (its URL and TLS) on
    /// the pub/sub `channel`, or [`Hub::local`] without Redis; the tasks that publish and
    /// subscribe run as long as the returned [`Background`] lives.
    ///
    /// # Errors
    /// A Redis that cannot be reached at start-up.
    pub async fn connect(
        db: Database,
        redis: Option<::redis::Client>,
        channel: String,
    ) -> anyhow::Result<(Self, Background)> {
        let Some(client) = redis else {
            return Ok((Self::local(db), Background::default()));
        };
        let (notices, pending) = mpsc::unbounded_channel();
        let hub = Self::with_notices(db, Some(notices));
        let tasks = redis::spawn(client, channel, hub.clone(), pending).await?;
        Ok((hub, tasks))
    }

    fn topics(&self) -> MutexGuard<'_, HashMap<String, Topic>> {
        // A panic elsewhere cannot leave the map half-changed: every change is one call.
        self.inner
            .topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts following `order_id`: every change committed from now on reaches the returned
    /// subscription. Subscribe before reading the order, so no change falls between the two.
    pub fn subscribe(&self, order_id: &str) -> Subscription {
        let receiver = {
            let mut topics = self.topics();
            match topics.get(order_id) {
                Some(topic) => topic.sender.subscribe(),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    topics.insert(order_id.to_owned(), Topic { sender, known: 0 });
                    receiver
                }
            }
        };
        Subscription {
            hub: self.clone(),
            order_id: order_id.to_owned(),
            receiver,
        }
    }

    /// How many orders have watchers in this process.
    pub fn watched_orders(&self) -> usize {
        self.topics().len()
    }

    /// Announces a committed change of an order made by this process: to its watchers here and,
    /// with Redis, to the other replicas.
    pub fn changed(&self, order_id: &str, version: i64) {
        if let Some(notices) = &self.inner.notices {
            // The publisher lives as long as the hub's tasks; after them nobody listens anyway.
            let _ = notices.send(Notice {
                order_id: order_id.to_owned(),
                version,
            });
        }
        self.notice(order_id, Some(version));
    }

    /// A change of `order_id` (to `version`, when known): reads the order once if it has
    /// watchers here and the change is newer than what they have.
    pub(crate) fn notice(&self, order_id: &str, version: Option<i64>) {
        {
            let mut topics = self.topics();
            let Some(topic) = topics.get_mut(order_id) else {
                return;
            };
            if let Some(version) = version {
                if version <= topic.known {
                    return;
                }
                topic.known = version;
            }
        }
        let hub = self.clone();
        let order_id = order_id.to_owned();
        tokio::spawn(async move { hub.read(&order_id).await });
    }

    /// Reads every watched order once: after the notices of other replicas may have been lost.
    pub(crate) fn refresh_all(&self) {
        let watched: Vec<String> = self.topics().keys().cloned().collect();
        for order_id in watched {
            self.notice(&order_id, None);
        }
    }

    /// Reads an order and hands it to its watchers, retrying a failed read a few times.
    async fn read(&self, order_id: &str) {
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=READ_ATTEMPTS {
            match store::read(&self.inner.db, order_id).await {
                Ok(Some(row)) => {
                    self.offer(row);
                    return;
                }
                Ok(None) => return,
                Err(error) if attempt == READ_ATTEMPTS => {
                    tracing::warn!(order_id, error = %error, "a watched order could not be read after a change; its watchers see the next one");
                }
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }

    /// Hands a state of an order to its watchers here, unless they have a newer one.
    pub fn offer(&self, row: OrderRow) {
        let mut topics = self.topics();
        let Some(topic) = topics.get_mut(&row.id) else {
            return;
        };
        topic.known = topic.known.max(row.version);
        let row = Arc::new(row);
        topic.sender.send_if_modified(|latest| {
            if latest.as_ref().is_some_and(|l| l.version >= row.version) {
                return false;
            }
            *latest = Some(row);
            true
        });
    }
}

/// One watch's hold on its order's channel; the channel goes when its last subscription does.
#[derive(Debug)]
pub struct Subscription {
    hub: Hub,
    order_id: String,
    receiver: watch::Receiver<Latest>,
}

impl Subscription {
    /// The channel of the order's newest state.
    pub fn receiver(&mut self) -> &mut watch::Receiver<Latest> {
        &mut self.receiver
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut topics = self.hub.topics();
        // Subscribing happens under the same lock, so the count cannot grow meanwhile; this
        // subscription's receiver is still counted.
        if topics
            .get(&self.order_id)
            .is_some_and(|topic| topic.sender.receiver_count() <= 1)
        {
            topics.remove(&self.order_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Status;

    async fn hub() -> Hub {
        Hub::local(
            Database::connect("sqlite::memory:")
                .await
                .expect("an in-memory database"),
        )
    }

    fn row(id: &str, version: i64, status: Status) -> OrderRow {
        OrderRow {
            id: id.into(),
            user_id: "u".into(),
            status,
            body: Default::default(),
            currency_code: "EUR".into(),
            total_minor: 1,
            cancel_reason: String::new(),
            failure_reason: String::new(),
            created_at: 0,
            updated_at: 0,
            version,
        }
    }

    #[tokio::test]
    async fn an_orders_channel_lives_from_its_first_watcher_to_its_last() {
        let hub = hub().await;
        let first = hub.subscribe("a");
        let second = hub.subscribe("a");
        let other = hub.subscribe("b");
        assert_eq!(hub.watched_orders(), 2);
        drop(first);
        assert_eq!(hub.watched_orders(), 2, "a watcher of a is left");
        drop(second);
        assert_eq!(
            hub.watched_orders(),
            1,
            "a's channel went with its last watcher"
        );
        drop(other);
        assert_eq!(hub.watched_orders(), 0, "nothing is left behind");
        let again = hub.subscribe("a");
        assert!(
            again.receiver.borrow().is_none(),
            "a new channel starts empty"
        );
    }

    #[tokio::test]
    async fn an_older_state_never_replaces_a_newer_one_and_unwatched_orders_are_not_kept() {
        let hub = hub().await;
        let mut watching = hub.subscribe("a");
        hub.offer(row("a", 3, Status::Confirmed));
        hub.offer(row("a", 2, Status::Pending));
        let latest = watching.receiver().borrow_and_update().clone();
        assert_eq!(latest.map(|r| r.version), Some(3));
        hub.offer(row("b", 1, Status::Pending));
        assert_eq!(hub.watched_orders(), 1);
    }

    #[test]
    fn notices_read_back_what_they_wrote_and_refuse_garbage() {
        let notice = Notice {
            order_id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            version: 7,
        };
        assert_eq!(Notice::decode(&notice.encode()), Some(notice));
        assert_eq!(Notice::decode("no-version"), None);
        assert_eq!(Notice::decode("id seven"), None);
    }
}
