//! Login throttling: failed attempts are counted per account and per client address in the cache
//! (shared through Redis across replicas); past the limit, logins are refused with a retry delay
//! before any password is checked. A success clears the account's count.

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
