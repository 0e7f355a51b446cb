//! A circuit breaker per upstream: after `failure_threshold` failures in a row it opens and
//! calls fail fast with UNAVAILABLE for `open_for`; then one probe goes through, and its outcome
//! closes the breaker or opens it again. Failing fast keeps a dead upstream from holding every
//! caller until its deadline, and gives it room to recover.
//!
//! The state machine takes the time as an argument, so tests drive it without sleeping.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use tonic::{Code, Status};

use crate::metrics::{BreakerState, ClientMetrics};

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// Failures in a row that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before letting a probe through.
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Calls go through; counts failures in a row.
    Closed { failures: u32 },
    /// Calls fail fast until the instant.
    Open { until: Instant },
    /// One probe is out; the others fail fast until it reports.
    Probing,
}

/// Whether an upstream's answer counts as a failure of the upstream (not of the request).
pub fn is_upstream_failure(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Internal
    )
}

impl State {
    /// What `agora.client.breaker.state` shows of it.
    fn shown(self) -> BreakerState {
        match self {
            Self::Closed { .. } => BreakerState::Closed,
            Self::Probing => BreakerState::HalfOpen,
            Self::Open { .. } => BreakerState::Open,
        }
    }
}

/// One upstream's breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    name: String,
    settings: BreakerSettings,
    state: Mutex<State>,
    /// Where its state and transitions are recorded.
    metrics: ClientMetrics,
}

impl CircuitBreaker {
    /// A closed breaker for the upstream called `name`, recorded in the process's metrics.
    pub fn new(name: impl Into<String>, settings: BreakerSettings) -> Self {
        Self::with_metrics(name, settings, ClientMetrics::global().clone())
    }

    /// [`CircuitBreaker::new`], recorded in `metrics`.
    pub fn with_metrics(
        name: impl Into<String>,
        settings: BreakerSettings,
        metrics: ClientMetrics,
    ) -> Self {
        let name = name.into();
        metrics.breaker(&name, BreakerState::Closed, false);
        Self {
            name,
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
            metrics,
        }
    }

    /// Records a change from `before` to `after`, if the state shown changed.
    fn changed(&self, before: State, after: State) {
        if before.shown() != after.shown() {
            self.metrics.breaker(&self.name, after.shown(), true);
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-update of a Copy value: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks to send a call now.
    ///
    /// # Errors
    /// UNAVAILABLE while the breaker is open or a probe is out.
    pub fn admit(&self) -> Result<(), Status> {
        self.admit_at(Instant::now())
    }

    /// [`CircuitBreaker::admit`] at `now`.
    ///
    /// # Errors
    /// As [`CircuitBreaker::admit`].
    pub fn admit_at(&self, now: Instant) -> Result<(), Status> {
        let mut state = self.state();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now >= until => {
                *state = State::Probing;
                self.changed(State::Open { until }, State::Probing);
                Ok(())
            }
            State::Open { .. } | State::Probing => Err(Status::unavailable(format!(
                "the {} service is failing; not calling it for a while",
                self.name
            ))),
        }
    }

    /// Records the outcome of an admitted call.
    pub fn record(&self, failed: bool) {
        self.record_at(Instant::now(), failed);
    }

    /// [`CircuitBreaker::record`] at `now`.
    pub fn record_at(&self, now: Instant, failed: bool) {
        let mut state = self.state();
        let open = State::Open {
            until: now + self.settings.open_for,
        };
        let before = *state;
        *state = match (before, failed) {
            (_, false) => State::Closed { failures: 0 },
            (State::Closed { failures }, true)
                if failures + 1 >= self.settings.failure_threshold =>
            {
                tracing::warn!(upstream = %self.name, "circuit opened");
                open
            }
            (State::Closed { failures }, true) => State::Closed {
                failures: failures + 1,
            },
            (State::Probing | State::Open { .. }, true) => open,
        };
        self.changed(before, *state);
    }

    /// Whether calls fail fast right now.
    pub fn is_open(&self) -> bool {
        !matches!(*self.state(), State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(
            "inventory",
            BreakerSettings {
                failure_threshold: 3,
                open_for: Duration::from_secs(5),
            },
        )
    }

    /// A breaker opened by three failures in a row, once its open period is over and its one
    /// probe is admitted; and the instant of the probe.
    fn probing() -> (CircuitBreaker, Instant) {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            b.record_at(t, true);
        }
        let probe = t + Duration::from_secs(5);
        b.admit_at(probe).expect("the probe");
        (b, probe)
    }

    #[test]
    fn repeated_failures_open_the_breaker_and_calls_then_fail_fast_with_unavailable() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            b.admit_at(t).expect("closed");
            b.record_at(t, true);
        }
        let refused = b.admit_at(t + Duration::from_secs(1)).expect_err("open");
        assert_eq!(refused.code(), Code::Unavailable);
        assert!(refused.message().contains("inventory"));
    }

    #[test]
    fn a_success_resets_the_count_of_failures_in_a_row() {
        let b = breaker();
        let t = Instant::now();
        for failed in [true, true, false, true, true] {
            b.admit_at(t).expect("still closed");
            b.record_at(t, failed);
        }
        assert!(!b.is_open());
    }

    #[test]
    fn after_the_open_period_one_probe_goes_through_and_its_success_closes_the_breaker() {
        let (b, later) = probing();
        assert!(b.admit_at(later).is_err(), "only one probe at a time");
        b.record_at(later, false);
        b.admit_at(later).expect("closed again");
        assert!(!b.is_open());
    }

    #[test]
    fn a_failed_probe_opens_the_breaker_for_another_period() {
        let (b, probe) = probing();
        b.record_at(probe, true);
        assert!(b.admit_at(probe + Duration::from_secs(4)).is_err());
        b.admit_at(probe + Duration::from_secs(5))
            .expect("the next probe");
    }

    #[test]
    fn business_errors_are_not_upstream_failures() {
        assert!(is_upstream_failure(&Status::unavailable("down")));
        assert!(!is_upstream_failure(&Status::failed_precondition(
            "no stock"
        )));
        assert!(!is_upstream_failure(&Status::not_found("no such order")));
    }
}
