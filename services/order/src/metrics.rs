//! The order service's instruments: orders by outcome, how long sagas take, compensations,
//! recoveries and open watches. Every attribute value is one of a fixed few.

use std::time::Instant;

use agora_platform::metrics::{Instruments, counter, seconds};
use opentelemetry::{
    KeyValue,
    metrics::{Counter, Histogram, UpDownCounter},
};

/// How an order ended, as `agora.order.outcome` of `agora.orders`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Its reservation was committed and it was confirmed.
    Placed,
    /// Its saga failed: it was refused (no stock, products unavailable, ...) or its
    /// reservation could not be committed.
    Failed,
    /// It was cancelled.
    Cancelled,
}

/// How one saga under a claim ended, as `agora.order.outcome` of `agora.order.saga.duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saga {
    /// Its order was stored.
    Placed,
    /// It failed with nothing to give back.
    Failed,
    /// It failed after its reservation and gave the stock back.
    Compensated,
}

/// The instruments, in the process's meter provider.
#[derive(Debug)]
pub struct OrderMetrics {
    orders: Counter<u64>,
    saga: Histogram<f64>,
    compensations: Counter<u64>,
    recoveries: Counter<u64>,
    watches: UpDownCounter<i64>,
}

static METRICS: Instruments<OrderMetrics> = Instruments::new(|meter| OrderMetrics {
    orders: counter(
        meter,
        "agora.orders",
        "Orders placed (confirmed), failed and cancelled",
    ),
    saga: seconds(
        meter,
        "agora.order.saga.duration",
        "How long each placing saga took, by how it ended",
    ),
    compensations: counter(
        meter,
        "agora.order.compensations",
        "Reservations given back because their saga failed after them",
    ),
    recoveries: counter(
        meter,
        "agora.order.recoveries",
        "Unfinished sagas repaired by recovery: lapsed claims released, stuck orders settled",
    ),
    watches: meter
        .i64_up_down_counter("agora.order.watch.streams")
        .with_description("Open WatchOrder streams")
        .build(),
});

/// The order service's instruments (made on first use).
pub fn metrics() -> &'static OrderMetrics {
    METRICS.get()
}

fn outcome(value: &'static str) -> [KeyValue; 1] {
    [KeyValue::new("agora.order.outcome", value)]
}

impl OrderMetrics {
    /// One order ended as `order`.
    pub fn order(&self, order: Order) {
        let value = match order {
            Order::Placed => "placed",
            Order::Failed => "failed",
            Order::Cancelled => "cancelled",
        };
        self.orders.add(1, &outcome(value));
    }

    /// One saga, begun at `started`, ended as `saga`.
    pub fn saga(&self, started: Instant, saga: Saga) {
        let value = match saga {
            Saga::Placed => "placed",
            Saga::Failed => "failed",
            Saga::Compensated => "compensated",
        };
        self.saga
            .record(started.elapsed().as_secs_f64(), &outcome(value));
    }

    /// One failed saga's reservation was given back.
    pub fn compensated(&self) {
        self.compensations.add(1, &[]);
    }

    /// Recovery repaired `count` sagas.
    pub fn recovered(&self, count: usize) {
        if count > 0 {
            self.recoveries.add(count as u64, &[]);
        }
    }

    /// A watch stream opened (`1`) or ended (`-1`).
    pub fn watches(&self, change: i64) {
        self.watches.add(change, &[]);
    }
}
