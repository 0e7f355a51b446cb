//! Retries of idempotent calls, within a budget, behind a circuit breaker.
//!
//! tower's retry layer replays the HTTP request, but a tonic request's body is a stream that is
//! consumed once. [`Resilient::call`] therefore keeps the request *message* (cheap to clone) and
//! builds a fresh `tonic::Request` for each attempt; the channel underneath ([`super::Propagate`])
//! adds the deadline, request id, trace context and token to every attempt.
//!
//! The retry budget ([`RetryBudget`], tower's `TpsBudget` arithmetic as Linkerd sets it): retries
//! may add 20% to the calls made, plus 10 a second, so a failing upstream sees at most that much
//! extra load from this client however many callers retry at once.

use std::{future::Future, time::Duration};

use tonic::{Code, Status};
use tower::retry::budget::Budget;

use super::breaker::{BreakerSettings, CircuitBreaker, is_upstream_failure};
use super::budget::RetryBudget;
use crate::context::CallContext;
use crate::metrics::{ClientMetrics, RetryOutcome};

/// Whether a call may be sent twice without harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Sending it twice has the effect of sending it once (reads, calls keyed by an id).
    Idempotent,
    /// Never resent.
    NotIdempotent,
}

/// How often and how fast to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetrySettings {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// The backoff before the first retry; it doubles for each next one.
    pub base_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// Retries allowed on top of the calls, as a fraction of them.
    pub retry_ratio: f32,
    /// Retries allowed per second regardless of the calls made.
    pub min_retries_per_sec: u32,
    /// The window over which calls and retries are counted.
    pub budget_window: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_millis(500),
            retry_ratio: 0.2,
            min_retries_per_sec: 10,
            budget_window: Duration::from_secs(10),
        }
    }
}

/// One upstream's retry budget and circuit breaker.
#[derive(Debug)]
pub struct Resilient {
    name: String,
    settings: RetrySettings,
    budget: RetryBudget,
    breaker: CircuitBreaker,
    /// Where retries taken and refused are counted.
    metrics: ClientMetrics,
}

impl Resilient {
    /// Retries and breaking for the upstream called `name`, recorded in the process's metrics.
    pub fn new(name: &str, settings: RetrySettings, breaker: BreakerSettings) -> Self {
        Self::with_metrics(name, settings, breaker, ClientMetrics::global().clone())
    }

    /// [`Resilient::new`], recorded in `metrics`.
    pub fn with_metrics(
        name: &str,
        settings: RetrySettings,
        breaker: BreakerSettings,
        metrics: ClientMetrics,
    ) -> Self {
        Self {
            name: name.to_owned(),
            budget: RetryBudget::new(
                settings.budget_window,
                settings.min_retries_per_sec,
                settings.retry_ratio.clamp(0.0, 1.0),
            ),
            breaker: CircuitBreaker::with_metrics(name, breaker, metrics.clone()),
            settings,
            metrics,
        }
    }

    /// The upstream's breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The backoff before retry number `retry` (1 for the first), with jitter so that callers
    /// that failed together do not retry together.
    fn backoff(&self, retry: u32) -> Duration {
        let full = self
            .settings
            .base_backoff
            .saturating_mul(1 << retry.saturating_sub(1).min(16))
            .min(self.settings.max_backoff);
        // The random low bits of a UUIDv7 are jitter enough, without another dependency.
        let random = f64::from(u16::try_from(uuid::Uuid::now_v7().as_u128() & 0xffff).unwrap_or(0));
        full.mul_f64((random / f64::from(u16::MAX)).mul_add(0.5, 0.5))
    }

    /// Sends `message` through `send`, retrying an idempotent call that found the upstream
    /// UNAVAILABLE while attempts, budget and the caller's deadline allow.
    ///
    /// # Errors
    /// The last attempt's status, or UNAVAILABLE when the breaker is open.
    pub async fn call<Req, Resp, F, Fut>(
        &self,
        idempotency: Idempotency,
        message: Req,
        mut send: F,
    ) -> Result<tonic::Response<Resp>, Status>
    where
        Req: Clone,
        F: FnMut(tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        // Every call earns budget; only retries spend it.
        self.budget.deposit();
        let mut attempt = 1;
        loop {
            self.breaker.admit()?;
            let outcome = send(tonic::Request::new(message.clone())).await;
            self.breaker
                .record(matches!(&outcome, Err(status) if is_upstream_failure(status)));
            let status = match outcome {
                Err(status)
                    if idempotency == Idempotency::Idempotent
                        && status.code() == Code::Unavailable
                        && attempt < self.settings.max_attempts =>
                {
                    status
                }
                other => return other,
            };
            let backoff = self.backoff(attempt);
            let time_left = CallContext::current()
                .and_then(|call| call.remaining())
                .is_none_or(|left| left > backoff);
            if !time_left {
                return Err(status);
            }
            if !self.budget.withdraw() {
                self.metrics.retry(&self.name, RetryOutcome::Refused);
                return Err(status);
            }
            self.metrics.retry(&self.name, RetryOutcome::Taken);
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicU32, Ordering},
        time::Instant,
    };

