//! The process and its Tokio runtime, read each time the metrics are collected (a scrape, an
//! OTLP export), so they cost nothing between reads.
//!
//! - `process.cpu.time` (counter, s): user and system CPU time, from `/proc/self/stat`.
//! - `process.memory.usage` (gauge, By): resident memory, `VmRSS` of `/proc/self/status`.
//! - `process.open_file_descriptor.count` (gauge): the entries of `/proc/self/fd`.
//! - `agora.runtime.workers`, `agora.runtime.workers.busy` (the fraction of the workers' time
//!   spent polling tasks since the previous read, 0 to 1), `agora.runtime.global_queue.depth`
//!   and `agora.runtime.tasks.alive`: the runtime the provider was made in, from Tokio's stable
//!   `RuntimeMetrics`.
//!
//! Where `/proc` is missing (not Linux) the process's instruments observe nothing.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use opentelemetry::metrics::Meter;
use tokio::runtime::{Handle, RuntimeMetrics};

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`: 100 on every Linux ABI).
const TICKS_PER_SEC: f64 = 100.0;

/// Registers the process's and the current runtime's observable instruments on `meter`.
pub(super) fn observe(meter: &Meter) {
    meter
        .f64_observable_counter("process.cpu.time")
        .with_unit("s")
        .with_description("CPU time the process has used, user and system")
        .with_callback(|observer| {
            if let Some(seconds) = cpu_seconds() {
                observer.observe(seconds, &[]);
            }
        })
        .build();
    meter
        .u64_observable_gauge("process.memory.usage")
        .with_unit("By")
        .with_description("Resident memory of the process")
        .with_callback(|observer| {
            if let Some(bytes) = resident_bytes() {
                observer.observe(bytes, &[]);
            }
        })
        .build();
    gauge(
        meter,
        "process.open_file_descriptor.count",
        "File descriptors the process has open",
        open_descriptors,
    );
    if let Ok(runtime) = Handle::try_current() {
        observe_runtime(meter, runtime);
    }
}

/// A figure the Tokio runtime keeps.
type Figure = fn(&RuntimeMetrics) -> usize;

fn observe_runtime(meter: &Meter, runtime: Handle) {
    let gauges: [(&'static str, &'static str, Figure); 3] = [
        (
            "agora.runtime.workers",
            "Worker threads of the Tokio runtime",
            RuntimeMetrics::num_workers,
        ),
        (
            "agora.runtime.global_queue.depth",
            "Tasks waiting in the Tokio runtime's global queue",
            RuntimeMetrics::global_queue_depth,
        ),
        (
            "agora.runtime.tasks.alive",
            "Tasks alive in the Tokio runtime",
            RuntimeMetrics::num_alive_tasks,
        ),
    ];
    for (name, description, figure) in gauges {
        let runtime = runtime.clone();
        gauge(meter, name, description, move || {
            Some(figure(&runtime.metrics()) as u64)
        });
    }
    let busy = Busy::new(runtime);
    meter
        .f64_observable_gauge("agora.runtime.workers.busy")
        .with_description(
            "The fraction of the Tokio workers' time spent polling tasks since the last read",
        )
        .with_callback(move |observer| observer.observe(busy.read(), &[]))
        .build();
}

/// A gauge named `name` that `read`s its value each time metrics are collected (and reports
/// nothing when `read` has no value).
fn gauge(
    meter: &Meter,
    name: &'static str,
    description: &'static str,
    read: impl Fn() -> Option<u64> + Send + Sync + 'static,
) {
    meter
        .u64_observable_gauge(name)
        .with_description(description)
        .with_callback(move |observer| {
            if let Some(value) = read() {
                observer.observe(value, &[]);
            }
        })
        .build();
}

/// The workers' busy time at the previous read, to turn the runtime's running total into a
/// fraction of the time since.
struct Busy {
    runtime: Handle,
    last: Mutex<(Instant, Duration)>,
}

impl Busy {
    fn new(runtime: Handle) -> Self {
        let total = total_busy(&runtime);
        Self {
            runtime,
            last: Mutex::new((Instant::now(), total)),
        }
    }

    /// The fraction of the workers' time busy since the previous read (0 to 1).
    fn read(&self) -> f64 {
        let now = Instant::now();
        let total = total_busy(&self.runtime);
        let workers = self.runtime.metrics().num_workers().max(1);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (then, before) = std::mem::replace(&mut *last, (now, total));
        let elapsed = now.saturating_duration_since(then).as_secs_f64() * workers as f64;
        if elapsed <= 0.0 {
            return 0.0;
        }
        (total.saturating_sub(before).as_secs_f64() / elapsed).clamp(0.0, 1.0)
    }
}

fn total_busy(runtime: &Handle) -> Duration {
    let metrics = runtime.metrics();
    (0..metrics.num_workers())
        .map(|worker| metrics.worker_total_busy_duration(worker))
        .sum()
}

/// User plus system CPU seconds: fields 14 and 15 of `/proc/self/stat`, counted after the
/// command name (which may hold spaces, but ends at the last `)`).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_seconds_of(&stat)
}

fn cpu_seconds_of(stat: &str) -> Option<f64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (the state): utime and stime are fields 14 and 15.
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / TICKS_PER_SEC)
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The entries of `/proc/self/fd` (the directory's own handle, open while it is read, included).
fn open_descriptors() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{
        Metrics,
        exposition::{matching, parse},
    };

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_process_and_its_runtime_are_on_the_metrics_with_sane_values() {
        let metrics = Metrics::private();
        // Work for a worker, until the process has used at least 50 ms of CPU (the machine is
        // shared: wall time says little), within five seconds.
        let spun = tokio::spawn(async {
            let start = Instant::now();
            let mut x = 0u64;
            while cpu_seconds().expect("/proc") < 0.05 && start.elapsed() < Duration::from_secs(5) {
                for _ in 0..100_000 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            }
            x
        });
        spun.await.expect("spun");
        let text = metrics.render().expect("rendered");
        let samples = parse(&text).expect("the text format");
        let one = |name: &str| {
            let found = matching(&samples, name, &[]);
            assert_eq!(found.len(), 1, "{name} in {text}");
            found[0].value
        };
        let cpu = one("process_cpu_time_seconds_total");
        assert!((0.05..3600.0).contains(&cpu), "{cpu}");
        let resident = one("process_memory_usage_bytes");
        assert!((1e6..24e9).contains(&resident), "{resident}");
        let descriptors = one("process_open_file_descriptor_count");
        assert!((3.0..65_536.0).contains(&descriptors), "{descriptors}");
        assert_eq!(one("agora_runtime_workers"), 2.0);
        let busy = one("agora_runtime_workers_busy");
        assert!((0.0..=1.0).contains(&busy), "{busy}");
        let alive = one("agora_runtime_tasks_alive");
        assert!((0.0..1000.0).contains(&alive), "{alive}");
        let queued = one("agora_runtime_global_queue_depth");
        assert!((0.0..1000.0).contains(&queued), "{queued}");
        // The counter only grows.
        let later = parse(&metrics.render().expect("rendered")).expect("the text format");
        let again = matching(&later, "process_cpu_time_seconds_total", &[])[0].value;
        assert!(again >= cpu);
    }

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (agora (serve) x) S 1 4242 4242 0 -1 4194560 3 0 0 0 250 75 0 0 20 0";
        assert_eq!(cpu_seconds_of(stat), Some(3.25));
        assert_eq!(cpu_seconds_of("4242 (agora"), None);
        assert_eq!(cpu_seconds_of("4242 (agora) S 1"), None);
    }
}
