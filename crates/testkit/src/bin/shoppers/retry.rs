//! Retrying a call the way a client that must learn its outcome would.

use std::time::{Duration, Instant};

use tonic::{Code, Status};

use crate::{ATTEMPT_TIMEOUT, GIVE_UP_AFTER};

/// The codes after which the outcome of a call is not known, or it may succeed if sent again.
pub(crate) fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Aborted
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Internal
            | Code::Cancelled
            | Code::ResourceExhausted
            | Code::Unauthenticated
    )
}

/// Calls `attempt` until it succeeds, fails for good, or `attempts` or [`GIVE_UP_AFTER`] run
/// out (backoff 50 ms doubling to 1 s). The error comes with the codes of every failed attempt.
pub(crate) async fn with_retries<T, F, Fut>(
    attempts: u32,
    attempt: F,
) -> Result<T, (Status, Vec<String>)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut codes = Vec::new();
    noting_retries(attempts, &mut codes, attempt)
        .await
        .map_err(|status| (status, codes))
}

/// [`with_retries`], noting the code of every failed attempt in `codes`, success or not.
pub(crate) async fn noting_retries<T, F, Fut>(
    attempts: u32,
    codes: &mut Vec<String>,
    mut attempt: F,
) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut backoff = Duration::from_millis(50);
    let give_up = Instant::now() + GIVE_UP_AFTER;
    for n in 1..=attempts {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(status) => {
                codes.push(format!("{:?}", status.code()));
                if !retryable(status.code()) || n == attempts || Instant::now() >= give_up {
                    return Err(status);
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
    Err(Status::unknown("no attempt was made"))
}

/// A request that gives up after [`ATTEMPT_TIMEOUT`].
pub(crate) fn timed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(ATTEMPT_TIMEOUT);
    request
}
