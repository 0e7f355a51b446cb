//! Points where tests hold or fail a saga, to force interleavings and failures. Disarmed
//! outside tests: nothing in the configuration arms them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, atomic::AtomicBool},
};

/// Points where a test can hold a saga or recovery, to force an interleaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// A saga holds its claim and is about to reserve.
    BeforeReserve,
    /// A saga reserved and is about to store its order.
    BeforeInsert,
    /// A call took a lapsed claim over and is about to release the old generation's stock.
    TakeOverBeforeRelease,
    /// Recovery took a lapsed claim over and is about to release its stock.
    RecoveryBeforeRelease,
    /// A duplicate call found the key held by a live holder and is about to wait for it.
    DuplicateWaiting,
    /// A WatchOrder call subscribed to its order's changes and read the order, and is about to
    /// start its stream.
    WatchAfterRead,
}

/// A held step: the code that reached it waits until [`Pause::resume`].
#[derive(Debug, Default)]
pub struct Pause {
    reached: tokio::sync::Notify,
    resume: tokio::sync::Notify,
}

impl Pause {
    /// Waits until the step is reached.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the held code go on.
    pub fn resume(&self) {
        self.resume.notify_one();
    }
}

/// Failure points tests can arm. [`crate::SERVICE`] always passes the disarmed default, so no
/// configuration can enable them; only [`crate::serve_with_hooks`] takes armed ones.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// Fail the next saga after its reservation and before its order is stored (it compensates).
    pub fail_after_reserve: Arc<AtomicBool>,
    /// Abandon the next saga after its reservation, leaving everything as a crash would.
    pub crash_after_reserve: Arc<AtomicBool>,
    /// Hold the next saga after its order is stored (PENDING) until `resume` is notified.
    pub hold_before_commit: Arc<AtomicBool>,
    /// Lets a held saga go on to its commit.
    pub resume: Arc<tokio::sync::Notify>,
    pauses: Arc<Mutex<HashMap<Step, Arc<Pause>>>>,
}

impl Hooks {
    /// Holds the next saga (or recovery pass) that reaches `step`, once.
    pub fn pause_at(&self, step: Step) -> Arc<Pause> {
        let pause = Arc::new(Pause::default());
        self.pauses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(step, Arc::clone(&pause));
        pause
    }

    pub(crate) async fn at(&self, step: Step) {
        let pause = self
            .pauses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&step);
        if let Some(pause) = pause {
            pause.reached.notify_one();
            pause.resume.notified().await;
        }
    }
}
