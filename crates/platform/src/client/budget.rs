//! The retry budget: retries may add a fraction of the calls made, plus a few a second, counted
//! over a sliding window.
//!
//! This is the arithmetic of tower's `TpsBudget` (and Finagle's, which Linkerd uses), written
//! again because tower 0.5's expiry zeroes one slot too many whenever a little more than one slot
//! has passed, which is nearly always in real time: the budget then remembers about half its
//! window and allows about twice the retries it promises. Here the window is ten slots, each
//! call's deposit and each retry's withdrawal land in the current slot, and a slot is forgotten
//! exactly one window after it started.

use std::sync::Mutex;

use tokio::time::{Duration, Instant};
use tower::retry::budget::Budget;

/// How many slots the window is cut into.
const SLOTS: usize = 10;

/// A retry budget shared by every call to one upstream.
#[derive(Debug)]
pub struct RetryBudget {
    slots: Mutex<Slots>,
    /// The length of one slot (a tenth of the window).
    slot: Duration,
    /// Always available: `min_per_sec` retries for each second of the window.
    reserve: i64,
    /// What one call adds and one retry takes, in units that make the ratio whole numbers.
    deposit: i64,
    withdraw: i64,
}

#[derive(Debug)]
struct Slots {
    counts: [i64; SLOTS],
    current: usize,
    /// When the current slot started.
    started: Instant,
}

impl RetryBudget {
    /// A budget allowing `ratio` retries per call (0.2: one retry for five calls) plus
    /// `min_per_sec` retries a second, both counted over `window` (clamped to 1–60 s).
    pub fn new(window: Duration, min_per_sec: u32, ratio: f32) -> Self {
        let window = window.clamp(Duration::from_secs(1), Duration::from_secs(60));
        let ratio = ratio.clamp(0.0, 1000.0);
        // A call deposits `deposit` units, a retry withdraws `withdraw`: 0.2 becomes 1 and 5.
        let (deposit, withdraw) = if ratio == 0.0 {
            (0, 1)
        } else if ratio <= 1.0 {
            (1, (1.0 / ratio).round() as i64)
        } else {
            (1000, (1000.0 / ratio).round().max(1.0) as i64)
        };
        let seconds = i64::try_from(window.as_secs()).unwrap_or(60);
        Self {
            slots: Mutex::new(Slots {
                counts: [0; SLOTS],
                current: 0,
                started: Instant::now(),
            }),
            slot: window / SLOTS as u32,
            reserve: i64::from(min_per_sec) * seconds * withdraw,
            deposit,
            withdraw,
        }
    }

    /// The slots as of now: every slot that began a whole window ago or more is forgotten.
    fn current(&self) -> std::sync::MutexGuard<'_, Slots> {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let passed = now.saturating_duration_since(slots.started).as_nanos() / self.slot.as_nanos();
        let steps = usize::try_from(passed).unwrap_or(usize::MAX);
        for _ in 0..steps.min(SLOTS) {
            slots.current = (slots.current + 1) % SLOTS;
            let current = slots.current;
            slots.counts[current] = 0;
        }
        if steps >= SLOTS {
            slots.started = now;
        } else {
            // `steps` is below SLOTS, so the multiplication cannot overflow.
            slots.started += self.slot * steps as u32;
        }
        slots
    }
}

impl Budget for RetryBudget {
    fn deposit(&self) {
        let mut slots = self.current();
        let current = slots.current;
        slots.counts[current] += self.deposit;
    }

    fn withdraw(&self) -> bool {
        let mut slots = self.current();
        let balance = self.reserve + slots.counts.iter().sum::<i64>();
        if balance < self.withdraw {
            return false;
        }
        let current = slots.current;
        slots.counts[current] -= self.withdraw;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retries granted when one is asked for every `every` for `how_long`, with `calls_per_ask`
    /// calls made before each ask.
    async fn granted(
        budget: &RetryBudget,
        every: Duration,
        how_long: Duration,
        calls_per_ask: u32,
    ) -> u32 {
        let end = Instant::now() + how_long;
        let mut granted = 0;
        while Instant::now() < end {
            for _ in 0..calls_per_ask {
                budget.deposit();
            }
            if budget.withdraw() {
                granted += 1;
            }
            tokio::time::advance(every).await;
        }
        granted
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_calls_the_floor_is_min_per_sec_over_each_window_and_no_more() {
        let budget = RetryBudget::new(Duration::from_secs(10), 10, 0.2);
        // Asked every 7 ms (never a whole number of slots) for just under three windows: the
        // reserve of 100 is spent at once and comes back only as each spent slot ages out.
        let total = granted(
            &budget,
            Duration::from_millis(7),
            Duration::from_millis(29_990),
            0,
        )
        .await;
        assert_eq!(total, 300);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_add_a_fifth_of_a_retry_each() {
        let budget = RetryBudget::new(Duration::from_secs(10), 10, 0.2);
        // 30 calls a second, each wanting a retry, for one window: 100 from the floor plus 20%
        // of the 300 calls.
        let total = granted(
            &budget,
            Duration::from_millis(1000 / 30),
            Duration::from_secs(10),
            1,
        )
        .await;
        assert!((158..=161).contains(&total), "{total}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_left_idle_for_longer_than_its_window_starts_afresh() {
        let budget = RetryBudget::new(Duration::from_secs(10), 1, 0.2);
        for _ in 0..10 {
            assert!(budget.withdraw());
        }
        assert!(!budget.withdraw(), "the reserve of 10 is spent");
        tokio::time::advance(Duration::from_secs(45)).await;
        assert!(budget.withdraw(), "forgotten after a whole window");
    }
}
