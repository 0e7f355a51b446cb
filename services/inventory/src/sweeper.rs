//! The sweeper: gives back the units of reservations that were neither committed nor released
//! before they expired.
//!
//! Every replica may run one. Each reservation is expired in its own transaction that first
//! locks its row and checks it is still pending and due, so when two sweepers (or a sweeper and a
//! release) race for one reservation, exactly one gives its units back.

use std::time::Duration;

use agora_platform::events::Background;

use crate::store::{Store, now_micros, reservations::SWEEP_BATCH};

/// Runs the sweeper every `interval` until the returned guard is dropped.
pub fn spawn(store: Store, interval: Duration) -> Background {
    let mut background = Background::default();
    background.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        // A sweep that overran its interval is not made up for with a burst.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A full batch means more may be due: sweep again at once, as long as the round
            // made progress (a reservation that keeps failing must not spin the loop).
            loop {
                match sweep_once(&store).await {
                    Ok(round) if round.due >= SWEEP_BATCH && round.expired > 0 => continue,
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(
                            error = format!("{error:#}"),
                            "sweeping reservations failed"
                        );
                        break;
                    }
                }
            }
        }
    });
    background
}

/// What one sweep found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Reservations found due.
    pub due: i64,
    /// Reservations this sweep expired (another sweeper, or a release, may have taken the rest).
    pub expired: i64,
}

/// Expires every reservation due now, up to one batch. A reservation that fails is logged and
/// left for the next round, so it cannot hold up the others.
///
/// # Errors
/// The due reservations could not be read.
pub async fn sweep_once(store: &Store) -> anyhow::Result<Sweep> {
    let due = store.due_reservations(now_micros()).await?;
    let mut sweep = Sweep {
        due: i64::try_from(due.len()).unwrap_or(i64::MAX),
        expired: 0,
    };
    for order_id in due {
        match store.expire(&order_id).await {
            Ok(true) => {
                sweep.expired += 1;
                tracing::info!(%order_id, "reservation expired; its units are available again");
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%order_id, error = format!("{error:#}"), "expiring a reservation failed");
            }
        }
    }
    Ok(sweep)
}
