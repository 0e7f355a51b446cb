//! The snapshot the page draws: each upstream with its health, replicas and golden numbers by
//! method, the edge's routes, the event bus and the orders, with the recent history of each
//! chart. One [`Board`] per edge computes it for every viewer.

use std::collections::{BTreeMap, VecDeque};

use agora_platform::metrics::exposition::Sample;
use serde::Serialize;

use super::sources::{Reading, SourceState};
use super::window::{Changes, Golden, Tally, Window};

/// How many points each chart keeps: five minutes of readings every two seconds.
pub const HISTORY: usize = 150;

/// gRPC services every server has beside its own, left out of the console: the edge's health
/// checks alone call them every second.
const INFRASTRUCTURE: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The order outcomes charted.
const OUTCOMES: [&str; 3] = ["placed", "failed", "cancelled"];

/// An upstream of the edge as its health checks see it.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Its short name (`product`).
    pub name: String,
    /// Its gRPC service (`agora.product.v1.ProductService`).
    pub grpc: String,
    /// Its last health status (`SERVING`, `UNREACHABLE`, ...).
    pub health: String,
    /// Since when it has had that status (RFC 3339).
    pub since: String,
}

/// What the page shows, as sent to it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// When it was computed, in milliseconds since the Unix epoch.
    pub at: u64,
    /// How many seconds the rates cover (a minute, less just after start).
    pub window_seconds: f64,
    /// Each metrics source and whether it answered.
    pub sources: Vec<SourceState>,
    /// Every service: the edge's upstreams first, then any other that has calls.
    pub services: Vec<ServiceView>,
    /// The edge's routes that had requests in the window.
    pub routes: Vec<RouteView>,
    /// The event bus; none when no process reports it.
    pub bus: Option<BusView>,
    /// Orders per minute by outcome, with their history; none when no process counts them.
    pub orders: Option<OrdersView>,
}

/// A service with its golden numbers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    /// Short name.
    pub name: String,
    /// gRPC service.
    pub grpc: String,
    /// Its health as the edge checks it; none for a service the edge does not route.
    pub health: Option<String>,
    /// Since when its health has been that.
    pub since: Option<String>,
    /// Processes serving it that the console reads.
    pub replicas: u32,
    /// All its methods together.
    #[serde(flatten)]
    pub golden: Golden,
    /// Its request rate at each reading, oldest first.
    pub rate_history: Vec<f64>,
    /// Each method that had calls in the window.
    pub methods: Vec<MethodView>,
}

/// A method with its golden numbers.
#[derive(Debug, Serialize)]
pub struct MethodView {
    /// The method's name (`GetProduct`).
    pub method: String,
    /// Its numbers.
    #[serde(flatten)]
    pub golden: Golden,
}

/// An edge route with its golden numbers.
#[derive(Debug, Serialize)]
pub struct RouteView {
    /// The route template (`/v1/products/{product_id}`) or gRPC path.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// Its numbers (a 5xx is a failure).
    #[serde(flatten)]
    pub golden: Golden,
}

/// The event bus: each stream's outbox and each consumer group.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BusView {
    /// Each stream's unpublished events and the age of its oldest, in seconds.
    pub streams: Vec<StreamView>,
    /// Each consumer group's events not yet handled.
    pub consumers: Vec<ConsumerView>,
    /// Events dead-lettered per minute over the window.
    pub dead_lettered_per_minute: Option<f64>,
    /// The backlog of every stream together at each reading.
    pub backlog_history: Vec<f64>,
}

/// One stream's outbox.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamView {
    /// The stream.
    pub stream: String,
    /// Events not yet published.
    pub backlog: Option<f64>,
    /// The age of the oldest unpublished event, in seconds.
    pub lag_seconds: Option<f64>,
}

/// One consumer group.
#[derive(Debug, Serialize)]
pub struct ConsumerView {
    /// The stream it reads.
    pub stream: String,
    /// The group.
    pub group: String,
    /// Events delivered but not yet acknowledged, or not yet read.
    pub lag: f64,
}

/// Orders per minute by outcome, now and at each reading.
#[derive(Debug, Serialize)]
pub struct OrdersView {
    /// `placed`, `failed`, `cancelled`: per minute over the window.
    pub now: BTreeMap<String, f64>,
    /// The same at each reading, oldest first.
    pub history: BTreeMap<String, Vec<f64>>,
}

/// The console's state: the window of readings and the charts' history.
#[derive(Debug, Default)]
pub struct Board {
    window: Window,
    service_rates: BTreeMap<String, VecDeque<f64>>,
    orders: BTreeMap<String, VecDeque<f64>>,
    backlog: VecDeque<f64>,
}

impl Board {
    /// Takes `reading` (at `at` seconds on a monotonic clock, `unix_ms` on the wall clock) and
    /// returns what the page shows now.
    pub fn update(
        &mut self,
        at: f64,
        unix_ms: u64,
        reading: Reading,
        upstreams: &[Upstream],
    ) -> Snapshot {
        self.window.push(at, Tally::of(&reading.samples));
        let changes = self.window.changes().unwrap_or_default();
        let services = self.services(&changes, &reading, upstreams);
        let routes = changes
            .http
            .iter()
            .filter(|(_, golden)| golden.rate > 0.0)
            .map(|((route, method), golden)| RouteView {
                route: route.clone(),
                method: method.clone(),
                golden: *golden,
            })
            .collect();
        let bus = self.bus(&reading.samples, &changes);
        let orders = self.orders(&changes);
        Snapshot {
            at: unix_ms,
            window_seconds: changes.seconds,
            sources: reading.sources,
            services,
            routes,
            bus,
            orders,
        }
    }

