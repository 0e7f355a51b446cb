//! The event bus keeps its promises on both transports: in memory with SQLite, and on Redis
//! Streams with PostgreSQL. Producer and consumer here are real outbox and consumer-group code
//! over a real database; the consumer's effect is a row in its own table. Tests that make Redis
//! lose data do it to a `redis-server` of their own ([`OwnRedis`]), never the shared one.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use agora_contracts::agora::events::v1::{EventEnvelope, ProductCreated};
use agora_platform::{
    config::EventSettings,
    events::{self, Bus, Handler, HandlerError, Relay},
    storage::{Backend, Database},
    testing::{TestBackend, TestStore},
};
use prost::{Message as _, Name as _};
use sqlx::Row as _;
use tokio::sync::{mpsc, watch};

const PRODUCER: &str = "product";
const GROUP: &str = "inventory";

struct Fixture {
    _store: TestStore,
    db: Database,
    bus: Bus,
    settings: EventSettings,
}

async fn fixture(backend: TestBackend) -> Option<Fixture> {
    fixture_on(backend, None).await
}

/// A fixture whose bus is the Redis at `redis_url` (else the backend's own bus).
async fn fixture_on(backend: TestBackend, redis_url: Option<&str>) -> Option<Fixture> {
    let store = TestStore::new(backend).await?;
    let db = store.database().await;
    let (seq, blob) = match db.backend() {
        Backend::Postgres => ("BIGSERIAL PRIMARY KEY", "BYTEA"),
        Backend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"),
    };
    for ddl in [
        format!(
            "CREATE TABLE outbox (seq {seq}, event_id TEXT NOT NULL UNIQUE, event_type TEXT NOT NULL, \
             envelope {blob} NOT NULL, created_at BIGINT NOT NULL, published_at BIGINT)"
        ),
        "CREATE TABLE processed_events (consumer TEXT NOT NULL, event_id TEXT NOT NULL, \
         processed_at BIGINT NOT NULL, PRIMARY KEY (consumer, event_id))"
            .to_owned(),
        "CREATE TABLE applied (event_id TEXT NOT NULL, sku TEXT NOT NULL)".to_owned(),
    ] {
        sqlx::query(&ddl).execute(db.pool()).await.expect("schema");
    }
    let bus = match redis_url.or(store.redis_url.as_deref()) {
        Some(url) => Bus::redis(url, store.prefix.clone()).await.expect("redis"),
        None => Bus::memory(store.prefix.clone()),
    };
    let settings = EventSettings {
        prefix: store.prefix.clone(),
        relay_interval: Duration::from_millis(20),
        claim_after: Duration::from_millis(300),
        max_attempts: 3,
        ..EventSettings::default()
    };
    Some(Fixture {
        _store: store,
        db,
        bus,
        settings,
    })
}

/// Writes one ProductCreated for `sku` through the outbox, in its own transaction.
async fn produce(db: &Database, sku: &str) -> String {
    let mut tx = db.begin_write().await.expect("begin");
    let event = ProductCreated {
        product_id: format!("id-{sku}"),
        sku: sku.into(),
        ..ProductCreated::default()
    };
    let id = events::enqueue(&mut tx, PRODUCER, &event.product_id, &event)
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
    id
}

/// A consumer that records each ProductCreated in `applied`, once, and can be told to fail.
#[derive(Clone)]
struct Recorder {
    db: Database,
    /// SKUs whose events fail every time (a transient error that never passes).
    failing: Arc<HashSet<String>>,
    /// When set, the first event is reported here and then never finishes (a consumer that
    /// hangs or dies mid-message).
    hang: Option<mpsc::UnboundedSender<String>>,
    /// When set, each event is reported here and waits until the gate reads `true`.
    gate: Option<(mpsc::UnboundedSender<String>, watch::Receiver<bool>)>,
}

impl Recorder {
    fn new(db: &Database) -> Self {
        Self {
            db: db.clone(),
            failing: Arc::default(),
            hang: None,
            gate: None,
        }
    }
}

