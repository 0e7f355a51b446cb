//! Login throttling after OWASP's device cookies: slow guessing down without letting anyone lock
//! an owner out of the devices they already use.
//!
//! - A **known device** (a valid [`crate::device`] token for the account being signed in to) has
//!   its own budget of failures, counted under its nonce. Nobody else's failures touch it, so an
//!   attack on the account never locks out the owner's known devices.
//! - Every other attempt is an **unknown device**. Its failures count against the account (keyed
//!   by the normalised email, whether or not an account exists, so refusals reveal nothing), the
//!   client's address, and all unknown devices together; the attempt is refused when any of the
//!   three is spent. The price: while an account is under attack its owner can sign in only from
//!   a known device.
//!
//! Counters live in the cache (shared through Redis across replicas) in fixed windows. An attempt
//! takes its hits *before* the password is checked, so a burst of concurrent guesses cannot all
//! pass a check made before any of them is counted: at most the limit of them get through. A
//! refused attempt and a successful one take their hits back; a failed one leaves them. So a
//! success never resets what others' failures counted (an owner's success must not refresh an
//! attacker's budget), except that a known device's success clears its own count.
//!
//! [`RegistrationBudget`] counts registrations per client address, so one address cannot mint
//! accounts (each with budgets of its own elsewhere) faster than people sign up.

use std::time::Duration;

use agora_platform::cache::Cache;

use crate::domain::Email;

/// How many failures each counter allows per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failures per known device.
    pub per_device: u64,
    /// Unknown devices' failures per account.
    pub per_account: u64,
    /// Unknown devices' failures per client address.
    pub per_address: u64,
    /// All unknown devices' failures together.
    pub total: u64,
    /// The fixed window every counter counts in.
    pub window: Duration,
}

/// An attempt refused because a budget is spent; `crate::wire` answers it RESOURCE_EXHAUSTED
/// with its delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Throttled {
    /// A login counter is spent.
    #[error("too many failed sign-in attempts; try again later")]
    Logins {
        /// The time until the spent counter's window ends (at least a second).
        retry_after: Duration,
    },
    /// The registration budget of the client's address is spent.
    #[error("too many registrations from this address; try again later")]
    Registrations {
        /// The time until the window ends (at least a second).
        retry_after: Duration,
    },
}

/// Who is signing in, as far as throttling goes.
#[derive(Debug, Clone, Copy)]
pub enum Attempt<'a> {
    /// A device with a valid token for this very account; its nonce.
    KnownDevice(&'a str),
    /// Anyone else: the email asked for and the client's address.
    Unknown {
        /// The normalised email, whether or not an account has it.
        email: &'a Email,
        /// The client's address, when known.
        address: Option<&'a str>,
    },
}

/// The hits an admitted attempt holds until its outcome is known. Dropping it (a wrong password,
/// or a failure on the way) leaves them counted.
#[derive(Debug)]
#[must_use = "a successful sign-in hands its reservation back to `LoginThrottle::succeeded`"]
pub struct Reservation {
    keys: Vec<String>,
    known_device: bool,
}

/// Counts failed logins.
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    cache: Cache,
    limits: Limits,
}

const TOTAL_KEY: &str = "login-failures:unknown-devices";

impl LoginThrottle {
    /// A throttle with `limits`, counting in `cache`.
    pub fn new(cache: Cache, limits: Limits) -> Self {
        Self { cache, limits }
    }

    /// The counters of `attempt`, narrowest first, with their limits.
    fn counters(&self, attempt: Attempt<'_>) -> Vec<(String, u64)> {
        match attempt {
            Attempt::KnownDevice(nonce) => vec![(
                format!("login-failures:device:{nonce}"),
                self.limits.per_device,
            )],
            Attempt::Unknown { email, address } => {
                let mut counters = vec![(
                    format!("login-failures:account:{email}"),
                    self.limits.per_account,
                )];
                counters.extend(address.map(|a| {
                    (
                        format!("login-failures:address:{a}"),
                        self.limits.per_address,
                    )
                }));
                counters.push((TOTAL_KEY.to_owned(), self.limits.total));
                counters
            }
        }
    }

