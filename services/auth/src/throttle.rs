//! Budgets of the sign-in methods, counted in the cache (shared through Redis across replicas):
//!
//! - [`LoginThrottle`]: failed logins per account and per client address; past the limit, logins
//!   are refused with a retry delay before any password is checked. A success clears the
//!   account's count.
//! - [`RegistrationBudget`]: registrations per client address, so one address cannot mint
//!   accounts (each with budgets of its own elsewhere) faster than people sign up.

use std::time::Duration;

use agora_platform::{cache::Cache, error::ApiError};

use crate::domain::Email;

/// Counts failed logins.
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    cache: Cache,
    per_account: u64,
    per_address: u64,
    window: Duration,
}

impl LoginThrottle {
    /// Allows `per_account` and `per_address` failures per `window`.
    pub fn new(cache: Cache, per_account: u64, per_address: u64, window: Duration) -> Self {
        Self {
            cache,
            per_account,
            per_address,
            window,
        }
    }

    fn keys(email: &Email, address: Option<&str>) -> (String, Option<String>) {
        (
            format!("login-failures:account:{email}"),
            address.map(|a| format!("login-failures:address:{a}")),
        )
    }

    /// Refuses the attempt when either count is at its limit.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED with the time until the window ends.
    pub async fn check(&self, email: &Email, address: Option<&str>) -> Result<(), ApiError> {
        let (account, address) = Self::keys(email, address);
        let mut checks = vec![(account, self.per_account)];
        checks.extend(address.map(|key| (key, self.per_address)));
        for (key, limit) in checks {
            // The cache is not the source of truth: if it is down, logins go on unthrottled.
            match self.cache.count(&key).await {
                Ok(hit) if hit.count >= limit => {
                    return Err(ApiError::ResourceExhausted {
                        reason: "LOGIN_THROTTLED",
                        message: "too many failed sign-in attempts; try again later".into(),
                        retry_after: hit.reset_after.max(Duration::from_secs(1)),
                    });
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "login throttle unavailable")
                }
            }
        }
        Ok(())
    }

    /// Counts a failed attempt.
    pub async fn failed(&self, email: &Email, address: Option<&str>) {
        let (account, address) = Self::keys(email, address);
        for key in std::iter::once(account).chain(address) {
            if let Err(error) = self.cache.hit(&key, self.window).await {
                tracing::warn!(error = format!("{error:#}"), "login throttle unavailable");
            }
        }
    }

    /// Clears the account's count after a successful login.
    pub async fn succeeded(&self, email: &Email) {
        let (account, _) = Self::keys(email, None);
        if let Err(error) = self.cache.delete(&account).await {
            tracing::warn!(error = format!("{error:#}"), "login throttle unavailable");
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
    /// RESOURCE_EXHAUSTED with the time until the window ends.
    pub async fn spend(&self, address: Option<&str>) -> Result<(), ApiError> {
        let Some(address) = address else {
            return Ok(());
        };
        let key = format!("registrations:address:{address}");
        // The cache is not the source of truth: if it is down, registrations go on uncounted.
        match self.cache.hit(&key, self.window).await {
            Ok(hit) if hit.count > self.per_address => Err(ApiError::ResourceExhausted {
                reason: "REGISTRATIONS_THROTTLED",
                message: "too many registrations from this address; try again later".into(),
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
mod tests {
    use super::*;

    #[tokio::test]
    async fn registrations_past_the_budget_of_an_address_are_refused_with_a_delay() {
        let budget = RegistrationBudget::new(Cache::memory("t:"), 2, Duration::from_secs(60));
        let one = Some("192.0.2.1");
        budget.spend(one).await.expect("the first");
        budget.spend(one).await.expect("the second");
        let refused = budget.spend(one).await.expect_err("past the budget");
        let ApiError::ResourceExhausted { retry_after, .. } = refused else {
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
