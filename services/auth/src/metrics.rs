//! The auth service's instruments: logins and token refreshes, by outcome.

use agora_platform::metrics::{Instruments, counter};
use opentelemetry::{KeyValue, metrics::Counter};

/// How a Login ended, as `agora.auth.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// A session was opened.
    Succeeded,
    /// Wrong credentials, or a failure after the throttle let it in.
    Failed,
    /// Refused by the login throttle before the password was checked.
    Throttled,
}

/// How a Refresh ended, as `agora.auth.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// The token was rotated.
    Succeeded,
    /// An unknown, expired or revoked token, or a failure.
    Failed,
    /// A token spent before was presented again: its session was revoked.
    ReuseDetected,
}

/// The instruments, in the process's meter provider.
#[derive(Debug)]
pub struct AuthMetrics {
    logins: Counter<u64>,
    refreshes: Counter<u64>,
}

static METRICS: Instruments<AuthMetrics> = Instruments::new(|meter| AuthMetrics {
    logins: counter(
        meter,
        "agora.auth.logins",
        "Login attempts (well-formed ones), by outcome",
    ),
    refreshes: counter(
        meter,
        "agora.auth.refreshes",
        "Refresh token rotations asked for (well-formed ones), by outcome",
    ),
});

/// The auth service's instruments (made on first use).
pub fn metrics() -> &'static AuthMetrics {
    METRICS.get()
}

fn outcome(value: &'static str) -> [KeyValue; 1] {
    [KeyValue::new("agora.auth.outcome", value)]
}

impl AuthMetrics {
    /// One Login ended as `login`.
    pub fn login(&self, login: Login) {
        let value = match login {
            Login::Succeeded => "succeeded",
            Login::Failed => "failed",
            Login::Throttled => "throttled",
        };
        self.logins.add(1, &outcome(value));
    }

    /// One Refresh ended as `refresh`.
    pub fn refresh(&self, refresh: Refresh) {
        let value = match refresh {
            Refresh::Succeeded => "succeeded",
            Refresh::Failed => "failed",
            Refresh::ReuseDetected => "reuse_detected",
        };
        self.refreshes.add(1, &outcome(value));
    }
}
