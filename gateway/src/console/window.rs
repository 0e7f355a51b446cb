//! What the console computes from the metrics: each reading folded into a [`Tally`] (cumulative
//! counts by service and method, by route, by order outcome), and the increase over the last
//! minute between two tallies: request rate, success rate, p50 and p99 ([`Golden`]).
//!
//! The arithmetic is Prometheus's: `increase` over the window (a counter that went down was
//! reset, so its whole new value is the increase) and `histogram_quantile` by linear
//! interpolation within the bucket the rank falls in.

use std::collections::{BTreeMap, VecDeque};

use agora_platform::metrics::exposition::Sample;
use serde::Serialize;

/// The gRPC status codes that are a fault of the server, counted as failures: UNKNOWN (2),
/// DEADLINE_EXCEEDED (4), UNIMPLEMENTED (12), INTERNAL (13), UNAVAILABLE (14), DATA_LOSS (15).
/// The others are the caller's doing (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, ...) or
/// its choice (CANCELLED), and a service that answers them is working.
pub const SERVER_FAULTS: [&str; 6] = ["2", "4", "12", "13", "14", "15"];

/// How far back the rates and quantiles look.
pub const WINDOW_SECONDS: f64 = 60.0;

const RPC: &str = "rpc_server_call_duration_seconds";
const HTTP: &str = "http_server_request_duration_seconds";
const ORDERS: &str = "agora_orders_total";
const DEAD_LETTERED: &str = "agora_events_dead_lettered_total";

/// A bucket's upper bound, ordered: bounds are never negative, and the bits of non-negative
/// floats (`+Inf` included) sort as the floats do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Bound(u64);

impl Bound {
    fn parse(le: &str) -> Option<Self> {
        let value: f64 = match le {
            "+Inf" => f64::INFINITY,
            other => other.parse().ok()?,
        };
        (value >= 0.0).then_some(Self(value.to_bits()))
    }

    fn value(self) -> f64 {
        f64::from_bits(self.0)
    }
}

/// The calls of one key so far: how many, how many failed, and the cumulative count of each
/// bucket (summed over statuses and sources).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calls {
    total: f64,
    failed: f64,
    buckets: BTreeMap<Bound, f64>,
}

impl Calls {
    /// Adds `other`'s calls to these (another method of the same service).
    fn add(&mut self, other: &Calls) {
        self.total += other.total;
        self.failed += other.failed;
        for (bound, count) in &other.buckets {
            *self.buckets.entry(*bound).or_default() += count;
        }
    }

    /// The increase from `then` (absent: the key appeared since) to `self`.
    fn since(&self, then: Option<&Calls>) -> Calls {
        match then {
            // Fewer calls than before: the process restarted and counts from zero again.
            Some(then) if then.total <= self.total => Calls {
                total: self.total - then.total,
                failed: (self.failed - then.failed).max(0.0),
                buckets: self
                    .buckets
                    .iter()
                    .map(|(bound, count)| {
                        let before = then.buckets.get(bound).copied().unwrap_or(0.0);
                        (*bound, (count - before).max(0.0))
                    })
                    .collect(),
            },
            _ => self.clone(),
        }
    }
}

/// A key's golden numbers over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Golden {
    /// Calls per second.
    pub rate: f64,
    /// The share of calls that did not fail (0 to 1); none without calls.
    pub success: Option<f64>,
    /// The median duration, in seconds; none without calls.
    pub p50: Option<f64>,
    /// The 99th percentile duration, in seconds; none without calls.
    pub p99: Option<f64>,
}

impl Golden {
    /// The numbers of `increase`, the calls of a window `seconds` long.
    pub fn of(increase: &Calls, seconds: f64) -> Self {
        if increase.total <= 0.0 || seconds <= 0.0 {
            return Self::default();
        }
        let buckets: Vec<(f64, f64)> = increase
            .buckets
            .iter()
            .map(|(bound, count)| (bound.value(), *count))
            .collect();
        Self {
            rate: increase.total / seconds,
            success: Some(1.0 - increase.failed / increase.total),
            p50: quantile(0.5, &buckets),
            p99: quantile(0.99, &buckets),
        }
    }
}

/// Prometheus's `histogram_quantile`: `buckets` are (upper bound, cumulative count) in order,
/// the last `+Inf`. The rank falls in a bucket, and the answer is interpolated linearly between
/// its bounds (from 0 for the first); in the `+Inf` bucket it is the highest finite bound.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let (_, total) = *buckets.last()?;
    if total <= 0.0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total;
    let at = buckets.iter().position(|(_, count)| *count >= rank)?;
    let (upper, count) = buckets[at];
    if upper.is_infinite() {
        return Some(if at == 0 { 0.0 } else { buckets[at - 1].0 });
    }
    let (lower, below) = if at == 0 { (0.0, 0.0) } else { buckets[at - 1] };
    let inside = count - below;
    if inside <= 0.0 {
        return Some(upper);
    }
    Some(lower + (upper - lower) * (rank - below) / inside)
}

