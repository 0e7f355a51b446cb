//! Leases: counts a replica takes from a shared counter at once and spends locally, so a busy
//! client costs one round trip to the shared cache per lease instead of one per request.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// The most counts one lease takes from a shared counter.
pub const MAX_LEASE: u64 = 100;

/// How many counts a replica takes at once from a shared counter of budget `limit`.
pub(super) fn lease_size(limit: u64) -> u64 {
    (limit / 32).clamp(1, MAX_LEASE)
}

/// Counts leased from shared counters, by key.
#[derive(Debug, Default)]
pub(super) struct Leases {
    by_key: HashMap<String, Lease>,
    /// Leases taken since the last sweep of ended windows, so memory stays bounded by the
    /// clients of the current windows.
    taken: usize,
}

/// Consecutive counts `next..end` of one counter's window, which ends at `ends`. A refusal is a
/// lease whose `next` is past the budget.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lease {
    pub(super) next: u64,
    pub(super) end: u64,
    pub(super) ends: Instant,
}

impl Leases {
    /// The next count of `key` when a lease of it is still open (or refused) in this window.
    pub(super) fn spend(&mut self, key: &str, limit: u64, now: Instant) -> Option<(u64, Duration)> {
        let lease = self.by_key.get_mut(key)?;
        if lease.ends <= now {
            return None;
        }
        if lease.next > limit {
            return Some((lease.next, lease.ends - now));
        }
        if lease.next >= lease.end {
            return None;
        }
        let count = lease.next;
        lease.next += 1;
        Some((count, lease.ends - now))
    }

    /// Keeps `lease` of `key`, sweeping leases of ended windows now and then.
    pub(super) fn keep(&mut self, key: String, lease: Lease, now: Instant) {
        self.taken += 1;
        if self.taken >= 1024 {
            self.taken = 0;
            self.by_key.retain(|_, lease| lease.ends > now);
        }
        self.by_key.insert(key, lease);
    }
}

/// The lock is held for a map lookup only, never across an await; a poisoned map is still
/// consistent.
pub(super) fn lock(leases: &Mutex<Leases>) -> std::sync::MutexGuard<'_, Leases> {
    leases
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
