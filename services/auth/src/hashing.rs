//! Password hashing with argon2id at OWASP's recommended parameters (m = 19456 KiB, t = 2, p = 1).
//!
//! Each hash takes 19 MiB and tens of milliseconds of CPU, so hashes run on the blocking pool (the
//! async workers keep serving other calls) and at most `max_in_flight` run at once: a login flood
//! queues instead of exhausting memory.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::SaltString,
};
use tokio::sync::Semaphore;

/// OWASP's minimum memory cost for argon2id, in KiB.
pub const MEMORY_KIB: u32 = 19_456;
/// OWASP's iteration count for that memory cost.
pub const ITERATIONS: u32 = 2;

/// Hashes and verifies passwords, a bounded number at a time.
#[derive(Debug, Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Hashes running now and the most ever seen at once, to prove the cap in tests and metrics.
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    /// A hash of a random password, verified when an email is unknown so that a login for a
    /// missing account costs the same time as one for an existing account.
    dummy: Arc<String>,
}

/// Hashing failed (never for a wrong password: that is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

fn argon2() -> Argon2<'static> {
    // The parameters are constants within argon2's documented ranges, so this cannot fail.
    #[allow(clippy::expect_used)]
    let params = Params::new(MEMORY_KIB, ITERATIONS, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError(e.to_string()))
}

impl Hasher {
    /// A hasher that runs at most `max_in_flight` hashes at once (at least one).
    ///
    /// # Errors
    /// The dummy hash could not be computed.
    pub fn new(max_in_flight: usize) -> Result<Self, HashError> {
        let mut secret = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        let dummy = hash_blocking(&base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            secret,
        ))?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
            running: Arc::default(),
            peak: Arc::default(),
            dummy: Arc::new(dummy),
        })
    }

    /// Hashes a new password into a PHC string (algorithm, parameters and salt included).
    ///
    /// # Errors
    /// Hashing failed.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.bounded(move || hash_blocking(&password)).await
    }

    /// Whether `password` matches `hash`; with no hash (unknown account), verifies against a
    /// dummy so the answer takes as long, and returns false.
    ///
    /// # Errors
    /// The stored hash is malformed or hashing failed.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.as_str().to_owned());
        let matches = self
            .bounded(move || {
                let parsed = PasswordHash::new(&hash).map_err(|e| HashError(e.to_string()))?;
                Ok(argon2()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
        Ok(known && matches)
    }

    /// The most hashes that ever ran at once.
    pub fn peak_in_flight(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    async fn bounded<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| HashError("the hasher is closed".into()))?;
        let running = Arc::clone(&self.running);
        let peak = Arc::clone(&self.peak);
        tokio::task::spawn_blocking(move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let result = work();
            running.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
            result
        })
        .await
        .map_err(|e| HashError(format!("hashing task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let hasher = Hasher::new(2).expect("hasher");
        let hash = hasher.hash("correct horse 7".into()).await.expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            hasher
                .verify("correct horse 7".into(), Some(hash.clone()))
                .await
                .expect("ok")
        );
        assert!(
            !hasher
                .verify("wrong horse 7".into(), Some(hash))
                .await
                .expect("ok")
        );
        assert!(!hasher.verify("anything".into(), None).await.expect("ok"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_flood_never_runs_more_hashes_than_the_cap() {
        let hasher = Hasher::new(2).expect("hasher");
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(format!("password-{i}")).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("joined").expect("hashed");
        }
        assert!(
            hasher.peak_in_flight() <= 2,
            "peak {}",
            hasher.peak_in_flight()
        );
        assert!(hasher.peak_in_flight() >= 1);
    }
}