impl Handler for Recorder {
    async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError> {
        if event.r#type != ProductCreated::full_name() {
            return Ok(());
        }
        let payload = event.payload.as_ref().map(|any| any.value.as_slice());
        let created = ProductCreated::decode(payload.unwrap_or_default())
            .map_err(|error| HandlerError::Reject(format!("bad ProductCreated: {error}")))?;
        if let Some(hang) = &self.hang {
            let _ = hang.send(event.id.clone());
            std::future::pending::<()>().await;
        }
        if let Some((seen, gate)) = &self.gate {
            let _ = seen.send(created.sku.clone());
            let mut gate = gate.clone();
            gate.wait_for(|open| *open)
                .await
                .map_err(anyhow::Error::from)?;
        }
        if self.failing.contains(&created.sku) {
            return Err(HandlerError::Retry(anyhow::anyhow!(
                "the warehouse is on fire"
            )));
        }
        let mut tx = self.db.begin_write().await.map_err(anyhow::Error::from)?;
        if events::remember(&mut tx, GROUP, &event.id)
            .await
            .map_err(anyhow::Error::from)?
        {
            sqlx::query("INSERT INTO applied (event_id, sku) VALUES ($1, $2)")
                .bind(&event.id)
                .bind(&created.sku)
                .execute(&mut *tx)
                .await
                .map_err(anyhow::Error::from)?;
        }
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok(())
    }
}

async fn applied(db: &Database) -> Vec<(String, String)> {
    sqlx::query("SELECT event_id, sku FROM applied ORDER BY sku")
        .fetch_all(db.pool())
        .await
        .expect("select")
        .iter()
        .map(|row| (row.get("event_id"), row.get("sku")))
        .collect()
}

/// Waits until `applied` holds `n` rows and the group has nothing pending.
async fn settle(f: &Fixture, n: usize) -> Vec<(String, String)> {
    for _ in 0..400 {
        let rows = applied(&f.db).await;
        let pending = f.bus.pending(PRODUCER, GROUP).await.expect("pending");
        if rows.len() >= n && pending == 0 {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "not settled: {} applied, {} pending",
        applied(&f.db).await.len(),
        f.bus.pending(PRODUCER, GROUP).await.unwrap_or(u64::MAX)
    );
}

async fn unpublished(db: &Database) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL")
        .fetch_one(db.pool())
        .await
        .expect("count")
        .get("n")
}

async fn an_event_survives_a_relay_crash_between_publish_and_mark(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let id = produce(&f.db, "sku-1").await;
    let _consumer = events::spawn_consumer(
        f.bus.clone(),
        PRODUCER,
        GROUP,
        Recorder::new(&f.db),
        &f.settings,
    );

    let crashing = Relay::new(f.db.clone(), f.bus.clone(), PRODUCER, &f.settings);
    crashing.crash_after_next_publish();
    crashing.run_once().await.expect_err("the injected crash");
    assert_eq!(
        unpublished(&f.db).await,
        1,
        "the crash left the row unmarked"
    );

    let restarted = Relay::new(f.db.clone(), f.bus.clone(), PRODUCER, &f.settings);
    assert_eq!(restarted.run_once().await.expect("a clean round"), 1);
    assert_eq!(unpublished(&f.db).await, 0);

    let published = f.bus.events(PRODUCER).await.expect("stream");
    assert_eq!(published.len(), 2, "published twice: at least once");
    assert!(published.iter().all(|event| event.id == id), "one event id");
    assert_eq!(
        settle(&f, 1).await,
        vec![(id, "sku-1".into())],
        "applied once"
    );
    // Nothing more arrives later either.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(applied(&f.db).await.len(), 1);
}

