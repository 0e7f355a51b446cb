//! The order's rules, without I/O: the limits of a request, the statuses and their moves. Its
//! money (line and order totals, the one currency) is in [`money`]; what a valid CreateOrder
//! request is, parsed once into a `PlaceOrder` with the fingerprint that tells a retry from a
//! different request under the same idempotency key, is in [`crate::wire::place`].

use std::fmt;

pub mod money;

/// The most lines an order may have.
pub const MAX_LINES: usize = 50;
/// The most units of one product per order.
pub const MAX_QUANTITY: i64 = 999;
/// The longest idempotency key.
pub const MAX_KEY_LEN: usize = 128;
/// The longest cancel reason, in characters.
pub const MAX_REASON_LEN: usize = 500;

/// Where an order is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Stored with its stock reserved; being confirmed.
    Pending,
    /// Its stock is committed.
    Confirmed,
    /// Cancelled; its stock went back. Final.
    Cancelled,
    /// Failed after it was stored; its reservation was released. Final.
    Failed,
}

impl Status {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
            Status::Failed => "failed",
        }
    }

    /// Reads a stored name.
    pub fn parse(stored: &str) -> Option<Self> {
        Some(match stored {
            "pending" => Status::Pending,
            "confirmed" => Status::Confirmed,
            "cancelled" => Status::Cancelled,
            "failed" => Status::Failed,
            _ => return None,
        })
    }

    /// Whether nothing changes the order any more.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Cancelled | Status::Failed)
    }
}

/// An order id: a UUID, kept in its canonical lower-case form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderId(String);

impl OrderId {
    /// A new, time-ordered id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// Parses an id sent by a client.
    ///
    /// # Errors
    /// Not a UUID.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        uuid::Uuid::parse_str(raw)
            .map(|id| Self(id.to_string()))
            .map_err(|_| "must be a UUID")
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validates a cancel reason.
///
/// # Errors
/// Longer than 500 characters.
pub fn parse_reason(reason: &str) -> Result<String, String> {
    if reason.chars().count() > MAX_REASON_LEN {
        return Err(format!("must be at most {MAX_REASON_LEN} characters"));
    }
    Ok(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0190a5e4-0000-7000-8000-000000000001";

    #[test]
    fn statuses_round_trip_and_only_cancelled_and_failed_are_final() {
        for status in [
            Status::Pending,
            Status::Confirmed,
            Status::Cancelled,
            Status::Failed,
        ] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        assert!(!Status::Confirmed.is_final());
        assert!(Status::Cancelled.is_final());
    }

    #[test]
    fn ids_must_be_uuids() {
        assert!(OrderId::parse("order-1").is_err());
        assert!(OrderId::parse(A).is_ok());
    }

    #[test]
    fn a_reason_may_be_empty_but_not_longer_than_500_characters() {
        assert_eq!(parse_reason(""), Ok(String::new()));
        assert_eq!(parse_reason(&"é".repeat(500)), Ok("é".repeat(500)));
        assert_eq!(
            parse_reason(&"x".repeat(501)),
            Err("must be at most 500 characters".to_owned())
        );
    }
}
