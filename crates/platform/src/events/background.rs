//! [`Background`]: the tasks that run beside a service and stop with it.

/// Tasks that run beside a service (relays, consumers, sweepers) and stop with it: dropping this
/// aborts them. Aborting is safe: each task's work is a transaction that either commits or
/// rolls back, and unacknowledged events are redelivered.
#[derive(Debug, Default)]
pub struct Background(Vec<tokio::task::AbortHandle>);

impl Background {
    /// Runs `task` until this value is dropped.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(task).abort_handle());
    }

    /// Takes over another set of tasks.
    pub fn extend(&mut self, other: Background) {
        let mut other = other;
        self.0.append(&mut other.0);
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
