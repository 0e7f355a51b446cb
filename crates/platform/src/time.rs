//! Time as Agora stores it: whole microseconds since the Unix epoch in an `i64`, the one time
//! type PostgreSQL and SQLite store alike, and its conversions to and from durations and
//! Protobuf timestamps.
//!
//! # Saturation
//! A duration too long for an `i64` of microseconds (about 292,000 years) can only come from a
//! setting nobody means literally, yet it must not panic or wrap. What it becomes depends on what
//! the caller does with it next, so the conversions say it in their name:
//! - [`micros`] saturates at `i64::MAX`: for values compared or subtracted with
//!   `saturating_sub`;
//! - [`span_micros`] saturates at `i64::MAX / 2`: for spans added to a current time with a plain
//!   `+`, which cannot overflow then;
//! - [`micros_or`] takes the value to use instead, for a caller with its own bound.
//!
//! Every one returns the exact value whenever it fits in an `i64`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `duration` in microseconds, or `overflow` when it does not fit in an `i64`.
pub fn micros_or(duration: Duration, overflow: i64) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(overflow)
}

/// `duration` in microseconds, saturating at `i64::MAX`.
pub fn micros(duration: Duration) -> i64 {
    micros_or(duration, i64::MAX)
}

/// `duration` in microseconds, or `i64::MAX / 2` when it does not fit: a span that a current
/// time (far below `i64::MAX / 2`) can be added to without overflowing, and that still means
/// "never" when it is.
pub fn span_micros(duration: Duration) -> i64 {
    micros_or(duration, i64::MAX / 2)
}

/// `time` in microseconds since the Unix epoch: 0 before it, `i64::MAX` past what fits.
pub fn micros_since_epoch(time: SystemTime) -> i64 {
    micros(time.duration_since(UNIX_EPOCH).unwrap_or_default())
}

/// The current time in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    micros_since_epoch(SystemTime::now())
}

/// Microseconds since the Unix epoch, as stored, as a Protobuf timestamp (nanos always in
/// `0..1_000_000_000`, also before the epoch).
pub fn timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        // rem_euclid is in 0..1_000_000, so times 1000 always fits an i32.
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(0),
    }
}

/// A Protobuf timestamp in microseconds since the Unix epoch (sub-microsecond nanos dropped),
/// saturating at the ends of `i64`.
pub fn timestamp_micros(timestamp: &prost_types::Timestamp) -> i64 {
    timestamp
        .seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(timestamp.nanos) / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HUGE: Duration = Duration::from_secs(u64::MAX);

    #[test]
    fn durations_that_fit_convert_exactly_whatever_the_variant() {
        let d = Duration::from_micros(1_234_567);
        assert_eq!(micros(d), 1_234_567);
        assert_eq!(span_micros(d), 1_234_567);
        assert_eq!(micros_or(d, 7), 1_234_567);
        // Sub-microsecond parts are dropped.
        assert_eq!(micros(Duration::from_nanos(1_999)), 1);
    }

    #[test]
    fn durations_that_do_not_fit_become_what_each_variant_says() {
        assert_eq!(micros(HUGE), i64::MAX);
        assert_eq!(span_micros(HUGE), i64::MAX / 2);
        assert_eq!(micros_or(HUGE, i64::MAX / 4), i64::MAX / 4);
        // A span can be added to the current time without overflowing.
        assert!(now_micros().checked_add(span_micros(HUGE)).is_some());
    }

    #[test]
    fn the_current_time_is_after_2023_and_times_before_the_epoch_are_zero() {
        assert!(now_micros() > 1_700_000_000_000_000);
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(micros_since_epoch(before), 0);
        assert_eq!(micros_since_epoch(UNIX_EPOCH + Duration::from_micros(5)), 5);
    }

    #[test]
    fn timestamps_split_microseconds_into_seconds_and_nanos_and_back() {
        let ts = timestamp(1_700_000_000_123_456);
        assert_eq!((ts.seconds, ts.nanos), (1_700_000_000, 123_456_000));
        assert_eq!(timestamp_micros(&ts), 1_700_000_000_123_456);
        let before_epoch = timestamp(-1);
        assert_eq!(
            (before_epoch.seconds, before_epoch.nanos),
            (-1, 999_999_000)
        );
        assert_eq!(timestamp_micros(&before_epoch), -1);
    }

    #[test]
    fn timestamps_beyond_the_range_of_micros_saturate() {
        let far = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 999_999_999,
        };
        assert_eq!(timestamp_micros(&far), i64::MAX);
        let long_ago = prost_types::Timestamp {
            seconds: i64::MIN,
            nanos: 0,
        };
        assert_eq!(timestamp_micros(&long_ago), i64::MIN);
        // Nanos below a microsecond are dropped.
        let ts = prost_types::Timestamp {
            seconds: 1,
            nanos: 1_999,
        };
        assert_eq!(timestamp_micros(&ts), 1_000_001);
    }
}