async fn the_relay_publishes_committed_events_in_order_and_never_rolled_back_ones(
    backend: TestBackend,
) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut ids = Vec::new();
    for n in 0..230 {
        ids.push(produce(&f.db, &format!("sku-{n:03}")).await);
    }
    {
        let mut tx = f.db.begin_write().await.expect("begin");
        let ghost = ProductCreated {
            sku: "ghost".into(),
            ..ProductCreated::default()
        };
        events::enqueue(&mut tx, PRODUCER, "ghost", &ghost)
            .await
            .expect("enqueue");
        tx.rollback().await.expect("rollback");
    }
    let _relay = Relay::new(f.db.clone(), f.bus.clone(), PRODUCER, &f.settings).spawn();
    for _ in 0..400 {
        if unpublished(&f.db).await == 0
            && f.bus.events(PRODUCER).await.expect("stream").len() == ids.len()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let published: Vec<String> = f
        .bus
        .events(PRODUCER)
        .await
        .expect("stream")
        .into_iter()
        .map(|event| {
            assert_eq!(event.producer, PRODUCER);
            assert_eq!(event.r#type, "agora.events.v1.ProductCreated");
            assert!(event.occur_time.is_some());
            event.id
        })
        .collect();
    assert_eq!(
        published, ids,
        "every committed event, in commit order, once"
    );
}

async fn a_consumer_that_dies_mid_message_has_it_reclaimed_by_another_and_applied_once(
    backend: TestBackend,
) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let _relay = Relay::new(f.db.clone(), f.bus.clone(), PRODUCER, &f.settings).spawn();
    let id = produce(&f.db, "sku-1").await;

    let (seen, mut seen_rx) = mpsc::unbounded_channel();
    let dying = Recorder {
        hang: Some(seen),
        ..Recorder::new(&f.db)
    };
    let dying = events::spawn_consumer(f.bus.clone(), PRODUCER, GROUP, dying, &f.settings);
    let taken = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv())
        .await
        .expect("the first consumer receives the event")
        .expect("an id");
    assert_eq!(taken, id);
    assert_eq!(f.bus.pending(PRODUCER, GROUP).await.expect("pending"), 1);
    drop(dying); // the consumer dies holding the event, unacknowledged

    let _survivor = events::spawn_consumer(
        f.bus.clone(),
        PRODUCER,
        GROUP,
        Recorder::new(&f.db),
        &f.settings,
    );
    assert_eq!(settle(&f, 1).await, vec![(id, "sku-1".into())]);
}

async fn a_poison_message_is_dead_lettered_without_blocking_the_ones_behind_it(
    backend: TestBackend,
) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    // Undecodable payload: rejected at once.
    let poison = EventEnvelope {
        id: "poison-1".into(),
        r#type: ProductCreated::full_name(),
        producer: PRODUCER.into(),
        payload: Some(prost_types::Any {
            type_url: ProductCreated::type_url(),
            value: vec![0xff, 0xff, 0xff],
        }),
        ..EventEnvelope::default()
    };
    f.bus.publish(&poison).await.expect("publish");
    let _relay = Relay::new(f.db.clone(), f.bus.clone(), PRODUCER, &f.settings).spawn();
    let doomed = produce(&f.db, "sku-doomed").await;
    let mut good = Vec::new();
    for n in 0..5 {
        good.push(produce(&f.db, &format!("sku-{n}")).await);
    }
    let recorder = Recorder {
        failing: Arc::new(HashSet::from(["sku-doomed".to_owned()])),
        ..Recorder::new(&f.db)
    };
    let _consumer = events::spawn_consumer(f.bus.clone(), PRODUCER, GROUP, recorder, &f.settings);

    // The good events behind the poison and the failing one are applied: neither blocks them.
    let rows = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let rows = applied(&f.db).await;
            if rows.len() == 5 {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the good events are applied");
    assert_eq!(
        rows.iter()
            .map(|(id, _)| id.clone())
            .collect::<HashSet<_>>(),
        good.iter().cloned().collect()
    );

    // The failing one is retried up to max_attempts, then set aside with its reason.
    let letters = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let letters = f.bus.dead_letters(PRODUCER).await.expect("dead letters");
            if letters.len() == 2 {
                return letters;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
    .expect("both reach the dead-letter stream");
    let by_id = |id: &str| letters.iter().find(|l| l.event_id == id).cloned();
    let poisoned = by_id("poison-1").expect("the poison is dead-lettered");
    assert_eq!(poisoned.group, GROUP);
    assert_eq!(poisoned.attempts, 1, "rejected on first sight");
    assert!(
        poisoned.reason.contains("bad ProductCreated"),
        "{}",
        poisoned.reason
    );
    assert_eq!(
        EventEnvelope::decode(poisoned.envelope.as_slice()).expect("kept intact"),
        poison
    );
    let failed = by_id(&doomed).expect("the failing event is dead-lettered");
    assert_eq!(failed.attempts, 3);
    assert!(
        failed.reason.contains("the warehouse is on fire"),
        "{}",
        failed.reason
    );
    assert_eq!(f.bus.pending(PRODUCER, GROUP).await.expect("pending"), 0);
    assert_eq!(applied(&f.db).await.len(), 5);
}

async fn each_group_gets_every_event_and_a_group_shares_them_between_its_consumers(
    backend: TestBackend,
) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let _relay = Relay::new(f.db.clone(), f.bus.clone(), PRODUCER, &f.settings).spawn();
    // Two consumers of one group: each event is applied once in all.
    let _one = events::spawn_consumer(
        f.bus.clone(),
        PRODUCER,
        GROUP,
        Recorder::new(&f.db),
        &f.settings,
    );
    let _two = events::spawn_consumer(
        f.bus.clone(),
        PRODUCER,
        GROUP,
        Recorder::new(&f.db),
        &f.settings,
    );
    // Another group counts what it sees.
    #[derive(Clone, Default)]
    struct Counter(Arc<Mutex<Vec<String>>>);
    impl Handler for Counter {
        async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError> {
            self.0.lock().expect("not poisoned").push(event.id.clone());
            Ok(())
        }
    }
    let counter = Counter::default();
    let _other = events::spawn_consumer(
        f.bus.clone(),
        PRODUCER,
        "search",
        counter.clone(),
        &f.settings,
    );
    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push(produce(&f.db, &format!("sku-{n:02}")).await);
    }
    let rows = settle(&f, 40).await;
    assert_eq!(rows.len(), 40, "each event applied once by the group");
    for _ in 0..200 {
        if counter.0.lock().expect("not poisoned").len() >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        *counter.0.lock().expect("not poisoned"),
        ids,
        "the other group saw all, in order"
    );
}

