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
                let message = pb::WatchOrderResponse::from(order.as_ref());
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
