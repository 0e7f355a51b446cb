//! Inventory's rules, without I/O: ids, quantities, reservation lines and their TTL, adjustment
//! reasons and notes, and reservation states; [`ledger`]: the kinds of ledger lines, what each
//! does to a stock level, and the pagination of the ledger. Requests are parsed into these types
//! at the boundary ([`crate::wire::requests`]), so the store never sees unchecked input.

use std::{fmt, marker::PhantomData, time::Duration};

pub mod ledger;

pub use ledger::{
    DEFAULT_PAGE_SIZE, Deltas, MAX_PAGE_SIZE, MovementKind, NegativePageSize, PageToken,
    PageTokenError, depleted, page_size,
};

/// Most lines in one reservation, and most ids in one BatchGetStock (the contract's limits).
pub const MAX_LINES: usize = 100;
/// Most ids in one BatchGetStock.
pub const MAX_BATCH: usize = 100;
/// Longest note or release reason, in characters.
pub const MAX_NOTE_CHARS: usize = 500;
/// Largest quantity of one line or size of one adjustment. Far above any real stock, and low
/// enough that no sum of levels can overflow a 64-bit integer (SQLite would turn an overflow
/// into a float).
pub const MAX_UNITS: i64 = 1_000_000_000_000;
/// Most units a product may have on hand; the store refuses changes beyond it.
pub const MAX_ON_HAND: i64 = 1_000_000_000_000_000;
/// Shortest reservation TTL the contract allows.
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// Longest reservation TTL the contract allows.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty.
    #[error("is required")]
    Empty,
    /// Not a UUID.
    #[error("must be a UUID")]
    Malformed,
}

/// Parses a UUID in any of its textual forms into its canonical form (lower-case, hyphenated),
/// so one product or order is always spelled the same way in the database.
fn canonical_uuid(raw: &str) -> Result<String, IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    uuid::Uuid::parse_str(raw)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| IdError::Malformed)
}

/// An id another service made, checked and canonical (see [`canonical_uuid`]). `K` says what it
/// names, so a product's id never stands where an order's is meant.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id<K>(String, PhantomData<K>);

/// What a [`ProductId`] names: a product, as the product service made it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Product {}

/// What an [`OrderId`] names: an order, the key of its reservation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Order {}

/// A product's id, as the product service made it.
pub type ProductId = Id<Product>;

/// An order's id: the key of its reservation.
pub type OrderId = Id<Order>;

impl<K> Id<K> {
    /// Checks and normalises an id.
    ///
    /// # Errors
    /// The id is empty or not a UUID.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        canonical_uuid(raw).map(|id| Self(id, PhantomData))
    }

    /// The canonical id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<K> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Id").field(&self.0).finish()
    }
}

impl<K> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A field of a request and what is wrong with it.
pub type Violation = (String, String);

/// One product and quantity of a reservation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Line {
    /// The product.
    pub product_id: ProductId,
    /// Units, at least 1 and at most [`MAX_UNITS`].
    pub quantity: i64,
}

/// The lines of a reservation: 1 to [`MAX_LINES`], each product once, sorted by product id.
/// The order matters: every transaction takes the row locks of stock in this order, so two
/// reservations can never wait for each other (no deadlock on PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines(Vec<Line>);

impl Lines {
    /// Checks raw `(product_id, quantity)` lines; every problem is reported, each under its
    /// field path (`lines[2].quantity`).
    ///
    /// # Errors
    /// No lines, too many, a malformed id, a product named twice, or a quantity out of range.
    pub fn parse<'a>(
        raw: impl IntoIterator<Item = (&'a str, i64)>,
    ) -> Result<Self, Vec<Violation>> {
        let raw: Vec<(&str, i64)> = raw.into_iter().collect();
        let mut violations = Vec::new();
        if raw.is_empty() {
            violations.push(("lines".into(), "must name at least one product".into()));
        }
        if raw.len() > MAX_LINES {
            violations.push((
                "lines".into(),
                format!("must have at most {MAX_LINES} lines"),
            ));
        }
        let mut lines: Vec<Line> = Vec::with_capacity(raw.len());
        let mut seen: std::collections::HashMap<ProductId, usize> = Default::default();
        for (i, (product_id, quantity)) in raw.into_iter().enumerate() {
            let product_id = match ProductId::parse(product_id) {
                Ok(id) => Some(id),
                Err(error) => {
                    violations.push((format!("lines[{i}].product_id"), error.to_string()));
                    None
                }
            };
            if let Some(id) = &product_id {
                if let Some(first) = seen.get(id) {
                    violations.push((
                        format!("lines[{i}].product_id"),
                        format!("names the product of lines[{first}] again; one line per product"),
                    ));
                } else {
                    seen.insert(id.clone(), i);
                }
            }
            if quantity < 1 {
                violations.push((format!("lines[{i}].quantity"), "must be at least 1".into()));
            } else if quantity > MAX_UNITS {
                violations.push((
                    format!("lines[{i}].quantity"),
                    format!("must be at most {MAX_UNITS}"),
                ));
            }
            if let Some(product_id) = product_id {
                lines.push(Line {
                    product_id,
                    quantity,
                });
            }
        }
        if !violations.is_empty() {
            return Err(violations);
        }
        lines.sort();
        Ok(Self(lines))
    }

