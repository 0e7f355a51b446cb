//! Reading the process's metrics as `/metrics` shows them, and running one test at a time.

use agora_platform::metrics::{
    Metrics,
    exposition::{Sample, matching, parse},
};
use tokio::sync::{Mutex, MutexGuard};

/// Held by each test for its whole run: the provider is the process's, so only one test may
/// record into it at a time.
pub(crate) async fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::const_new(());
    LOCK.lock().await
}

/// One scrape of the process's metrics.
pub(crate) struct Scrape(Vec<Sample>);

impl Scrape {
    /// What the process's provider says now, in the Prometheus text format, parsed.
    pub(crate) fn now() -> Self {
        let text = Metrics::global().render().expect("the provider renders");
        Self(parse(&text).expect("the exposition parses"))
    }

    /// The sum of the samples named `name` carrying `labels` (0 when there are none).
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        matching(&self.0, name, labels)
            .iter()
            .map(|sample| sample.value)
            .sum()
    }

    /// Whether any sample is named `name` with `labels`.
    pub(crate) fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        !matching(&self.0, name, labels).is_empty()
    }

    /// How much `name` with `labels` grew since `before`.
    pub(crate) fn added(&self, before: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels) - before.value(name, labels)
    }
}
