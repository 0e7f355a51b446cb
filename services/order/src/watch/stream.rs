//! One WatchOrder stream: the order's newest state each time it changes, until a final state,
//! the time limit, or the client leaves.

use std::pin::Pin;

use agora_contracts::agora::order::v1 as pb;
use futures::Stream;
use tokio::time::Instant;
use tonic::Status;

use super::{Slot, Subscription};

/// The stream a WatchOrder call answers with.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchOrderResponse, Status>> + Send>>;

/// The resume token of a state: its version in base 10. Clients treat it as opaque.
pub fn resume_token(version: i64) -> String {
    version.to_string()
}

/// The version a resume token names; `None` for a token this service did not issue.
pub fn parse_resume_token(token: &str) -> Option<i64> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

/// What a stream holds between messages.
struct Watching {
    subscription: Subscription,
    /// Given back when the stream is dropped, for whatever reason it ended.
    _slot: Slot,
    /// The version of the last state the client has: sent here, or named by its token.
    sent: i64,
    ends: Instant,
}

/// The stream of `subscription`'s order for a client that has seen the state `seen` (0: none),
/// ending at `ends`; the subscription already holds the order's state as read after
/// subscribing.
pub fn stream(subscription: Subscription, slot: Slot, seen: i64, ends: Instant) -> WatchStream {
    let state = Watching {
        subscription,
        _slot: slot,
        sent: seen,
        ends,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        loop {
            let latest = state.subscription.receiver().borrow_and_update().clone();
            let Some(order) = latest else {
                // Nothing read yet cannot happen after the first read; wait like for a change.
                if !state.wait().await {
                    return None;
                }
                continue;
            };
            if order.version > state.sent {
                state.sent = order.version;
                let message = pb::WatchOrderResponse {
                    order: Some(order.to_proto()),
                    resume_token: resume_token(order.version),
                };
                return Some((Ok(message), state));
            }
            // A final state the client has is never followed by another.
            if order.status.is_final() || !state.wait().await {
                return None;
            }
        }
    }))
}

impl Watching {
    /// Waits for the next state; false when the stream should end instead (its time is up).
    async fn wait(&mut self) -> bool {
        if Instant::now() >= self.ends {
            return false;
        }
        matches!(
            tokio::time::timeout_at(self.ends, self.subscription.receiver().changed()).await,
            Ok(Ok(()))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_versions_and_anything_else_is_refused() {
        assert_eq!(parse_resume_token(&resume_token(42)), Some(42));
        for bad in ["", "-1", "+3", "1.5", "abc", "99999999999999999999", " 7"] {
            assert_eq!(parse_resume_token(bad), None, "{bad:?}");
        }
    }
}