    /// Lines read back from the store (already valid); sorted here like parsed ones.
    pub fn from_stored(mut lines: Vec<Line>) -> Self {
        lines.sort();
        Self(lines)
    }

    /// The lines, sorted by product id.
    pub fn as_slice(&self) -> &[Line] {
        &self.0
    }
}

/// Why a reservation TTL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TtlError {
    /// Negative, or below [`MIN_TTL`].
    #[error("must be at least 1 second")]
    TooShort,
    /// Above the configured maximum.
    #[error("must be at most {}", humanize(*.0))]
    TooLong(Duration),
}

fn humanize(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        s if s % 3600 == 0 => format!("{} hour(s)", s / 3600),
        s if s % 60 == 0 => format!("{} minute(s)", s / 60),
        s => format!("{s} second(s)"),
    }
}

/// How long a new reservation holds: the requested TTL, or the configured default when none
/// was asked for.
///
/// # Errors
/// The requested TTL is negative, shorter than a second or longer than `max`.
pub fn reservation_ttl(
    requested: Option<Result<Duration, ()>>,
    default: Duration,
    max: Duration,
) -> Result<Duration, TtlError> {
    match requested {
        None => Ok(default),
        Some(Err(())) => Err(TtlError::TooShort),
        Some(Ok(ttl)) if ttl < MIN_TTL => Err(TtlError::TooShort),
        Some(Ok(ttl)) if ttl > max => Err(TtlError::TooLong(max)),
        Some(Ok(ttl)) => Ok(ttl),
    }
}

/// Why an admin adjusted stock by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustReason {
    /// Goods arrived from a supplier.
    Restock,
    /// A stock-take found a different count.
    Correction,
    /// Goods were damaged, lost or stolen.
    Damage,
    /// A customer sent goods back.
    Return,
}

impl AdjustReason {
    /// The name stored in the ledger.
    pub fn name(self) -> &'static str {
        match self {
            Self::Restock => "restock",
            Self::Correction => "correction",
            Self::Damage => "damage",
            Self::Return => "return",
        }
    }

    /// Reads a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Restock, Self::Correction, Self::Damage, Self::Return]
            .into_iter()
            .find(|reason| reason.name() == name)
    }
}

/// Why an adjustment's delta was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// Zero changes nothing and would only clutter the ledger.
    #[error("must not be zero")]
    Zero,
    /// Beyond [`MAX_UNITS`] either way.
    #[error("must be between -{MAX_UNITS} and {MAX_UNITS}")]
    TooLarge,
}

/// Checks the delta of an adjustment.
///
/// # Errors
/// The delta is zero or too large.
pub fn adjustment_delta(delta: i64) -> Result<i64, DeltaError> {
    match delta {
        0 => Err(DeltaError::Zero),
        d if d.unsigned_abs() > MAX_UNITS.unsigned_abs() => Err(DeltaError::TooLarge),
        d => Ok(d),
    }
}

/// Why a note (or release reason) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be at most {MAX_NOTE_CHARS} characters")]
pub struct NoteTooLong;

/// Free text kept in the ledger, trimmed, at most [`MAX_NOTE_CHARS`] characters.
///
/// # Errors
/// The text is too long.
pub fn note(raw: &str) -> Result<String, NoteTooLong> {
    let trimmed = raw.trim();
    if trimmed.chars().count() > MAX_NOTE_CHARS {
        return Err(NoteTooLong);
    }
    Ok(trimmed.to_owned())
}

/// Where a reservation is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationState {
    /// Holding units until it expires.
    Pending,
    /// Sold.
    Committed,
    /// Given back by the order service.
    Released,
    /// Given back because it expired.
    Expired,
}

impl ReservationState {
    /// The name stored.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Committed => "committed",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    /// Reads a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Committed,
            Self::Released,
            Self::Expired,
        ]
        .into_iter()
        .find(|state| state.name() == name)
    }

    /// The state as callers see it at `now`: a pending reservation whose time has passed is
    /// expired, even before the sweeper has given its units back.
    pub fn effective(self, expires_at: i64, now: i64) -> Self {
        match self {
            Self::Pending if expires_at <= now => Self::Expired,
            state => state,
        }
    }
}

#[cfg(test)]
mod tests;