    fn services(
        &mut self,
        changes: &Changes,
        reading: &Reading,
        upstreams: &[Upstream],
    ) -> Vec<ServiceView> {
        let mut by_service: BTreeMap<&str, Vec<(&str, &Golden)>> = BTreeMap::new();
        for ((service, method), golden) in &changes.rpc {
            if !INFRASTRUCTURE.contains(&service.as_str()) {
                by_service
                    .entry(service)
                    .or_default()
                    .push((method, golden));
            }
        }
        let mut views: Vec<ServiceView> = upstreams
            .iter()
            .map(|upstream| ServiceView {
                name: upstream.name.clone(),
                grpc: upstream.grpc.clone(),
                health: Some(upstream.health.clone()),
                since: Some(upstream.since.clone()),
                replicas: reading.replicas(&upstream.name),
                golden: Golden::default(),
                rate_history: Vec::new(),
                methods: Vec::new(),
            })
            .collect();
        for service in by_service.keys() {
            if !views.iter().any(|view| view.grpc == *service) {
                views.push(ServiceView {
                    name: (*service).to_owned(),
                    grpc: (*service).to_owned(),
                    health: None,
                    since: None,
                    replicas: 0,
                    golden: Golden::default(),
                    rate_history: Vec::new(),
                    methods: Vec::new(),
                });
            }
        }
        for view in &mut views {
            let methods = by_service.remove(view.grpc.as_str()).unwrap_or_default();
            view.golden = changes
                .services
                .get(&view.grpc)
                .copied()
                .unwrap_or_default();
            view.methods = methods
                .into_iter()
                .filter(|(_, golden)| golden.rate > 0.0)
                .map(|(method, golden)| MethodView {
                    method: method.to_owned(),
                    golden: *golden,
                })
                .collect();
            view.rate_history = record(
                self.service_rates.entry(view.grpc.clone()).or_default(),
                view.golden.rate,
            );
        }
        views
    }

    fn bus(&mut self, samples: &[Sample], changes: &Changes) -> Option<BusView> {
        let mut streams: BTreeMap<String, StreamView> = BTreeMap::new();
        let mut consumers: BTreeMap<(String, String), f64> = BTreeMap::new();
        let label =
            |sample: &Sample, name: &str| sample.labels.get(name).cloned().unwrap_or_default();
        for sample in samples {
            let stream = label(sample, "messaging_destination_name");
            match sample.name.as_str() {
                "agora_outbox_backlog" => {
                    *stream_entry(&mut streams, &stream)
                        .backlog
                        .get_or_insert(0.0) += sample.value;
                }
                "agora_outbox_lag_seconds" => {
                    let lag = stream_entry(&mut streams, &stream)
                        .lag_seconds
                        .get_or_insert(0.0);
                    *lag = lag.max(sample.value);
                }
                "agora_consumer_lag" => {
                    let group = label(sample, "messaging_consumer_group_name");
                    *consumers.entry((stream, group)).or_default() += sample.value;
                }
                _ => {}
            }
        }
        if streams.is_empty() && consumers.is_empty() && changes.dead_lettered_per_minute.is_none()
        {
            return None;
        }
        let backlog: f64 = streams.values().filter_map(|s| s.backlog).sum();
        Some(BusView {
            streams: streams.into_values().collect(),
            consumers: consumers
                .into_iter()
                .map(|((stream, group), lag)| ConsumerView { stream, group, lag })
                .collect(),
            dead_lettered_per_minute: changes.dead_lettered_per_minute,
            backlog_history: record(&mut self.backlog, backlog),
        })
    }

    fn orders(&mut self, changes: &Changes) -> Option<OrdersView> {
        if changes.orders_per_minute.is_empty() {
            return None;
        }
        let mut now = BTreeMap::new();
        let mut history = BTreeMap::new();
        for outcome in OUTCOMES {
            let rate = changes
                .orders_per_minute
                .get(outcome)
                .copied()
                .unwrap_or(0.0);
            now.insert(outcome.to_owned(), rate);
            let kept = self.orders.entry(outcome.to_owned()).or_default();
            history.insert(outcome.to_owned(), record(kept, rate));
        }
        Some(OrdersView { now, history })
    }
}

/// The view of `stream`, added when first seen.
fn stream_entry<'a>(
    streams: &'a mut BTreeMap<String, StreamView>,
    stream: &str,
) -> &'a mut StreamView {
    streams
        .entry(stream.to_owned())
        .or_insert_with(|| StreamView {
            stream: stream.to_owned(),
            backlog: None,
            lag_seconds: None,
        })
}

/// Appends `value` to `history` (keeping the last [`HISTORY`]) and returns it in order.
fn record(history: &mut VecDeque<f64>, value: f64) -> Vec<f64> {
    history.push_back(value);
    while history.len() > HISTORY {
        history.pop_front();
    }
    history.iter().copied().collect()
}
