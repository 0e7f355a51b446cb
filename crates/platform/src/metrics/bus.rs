//! The event bus's instruments: the outbox's backlog and lag, each consumer group's lag, and
//! the events consumers gave up on.
//!
//! Every attribute is bounded: `messaging.destination.name` is the producer's stream as the
//! services name it (`order`, `product`, ...), without the deployment's key prefix, and
//! `messaging.consumer.group.name` is the consuming service's name.

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Gauge},
};

use super::{Instruments, counter, gauge};

/// The bus's instruments, in the process's meter provider.
#[derive(Debug)]
pub struct BusMetrics {
    backlog: Gauge<u64>,
    lag: Gauge<f64>,
    consumer_lag: Gauge<u64>,
    dead_lettered: Counter<u64>,
}

static BUS: Instruments<BusMetrics> = Instruments::new(|meter| BusMetrics {
    backlog: gauge(
        meter,
        "agora.outbox.backlog",
        "Events in the outbox not yet published to the stream",
    ),
    lag: meter
        .f64_gauge("agora.outbox.lag")
        .with_unit("s")
        .with_description("Age of the oldest event not yet published (0 when none)")
        .build(),
    consumer_lag: gauge(
        meter,
        "agora.consumer.lag",
        "Events of the stream the consumer group has not acknowledged: never read, or read and \
         still pending",
    ),
    dead_lettered: counter(
        meter,
        "agora.events.dead_lettered",
        "Events a consumer group gave up on and set aside",
    ),
});

/// The bus's instruments of this process (made on first use).
pub fn bus() -> &'static BusMetrics {
    BUS.get()
}

fn stream(stream: &str) -> KeyValue {
    KeyValue::new("messaging.destination.name", stream.to_owned())
}

fn stream_and_group(producer: &str, group: &str) -> [KeyValue; 2] {
    [
        stream(producer),
        KeyValue::new("messaging.consumer.group.name", group.to_owned()),
    ]
}

impl BusMetrics {
    /// The outbox of `producer` holds `backlog` unpublished events, the oldest `lag_seconds` old.
    pub fn outbox(&self, producer: &str, backlog: u64, lag_seconds: f64) {
        let attributes = [stream(producer)];
        self.backlog.record(backlog, &attributes);
        self.lag.record(lag_seconds.max(0.0), &attributes);
    }

    /// `group` has `lag` events of `producer`'s stream still to acknowledge.
    pub fn consumer_lag(&self, producer: &str, group: &str, lag: u64) {
        self.consumer_lag
            .record(lag, &stream_and_group(producer, group));
    }

    /// `group` set aside one event of `producer`'s stream.
    pub fn dead_lettered(&self, producer: &str, group: &str) {
        self.dead_lettered
            .add(1, &stream_and_group(producer, group));
    }
}