    /// Counts `attempt` as a failure in advance, or refuses it when one of its counters is
    /// spent (and then counts nothing).
    ///
    /// # Errors
    /// [`Throttled::Logins`] with the time until the spent counter's window ends.
    pub async fn admit(&self, attempt: Attempt<'_>) -> Result<Reservation, Throttled> {
        let mut reservation = Reservation {
            keys: Vec::new(),
            known_device: matches!(attempt, Attempt::KnownDevice(_)),
        };
        for (key, limit) in self.counters(attempt) {
            // The cache is not the source of truth: if it is down, logins go on unthrottled.
            let hit = match self.cache.hit(&key, self.limits.window).await {
                Ok(hit) => hit,
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "login throttle unavailable");
                    continue;
                }
            };
            reservation.keys.push(key);
            if hit.count > limit {
                // A refused attempt costs nothing: it must not spend the wider budgets (one
                // address hammering a locked account would otherwise use up everyone's total).
                self.take_back(&reservation.keys).await;
                return Err(Throttled::Logins {
                    retry_after: hit.reset_after.max(Duration::from_secs(1)),
                });
            }
        }
        Ok(reservation)
    }

    /// A successful sign-in: its hits are taken back (it was no failure), and a known device's
    /// count is cleared. Others' failures stay counted.
    pub async fn succeeded(&self, reservation: Reservation) {
        if reservation.known_device {
            for key in &reservation.keys {
                if let Err(error) = self.cache.delete(key).await {
                    tracing::warn!(error = format!("{error:#}"), "login throttle unavailable");
                }
            }
        } else {
            self.take_back(&reservation.keys).await;
        }
    }

    async fn take_back(&self, keys: &[String]) {
        for key in keys {
            if let Err(error) = self.cache.unhit(key).await {
                tracing::warn!(error = format!("{error:#}"), "login throttle unavailable");
            }
        }
    }
}

/// Counts registrations per client address.
#[derive(Debug, Clone)]
pub struct RegistrationBudget {
    cache: Cache,
    per_address: u64,
    window: Duration,
}

impl RegistrationBudget {
    /// Allows `per_address` registrations per `window` from one address.
    pub fn new(cache: Cache, per_address: u64, window: Duration) -> Self {
        Self {
            cache,
            per_address,
            window,
        }
    }

    /// Counts a registration from `address` and refuses it past the budget. Every attempt counts,
    /// whether or not the account is then made: a taken email answers ALREADY_EXISTS, so
    /// attempts are also guesses at who has an account. A call without a known address (not over
    /// TCP) is not counted.
    ///
    /// # Errors
    /// [`Throttled::Registrations`] with the time until the window ends.
    pub async fn spend(&self, address: Option<&str>) -> Result<(), Throttled> {
        let Some(address) = address else {
            return Ok(());
        };
        let key = format!("registrations:address:{address}");
        // The cache is not the source of truth: if it is down, registrations go on uncounted.
        match self.cache.hit(&key, self.window).await {
            Ok(hit) if hit.count > self.per_address => Err(Throttled::Registrations {
                retry_after: hit.reset_after.max(Duration::from_secs(1)),
            }),
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "registration budget unavailable"
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod registration_tests {
    use agora_platform::error::ApiError;

    use super::*;

    #[tokio::test]
    async fn registrations_past_the_budget_of_an_address_are_refused_with_a_delay() {
        let budget = RegistrationBudget::new(Cache::memory("t:"), 2, Duration::from_secs(60));
        let one = Some("192.0.2.1");
        budget.spend(one).await.expect("the first");
        budget.spend(one).await.expect("the second");
        let refused = budget.spend(one).await.expect_err("past the budget");
        let ApiError::ResourceExhausted { retry_after, .. } = ApiError::from(refused) else {
            panic!("{refused:?}");
        };
        assert!(retry_after >= Duration::from_secs(1) && retry_after <= Duration::from_secs(60));
        budget
            .spend(Some("192.0.2.2"))
            .await
            .expect("another address has its own budget");
        budget.spend(None).await.expect("no address, not counted");
    }
}