    use super::*;

    fn no_wait() -> RetrySettings {
        RetrySettings {
            base_backoff: Duration::ZERO,
            ..RetrySettings::default()
        }
    }

    /// A breaker that never opens, to look at retries alone.
    fn patient() -> BreakerSettings {
        BreakerSettings {
            failure_threshold: u32::MAX,
            open_for: Duration::from_secs(1),
        }
    }

    /// A client of `upstream` that retries at once, behind a breaker that never opens, and a
    /// count of the attempts the upstream sees.
    fn retrying(upstream: &str) -> (Resilient, AtomicU32) {
        (
            Resilient::new(upstream, no_wait(), patient()),
            AtomicU32::new(0),
        )
    }

    async fn answer(
        attempts: &AtomicU32,
        fail: impl Fn(u32) -> bool,
    ) -> Result<tonic::Response<u32>, Status> {
        let n = attempts.fetch_add(1, Ordering::SeqCst);
        if fail(n) {
            Err(Status::unavailable("down"))
        } else {
            Ok(tonic::Response::new(n))
        }
    }

    #[tokio::test]
    async fn an_idempotent_call_is_resent_with_the_same_message_until_it_succeeds() {
        let (client, attempts) = retrying("product");
        let seen = std::sync::Mutex::new(Vec::new());
        let response = client
            .call(Idempotency::Idempotent, "the message", |request| {
                seen.lock().expect("not poisoned").push(*request.get_ref());
                answer(&attempts, |n| n < 2)
            })
            .await
            .expect("the third attempt succeeds");
        assert_eq!(response.into_inner(), 2);
        assert_eq!(*seen.lock().expect("not poisoned"), ["the message"; 3]);
    }

    #[tokio::test]
    async fn a_call_that_is_not_idempotent_is_sent_once() {
        let (client, attempts) = retrying("product");
        let status = client
            .call(Idempotency::NotIdempotent, (), |_| {
                answer(&attempts, |_| true)
            })
            .await
            .expect_err("down");
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn business_errors_and_exhausted_attempts_are_not_retried() {
        let (client, attempts) = retrying("inventory");
        let status = client
            .call(Idempotency::Idempotent, (), |_| {
                attempts.fetch_add(1, Ordering::SeqCst);
                async { Err::<tonic::Response<()>, _>(Status::failed_precondition("no stock")) }
            })
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        let down = AtomicU32::new(0);
        let _ = client
            .call(Idempotency::Idempotent, (), |_| answer(&down, |_| true))
            .await;
        assert_eq!(down.load(Ordering::SeqCst), 3, "max_attempts");
    }

    #[tokio::test]
    async fn with_an_upstream_failing_half_its_calls_attempts_stay_within_the_retry_budget() {
        let (client, attempts) = retrying("inventory");
        let calls = 2000u32;
        let started = Instant::now();
        let mut failed = 0;
        for _ in 0..calls {
            // Every other attempt fails: half the upstream's answers are UNAVAILABLE.
            if client
                .call(Idempotency::Idempotent, (), |_| {
                    answer(&attempts, |n| n % 2 == 0)
                })
                .await
                .is_err()
            {
                failed += 1;
            }
        }
        let windows = started.elapsed().as_secs() / 10 + 1;
        let retries = attempts.load(Ordering::SeqCst) - calls;
        // 20% of the calls, plus 10/s over each 10 s window the test spanned.
        let allowed = calls / 5 + 100 * u32::try_from(windows).unwrap_or(u32::MAX);
        assert!(retries <= allowed, "{retries} retries, {allowed} allowed");
        // Without a budget every call would have retried once (2000 retries); the budget spent
        // what it had, and the calls it could not cover failed instead of piling on.
        assert!(retries >= calls / 5, "the budget is used: {retries}");
        assert!(failed > 0);
    }

    #[tokio::test]
    async fn an_open_breaker_fails_fast_without_calling_the_upstream() {
        let client = Resilient::new(
            "inventory",
            RetrySettings {
                max_attempts: 1,
                ..no_wait()
            },
            BreakerSettings {
                failure_threshold: 2,
                open_for: Duration::from_secs(60),
            },
        );
        let attempts = AtomicU32::new(0);
        for _ in 0..5 {
            let status = client
                .call(Idempotency::Idempotent, (), |_| answer(&attempts, |_| true))
                .await
                .expect_err("down");
            assert_eq!(status.code(), Code::Unavailable);
        }
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            2,
            "the breaker opened after two"
        );
        assert!(client.breaker().is_open());
    }
}