/// One reading of the metrics, folded by what the console shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// gRPC calls by (service, method).
    pub rpc: BTreeMap<(String, String), Calls>,
    /// Edge requests by (route, HTTP method); a 5xx is a failure.
    pub http: BTreeMap<(String, String), Calls>,
    /// Orders by outcome (`placed`, `failed`, `cancelled`); empty when no process counts them.
    pub orders: BTreeMap<String, f64>,
    /// Events dead-lettered, all streams together; none when no process counts them.
    pub dead_lettered: Option<f64>,
}

impl Tally {
    /// Folds `samples` (of every source together).
    pub fn of(samples: &[Sample]) -> Self {
        let mut tally = Self::default();
        for sample in samples {
            let label = |name: &str| sample.labels.get(name).cloned().unwrap_or_default();
            if let Some(suffix) = sample.name.strip_prefix(RPC) {
                let key = (label("rpc_service"), label("rpc_method"));
                let failed = SERVER_FAULTS.contains(&label("rpc_grpc_status_code").as_str());
                add(tally.rpc.entry(key).or_default(), suffix, sample, failed);
            } else if let Some(suffix) = sample.name.strip_prefix(HTTP) {
                let key = (label("http_route"), label("http_request_method"));
                let failed = label("http_response_status_code").starts_with('5');
                add(tally.http.entry(key).or_default(), suffix, sample, failed);
            } else if sample.name == ORDERS {
                *tally
                    .orders
                    .entry(label("agora_order_outcome"))
                    .or_default() += sample.value;
            } else if sample.name == DEAD_LETTERED {
                *tally.dead_lettered.get_or_insert(0.0) += sample.value;
            }
        }
        tally
    }
}

fn add(calls: &mut Calls, suffix: &str, sample: &Sample, failed: bool) {
    match suffix {
        "_count" => {
            calls.total += sample.value;
            if failed {
                calls.failed += sample.value;
            }
        }
        "_bucket" => {
            if let Some(bound) = sample.labels.get("le").and_then(|le| Bound::parse(le)) {
                *calls.buckets.entry(bound).or_default() += sample.value;
            }
        }
        _ => {}
    }
}

/// The readings of the last minute (and the one just before it, the baseline).
#[derive(Debug, Default)]
pub struct Window {
    readings: VecDeque<(f64, Tally)>,
}

/// What changed over the window, by key.
#[derive(Debug, Default)]
pub struct Changes {
    /// How long the window really is, in seconds (shorter just after start-up).
    pub seconds: f64,
    /// Golden numbers by (service, method).
    pub rpc: BTreeMap<(String, String), Golden>,
    /// Golden numbers by service, its methods' calls together.
    pub services: BTreeMap<String, Golden>,
    /// Golden numbers by (route, HTTP method).
    pub http: BTreeMap<(String, String), Golden>,
    /// Orders per minute by outcome.
    pub orders_per_minute: BTreeMap<String, f64>,
    /// Events dead-lettered per minute.
    pub dead_lettered_per_minute: Option<f64>,
}

impl Window {
    /// Adds the reading taken at `at` (seconds on a monotonic clock) and forgets those older
    /// than the baseline it needs.
    pub fn push(&mut self, at: f64, tally: Tally) {
        self.readings.push_back((at, tally));
        // Keep the newest reading at least a window old, as the baseline.
        while self
            .readings
            .get(1)
            .is_some_and(|(second, _)| at - second >= WINDOW_SECONDS)
        {
            self.readings.pop_front();
        }
    }

    /// The increase from the baseline to the newest reading; nothing before two readings.
    pub fn changes(&self) -> Option<Changes> {
        let (then_at, then) = self.readings.front()?;
        let (now_at, now) = self.readings.back()?;
        let seconds = now_at - then_at;
        if seconds <= 0.0 {
            return None;
        }
        let increases = |now: &BTreeMap<(String, String), Calls>,
                         then: &BTreeMap<(String, String), Calls>| {
            now.iter()
                .map(|(key, calls)| (key.clone(), calls.since(then.get(key))))
                .collect::<BTreeMap<_, _>>()
        };
        let golden = |increases: &BTreeMap<(String, String), Calls>| {
            increases
                .iter()
                .map(|(key, calls)| (key.clone(), Golden::of(calls, seconds)))
                .collect()
        };
        let rpc = increases(&now.rpc, &then.rpc);
        let mut services: BTreeMap<String, Calls> = BTreeMap::new();
        for ((service, _), calls) in &rpc {
            services.entry(service.clone()).or_default().add(calls);
        }
        let per_minute = |now: f64, then: Option<f64>| {
            let increase = match then {
                Some(then) if then <= now => now - then,
                _ => now,
            };
            increase * 60.0 / seconds
        };
        Some(Changes {
            seconds,
            rpc: golden(&rpc),
            services: services
                .iter()
                .map(|(service, calls)| (service.clone(), Golden::of(calls, seconds)))
                .collect(),
            http: golden(&increases(&now.http, &then.http)),
            orders_per_minute: now
                .orders
                .iter()
                .map(|(outcome, count)| {
                    let rate = per_minute(*count, then.orders.get(outcome).copied());
                    (outcome.clone(), rate)
                })
                .collect(),
            dead_lettered_per_minute: now
                .dead_lettered
                .map(|count| per_minute(count, then.dead_lettered)),
        })
    }
}
