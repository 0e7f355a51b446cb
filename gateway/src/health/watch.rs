//! Each upstream's health, checked in the background: one task per upstream asks its
//! `grpc.health.v1.Health/Check` every `interval`, over the channel its calls use, and keeps the
//! last answer with when it came, for the probes' report and for failing fast.
//!
//! Why periodic `Check` rather than `Watch`: a `Watch` stream stays open on one connection, so a
//! service draining for a restart would wait on it until its drain timeout, and over a balanced
//! `dns:///` URL it follows one pod only; a hung service also keeps a stream open and silent,
//! where a `Check` with a deadline notices it. The price is up to one `interval` to see a change.
//!
//! Only an upstream that does not answer at all (connection refused or reset, no answer within
//! the timeout) is refused at the edge: an upstream that answers NOT_SERVING is still reachable
//! (draining, or waiting for its store) and answers its own calls, fast, better than the edge
//! could. A failed check is tried again at once before it counts, so one bad connection, or one
//! pod of several that is going away, does not take every route of its service down.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// How the upstreams are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The pause between one upstream's checks.
    pub interval: Duration,
    /// How long one check may wait for its answer.
    pub timeout: Duration,
}

impl Timing {
    /// How old a check may be before the edge stops trusting it and tries calls again: two whole
    /// rounds (a check, its retry, the pause). A mark this old means the checks themselves are
    /// stuck, and refusing calls on old news would be worse than trying them.
    pub fn stale_after(self) -> Duration {
        (self.interval + 2 * self.timeout) * 2
    }
}

/// What the last check of an upstream found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// Not checked yet (the edge has just started).
    Unchecked,
    /// The upstream answered with this status.
    Answered(ServingStatus),
    /// No answer: the connection failed or the check timed out, twice in a row.
    Unreachable(String),
}

impl Observed {
    /// The status as the probes show it: `SERVING`, `NOT_SERVING`, `SERVICE_UNKNOWN`, `UNKNOWN`,
    /// `UNREACHABLE`, or `UNCHECKED`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Unchecked => "UNCHECKED",
            Self::Answered(ServingStatus::Serving) => "SERVING",
            Self::Answered(ServingStatus::NotServing) => "NOT_SERVING",
            Self::Answered(ServingStatus::ServiceUnknown) => "SERVICE_UNKNOWN",
            Self::Answered(ServingStatus::Unknown) => "UNKNOWN",
            Self::Unreachable(_) => "UNREACHABLE",
        }
    }

    /// Whether the upstream said SERVING.
    pub fn serving(&self) -> bool {
        *self == Self::Answered(ServingStatus::Serving)
    }
}

/// An upstream's state: the last check, and since when its status has been what it is.
#[derive(Debug, Clone)]
pub struct Seen {
    /// What the last check found.
    pub observed: Observed,
    /// When the status became what it is (the edge's start, for an unchecked upstream).
    pub since: SystemTime,
    /// When the last check ended, on the wall clock (for people) and the monotonic one (to tell
    /// a fresh mark from a stale one).
    pub checked: Option<(SystemTime, Instant)>,
}

/// One upstream, as the background check sees it.
#[derive(Debug)]
pub(crate) struct Watched {
    pub(crate) upstream: super::Upstream,
    /// Written by the upstream's check task, read by every request to the upstream.
    seen: Mutex<Seen>,
}

impl Watched {
    pub(crate) fn new(upstream: super::Upstream) -> Self {
        Self {
            upstream,
            seen: Mutex::new(Seen {
                observed: Observed::Unchecked,
                since: SystemTime::now(),
                checked: None,
            }),
        }
    }

    /// The upstream's state now.
    pub(crate) fn seen(&self) -> Seen {
        self.state().clone()
    }

    /// When a check last found the upstream unreachable, if that is what the last check found:
    /// read on every call to the upstream, so nothing is copied.
    pub(crate) fn unreachable_at(&self) -> Option<Instant> {
        let seen = self.state();
        match (&seen.observed, seen.checked) {
            (Observed::Unreachable(_), Some((_, at))) => Some(at),
            _ => None,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A poisoned lock only means a check task panicked mid-write of a plain value: the value
        // is still whole, so it is read anyway.
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, observed: Observed) {
        let mut seen = self.state();
        let now = SystemTime::now();
        if seen.observed.name() != observed.name() {
            tracing::info!(
                upstream = %self.upstream.name,
                from = seen.observed.name(),
                to = observed.name(),
                error = match &observed { Observed::Unreachable(why) => why.as_str(), _ => "" },
                "upstream health changed"
            );
            seen.since = now;
        }
        seen.observed = observed;
        seen.checked = Some((now, Instant::now()));
    }
}

/// Checks `watched` every `timing.interval` until the probes that own it are dropped.
pub(crate) fn spawn(watched: Weak<Watched>, timing: Timing) {
    tokio::spawn(async move {
        loop {
            let Some(upstream) = watched.upgrade() else {
                return;
            };
            let mut observed = check(&upstream.upstream, timing.timeout).await;
            if matches!(observed, Observed::Unreachable(_)) {
                observed = check(&upstream.upstream, timing.timeout).await;
            }
            upstream.record(observed);
            drop(upstream);
            tokio::time::sleep(timing.interval).await;
        }
    });
}

/// Asks `upstream` once, waiting at most `timeout`.
pub(crate) async fn check(upstream: &super::Upstream, timeout: Duration) -> Observed {
    ask(upstream.channel.clone(), &upstream.service, timeout).await
}

async fn ask(channel: Channel, service: &str, timeout: Duration) -> Observed {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    request.set_timeout(timeout);
    let call = async move { HealthClient::new(channel).check(request).await };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(response)) => Observed::Answered(response.into_inner().status()),
        // The standard health service answers NOT_FOUND for a service it does not know.
        Ok(Err(status)) if status.code() == tonic::Code::NotFound => {
            Observed::Answered(ServingStatus::ServiceUnknown)
        }
        // Anything else that came back with a status the upstream itself sent is an answer too:
        // it is reachable (an old server without the health service says UNIMPLEMENTED).
        Ok(Err(status)) if answered_by_the_upstream(&status) => {
            Observed::Answered(ServingStatus::Unknown)
        }
        Ok(Err(status)) => Observed::Unreachable(status.message().to_owned()),
        Err(_) => Observed::Unreachable(format!("no answer within {timeout:?}")),
    }
}

/// Whether a failed check's status came from the upstream (it answered) rather than from the
/// channel (it could not connect, the connection broke, or the deadline passed).
fn answered_by_the_upstream(status: &tonic::Status) -> bool {
    !matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded
    )
}

/// The states of every watched upstream, in order.
pub(crate) fn states(watched: &[Arc<Watched>]) -> Vec<(&super::Upstream, Seen)> {
    watched.iter().map(|w| (&w.upstream, w.seen())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_goes_stale_after_two_whole_rounds_of_checks() {
        let timing = Timing {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(timing.stale_after(), Duration::from_secs(6));
    }

    #[test]
    fn only_the_channels_own_failures_count_as_unreachable() {
        assert!(answered_by_the_upstream(&tonic::Status::unimplemented(
            "no health service"
        )));
        assert!(answered_by_the_upstream(&tonic::Status::permission_denied(
            "no"
        )));
        assert!(!answered_by_the_upstream(&tonic::Status::unavailable(
            "connection refused"
        )));
        assert!(!answered_by_the_upstream(&tonic::Status::unknown(
            "transport error"
        )));
        assert!(!answered_by_the_upstream(
            &tonic::Status::deadline_exceeded("late")
        ));
    }
}