agora_platform::on_both_backends!(
    an_event_survives_a_relay_crash_between_publish_and_mark,
    the_relay_publishes_committed_events_in_order_and_never_rolled_back_ones,
    a_consumer_that_dies_mid_message_has_it_reclaimed_by_another_and_applied_once,
    a_poison_message_is_dead_lettered_without_blocking_the_ones_behind_it,
    each_group_gets_every_event_and_a_group_shares_them_between_its_consumers,
    a_relay_that_sees_its_stream_regress_publishes_the_lost_events_again,
    a_consumer_whose_stream_was_reset_asks_a_relay_that_knows_nothing_for_a_replay,
    a_requested_replay_publishes_retained_events_again_and_they_apply_once,
    the_outbox_backlog_and_the_consumer_lag_are_measured_while_events_wait,
);

/// A `redis-server` of this test's own, which it can restart empty on the same port.
struct OwnRedis {
    port: u16,
    child: std::process::Child,
    /// Its working directory, kept until it is gone.
    _dir: tempfile::TempDir,
}

impl OwnRedis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let child = Self::spawn(port, dir.path()).await;
        Self {
            port,
            child,
            _dir: dir,
        }
    }

    /// Starts a server without persistence and waits until it answers.
    async fn spawn(port: u16, dir: &std::path::Path) -> std::process::Child {
        let mut child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return child;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the test's redis-server did not start");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server and starts it again, empty, on the same port: what a restart without
    /// persistence does.
    async fn restart_empty(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.port, self._dir.path()).await;
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn redis_command(url: &str, command: &redis::Cmd) -> redis::Value {
    let client = redis::Client::open(url).expect("a Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    command
        .query_async(&mut connection)
        .await
        .expect("the command succeeds")
}

async fn processed(db: &Database) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM processed_events")
        .fetch_one(db.pool())
        .await
        .expect("count")
        .get("n")
}

#[tokio::test]
async fn a_consumer_group_destroyed_under_a_running_consumer_is_recreated_and_delivery_resumes() {
    // The test's own prefix on the shared Redis: destroying its group touches nothing else.
    let Some(f) = fixture(TestBackend::Distributed).await else {
        return;
    };
    let url = agora_platform::testing::redis_url();
    let _relay = Relay::new(f.db.clone(), f.bus.clone(), PRODUCER, &f.settings).spawn();
    let _consumer = events::spawn_consumer(
        f.bus.clone(),
        PRODUCER,
        GROUP,
        Recorder::new(&f.db),
        &f.settings,
    );
    let first = produce(&f.db, "sku-1").await;
    settle(&f, 1).await;

    let mut destroy = redis::cmd("XGROUP");
    destroy
        .arg("DESTROY")
        .arg(f.bus.stream(PRODUCER))
        .arg(GROUP);
    assert_eq!(
        redis_command(&url, &destroy).await,
        redis::Value::Int(1),
        "the group existed and is gone"
    );

    let second = produce(&f.db, "sku-2").await;
    let rows = settle(&f, 2).await;
    assert_eq!(
        rows,
        vec![(first, "sku-1".into()), (second, "sku-2".into())],
        "delivery resumed, and the first event, delivered again to the new group, is not applied twice"
    );
}

/// Redis restarts empty while the consumer is busy with `sku-a`: `sku-b`, published and marked
/// sent, is lost from Redis before the consumer read it. `sku-c` is written after the restart.
/// With `fresh_relay`, the relay that published is replaced by one that knows nothing of the
/// stream, so only the consumer's replay request can bring `sku-b` back.
async fn events_lost_by_redis_are_published_again(backend: TestBackend, fresh_relay: bool) {
    let mut redis = OwnRedis::start().await;
    let Some(f) = fixture_on(backend, Some(&redis.url())).await else {
        return;
    };
    let (open, gate) = watch::channel(false);
    let (seen, mut seen_rx) = mpsc::unbounded_channel();
    let recorder = Recorder {
        gate: Some((seen, gate)),
        ..Recorder::new(&f.db)
    };
    let _consumer = events::spawn_consumer(f.bus.clone(), PRODUCER, GROUP, recorder, &f.settings);
    let relay = Relay::new(f.db.clone(), f.bus.clone(), PRODUCER, &f.settings);

    let a = produce(&f.db, "sku-a").await;
    assert_eq!(relay.run_once().await.expect("a relay round"), 1);
    let held = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv())
        .await
        .expect("the consumer receives sku-a")
        .expect("a sku");
    assert_eq!(held, "sku-a");
    let b = produce(&f.db, "sku-b").await;
    assert_eq!(relay.run_once().await.expect("a relay round"), 1);
    assert_eq!(unpublished(&f.db).await, 0, "sku-b is marked sent");
    assert_eq!(f.bus.events(PRODUCER).await.expect("stream").len(), 2);

    redis.restart_empty().await;
    // The first command on a connection to the old server fails; the bus reconnects for the next.
    let mut after = f.bus.events(PRODUCER).await;
    for _ in 0..50 {
        if after.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = f.bus.events(PRODUCER).await;
    }
    assert!(
        after.expect("the stream reads").is_empty(),
        "Redis lost both events"
    );
    let relay = if fresh_relay {
        Relay::new(f.db.clone(), f.bus.clone(), PRODUCER, &f.settings)
    } else {
        relay
    };
    let c = produce(&f.db, "sku-c").await;
    assert_eq!(relay.run_once().await.expect("a relay round"), 1);
    let stream: Vec<String> = f
        .bus
        .events(PRODUCER)
        .await
        .expect("stream")
        .into_iter()
        .map(|event| event.id)
        .collect();
    if fresh_relay {
        assert_eq!(stream, vec![c.clone()], "this relay knows of no loss");
    } else {
        assert_eq!(
            stream,
            vec![a.clone(), b.clone(), c.clone()],
            "the relay noticed the loss before publishing, and published the lost events first"
        );
    }
    // From here on the consumer runs freely; with a fresh relay only its replay request can
    // bring sku-b back.
    let _relay = relay.spawn();
    open.send(true).expect("the consumer listens");

    let mut expected = vec![
        (a, "sku-a".into()),
        (b, "sku-b".into()),
        (c, "sku-c".into()),
    ];
    expected.sort_by(|x: &(String, String), y| x.1.cmp(&y.1));
    assert_eq!(settle(&f, 3).await, expected, "all three, each once");
    // Every copy on the stream now (replays included) has been handled: still one effect each.
    let copies = f.bus.events(PRODUCER).await.expect("stream").len();
    assert!(copies >= 3, "{copies} entries");
    assert_eq!(applied(&f.db).await.len(), 3);
    assert_eq!(processed(&f.db).await, 3);
}

