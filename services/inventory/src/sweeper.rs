//! The sweeper: gives back the units of reservations that were neither committed nor released
//! before they expired.
//!
//! Every replica may run one. Each reservation is expired in its own transaction that first
//! locks its row and checks it is still pending and due, so when two sweepers (or a sweeper and a
//! release) race for one reservation, exactly one gives its units back.

use crate::store::{Store, now_micros, reservations::SWEEP_BATCH};

/// Sweeps until no due reservation is left or a round makes no progress: what the sweeper does
/// every `inventory.sweep_interval` (registered by the service's start-up).
///
/// # Errors
/// The due reservations could not be read.
pub async fn sweep(store: &Store) -> anyhow::Result<()> {
    // A full batch means more may be due: sweep again at once, as long as the round made
    // progress (a reservation that keeps failing must not spin the loop).
    loop {
        let round = sweep_once(store).await?;
        if round.due < SWEEP_BATCH || round.expired == 0 {
            return Ok(());
        }
    }
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
    crate::metrics::metrics().expired(u64::try_from(sweep.expired).unwrap_or(0));
    Ok(sweep)
}
