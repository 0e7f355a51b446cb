//! The caps on open watches: per user, so one client cannot hold them all, and per process, so
//! watches cannot take the memory the other calls need.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use agora_platform::error::ApiError;

/// When a refused watch may try again: slots free as soon as other streams end.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Counts the open watches against their caps.
#[derive(Debug)]
pub struct Slots {
    max_per_user: usize,
    max_total: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    /// Users with at least one open watch (none with zero: the map does not grow forever).
    per_user: HashMap<String, usize>,
}

impl Slots {
    /// At most `max_per_user` watches per user and `max_total` in all.
    pub fn new(max_per_user: usize, max_total: usize) -> Arc<Self> {
        Arc::new(Self {
            max_per_user,
            max_total,
            open: Mutex::new(Open::default()),
        })
    }

    fn open(&self) -> MutexGuard<'_, Open> {
        // Each change of the counts is one call: a panic elsewhere leaves them whole.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for one watch of `user`, held until the returned [`Slot`] is dropped.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED, with when to retry, when the user or the process is at its cap.
    pub fn take(self: &Arc<Self>, user: &str) -> Result<Slot, ApiError> {
        let mut open = self.open();
        let mine = open.per_user.get(user).copied().unwrap_or(0);
        if mine >= self.max_per_user {
            return Err(ApiError::ResourceExhausted {
                reason: "TOO_MANY_WATCHES",
                message: format!(
                    "at most {} orders may be watched at once per user; end a watch first",
                    self.max_per_user
                ),
                retry_after: RETRY_AFTER,
            });
        }
        if open.total >= self.max_total {
            return Err(ApiError::ResourceExhausted {
                reason: "WATCHES_EXHAUSTED",
                message: "this server watches as many orders as it can; retry shortly".into(),
                retry_after: RETRY_AFTER,
            });
        }
        open.total += 1;
        *open.per_user.entry(user.to_owned()).or_default() += 1;
        crate::metrics::metrics().watches(1);
        Ok(Slot {
            slots: Arc::clone(self),
            user: user.to_owned(),
        })
    }

    /// How many watches are open.
    pub fn open_watches(&self) -> usize {
        self.open().total
    }
}

/// One open watch's place under the caps, given back when dropped, however its stream ended.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    user: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        crate::metrics::metrics().watches(-1);
        let mut open = self.slots.open();
        open.total = open.total.saturating_sub(1);
        if let Some(mine) = open.per_user.get_mut(&self.user) {
            *mine -= 1;
            if *mine == 0 {
                open.per_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_at_the_cap_is_refused_while_others_are_served_until_the_total() {
        let slots = Slots::new(2, 3);
        let a1 = slots.take("ada").expect("first");
        let _a2 = slots.take("ada").expect("second");
        assert!(matches!(
            slots.take("ada"),
            Err(ApiError::ResourceExhausted {
                reason: "TOO_MANY_WATCHES",
                ..
            })
        ));
        let _b1 = slots.take("bob").expect("another user");
        assert!(matches!(
            slots.take("bob"),
            Err(ApiError::ResourceExhausted {
                reason: "WATCHES_EXHAUSTED",
                ..
            })
        ));
        drop(a1);
        assert_eq!(slots.open_watches(), 2);
        let _b2 = slots.take("bob").expect("a freed slot");
    }

    #[test]
    fn users_without_watches_are_forgotten() {
        let slots = Slots::new(1, 10);
        drop(slots.take("ada").expect("a slot"));
        assert!(slots.open().per_user.is_empty());
        assert_eq!(slots.open_watches(), 0);
    }
}