async fn a_relay_that_sees_its_stream_regress_publishes_the_lost_events_again(
    backend: TestBackend,
) {
    events_lost_by_redis_are_published_again(backend, false).await;
}

async fn a_consumer_whose_stream_was_reset_asks_a_relay_that_knows_nothing_for_a_replay(
    backend: TestBackend,
) {
    events_lost_by_redis_are_published_again(backend, true).await;
}

async fn a_requested_replay_publishes_retained_events_again_and_they_apply_once(
    backend: TestBackend,
) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let _relay = Relay::new(f.db.clone(), f.bus.clone(), PRODUCER, &f.settings).spawn();
    let _consumer = events::spawn_consumer(
        f.bus.clone(),
        PRODUCER,
        GROUP,
        Recorder::new(&f.db),
        &f.settings,
    );
    let first = produce(&f.db, "sku-1").await;
    let second = produce(&f.db, "sku-2").await;
    settle(&f, 2).await;

    f.bus
        .request_replay(PRODUCER, None)
        .await
        .expect("a replay request");
    for _ in 0..400 {
        if f.bus.events(PRODUCER).await.expect("stream").len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ids: Vec<String> = f
        .bus
        .events(PRODUCER)
        .await
        .expect("stream")
        .into_iter()
        .map(|event| event.id)
        .collect();
    assert_eq!(
        ids,
        vec![first.clone(), second.clone(), first.clone(), second.clone()],
        "published again, in outbox order"
    );
    assert_eq!(
        settle(&f, 2).await,
        vec![(first, "sku-1".into()), (second, "sku-2".into())],
        "applied once"
    );
    assert_eq!(processed(&f.db).await, 2);
}

/// The value of the gauge `name` of `stream` (and `group`, when given) in the process's
/// metrics, or `None` when it has no such series yet.
fn gauge(name: &str, stream: &str, group: Option<&str>) -> Option<f64> {
    use agora_platform::metrics::{Metrics, exposition};
    let text = Metrics::global().render().expect("the provider renders");
    let samples = exposition::parse(&text).expect("the exposition parses");
    let mut labels = vec![("messaging_destination_name", stream)];
    labels.extend(group.map(|group| ("messaging_consumer_group_name", group)));
    exposition::matching(&samples, name, &labels)
        .first()
        .map(|sample| sample.value)
}

/// Waits until `check` holds, for at most ten seconds.
async fn until(what: &str, check: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}"));
}

async fn the_outbox_backlog_and_the_consumer_lag_are_measured_while_events_wait(
    backend: TestBackend,
) {
    let Some(mut f) = fixture(backend).await else {
        return;
    };
    // A stream of this test's own, so no other test of the process records into its series.
    let stream = format!("metered-{}", uuid::Uuid::now_v7().simple());
    for n in 0..3 {
        produce(&f.db, &format!("sku-{n}")).await;
    }
    // The first round publishes and then fails before marking: the three stay unpublished
    // until the round after the pause that follows a failure.
    f.settings.relay_interval = Duration::from_secs(3);
    let relay = Relay::new(f.db.clone(), f.bus.clone(), stream.as_str(), &f.settings);
    relay.crash_after_next_publish();
    let _relay = relay.spawn();
    until("the relay measures a backlog of three", || {
        gauge("agora_outbox_backlog", &stream, None) == Some(3.0)
    })
    .await;
    let lag = gauge("agora_outbox_lag_seconds", &stream, None).expect("a lag");
    assert!(lag > 0.0 && lag < 10.0, "the oldest waits: {lag}");
    until(
        "the relay publishes them again and measures nothing left",
        || {
            gauge("agora_outbox_backlog", &stream, None) == Some(0.0)
                && gauge("agora_outbox_lag_seconds", &stream, None) == Some(0.0)
        },
    )
    .await;
    // Published twice (at least once): six entries, all read by a consumer whose handler
    // waits at the gate, so the group owes all six.
    let (seen, mut first) = mpsc::unbounded_channel();
    let (open, gate) = watch::channel(false);
    let recorder = Recorder {
        gate: Some((seen, gate)),
        ..Recorder::new(&f.db)
    };
    let _consumer = events::spawn_consumer(f.bus.clone(), &stream, GROUP, recorder, &f.settings);
    first
        .recv()
        .await
        .expect("the first event reaches the handler");
    assert_eq!(f.bus.unacknowledged(&stream, GROUP).await.expect("lag"), 6);
    assert_eq!(
        f.bus.unacknowledged(&stream, "nobody").await.expect("lag"),
        0
    );
    open.send(true).expect("the gate opens");
    until("the group owes nothing and says so", || {
        gauge("agora_consumer_lag", &stream, Some(GROUP)) == Some(0.0)
    })
    .await;
    assert_eq!(f.bus.unacknowledged(&stream, GROUP).await.expect("lag"), 0);
    assert_eq!(applied(&f.db).await.len(), 3, "each applied once");
}
