//! The ledger's rules: what each kind of movement does to a stock level, when a level counts as
//! depleted, and how the ledger is paged.

use agora_platform::paging::{self, PageTokenError as TokenError};
// Page sizes are the platform's, like every listing's.
pub use agora_platform::paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, NegativePageSize, page_size};

use super::ProductId;

/// What a ledger line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovementKind {
    /// The record was opened with zero units.
    Opened,
    /// An admin changed the units on hand.
    Adjusted,
    /// Units moved from available to reserved for an order.
    Reserved,
    /// Reserved units were sold.
    Committed,
    /// A pending reservation gave its units back.
    Released,
    /// A pending reservation expired and gave its units back.
    Expired,
    /// Sold units came back on hand (a committed order was cancelled).
    Returned,
}

/// The signed change of each figure of a stock level. Always balanced:
/// `on_hand = available + reserved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deltas {
    /// Change of the units on hand.
    pub on_hand: i64,
    /// Change of the units available.
    pub available: i64,
    /// Change of the units reserved.
    pub reserved: i64,
}

impl MovementKind {
    const ALL: [Self; 7] = [
        Self::Opened,
        Self::Adjusted,
        Self::Reserved,
        Self::Committed,
        Self::Released,
        Self::Expired,
        Self::Returned,
    ];

    /// The name stored in the ledger.
    pub fn name(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Adjusted => "adjusted",
            Self::Reserved => "reserved",
            Self::Committed => "committed",
            Self::Released => "released",
            Self::Expired => "expired",
            Self::Returned => "returned",
        }
    }

    /// Reads a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// What a movement of this kind with `units` does to a level. `units` is the signed delta
    /// for [`MovementKind::Adjusted`] and the (positive) quantity of a line otherwise. The one
    /// place these rules live: the store applies and records exactly these deltas.
    pub fn deltas(self, units: i64) -> Deltas {
        let (on_hand, available, reserved) = match self {
            Self::Opened => (0, 0, 0),
            Self::Adjusted => (units, units, 0),
            Self::Reserved => (0, -units, units),
            Self::Committed => (-units, 0, -units),
            Self::Released | Self::Expired => (0, units, -units),
            Self::Returned => (units, units, 0),
        };
        Deltas {
            on_hand,
            available,
            reserved,
        }
    }
}

/// Whether a change of `available` made it reach zero (it was above and now is not), the
/// moment a `StockDepleted` event is due.
pub fn depleted(available_delta: i64, available_after: i64) -> bool {
    available_delta < 0 && available_after == 0
}

/// Why a page token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageTokenError {
    /// Not a token this service made.
    #[error("is not a token from a previous page")]
    Malformed,
    /// A token of another product's ledger.
    #[error("belongs to the movements of another product")]
    OtherProduct,
}

/// Where the next page of a product's ledger starts: the movements older than `before`.
/// Encoded in the platform's page-token format, bound to its product so a token cannot be
/// replayed against another ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageToken {
    /// The ledger sequence number of the last movement of the previous page.
    pub before: i64,
}

impl PageToken {
    /// The token continuing `product_id`'s ledger after sequence number `before`.
    pub fn encode(product_id: &ProductId, before: i64) -> String {
        paging::encode_token(&before, product_id.as_str())
    }

    /// Reads a token; an empty one means the first page (`None`).
    ///
    /// # Errors
    /// The token is malformed or was made for another product.
    pub fn decode(product_id: &ProductId, token: &str) -> Result<Option<Self>, PageTokenError> {
        let before = paging::decode_token::<i64, _>(token, product_id.as_str()).map_err(
            |error| match error {
                TokenError::Malformed => PageTokenError::Malformed,
                TokenError::OtherFilter => PageTokenError::OtherProduct,
            },
        )?;
        match before {
            None => Ok(None),
            Some(before) if before >= 1 => Ok(Some(Self { before })),
            // Sequence numbers start at 1: no page ends before the first movement.
            Some(_) => Err(PageTokenError::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0190a0b0-0000-7000-8000-00000000000a";
    const B: &str = "0190a0b0-0000-7000-8000-00000000000b";

    #[test]
    fn every_movement_kind_keeps_on_hand_equal_to_available_plus_reserved() {
        for kind in MovementKind::ALL {
            for units in [1, 7, -3] {
                let d = kind.deltas(units);
                assert_eq!(d.on_hand, d.available + d.reserved, "{kind:?}");
            }
            assert_eq!(MovementKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(
            MovementKind::Reserved.deltas(2),
            Deltas {
                on_hand: 0,
                available: -2,
                reserved: 2
            }
        );
        assert_eq!(MovementKind::Committed.deltas(2).on_hand, -2);
    }

    #[test]
    fn depletion_is_the_moment_available_reaches_zero() {
        assert!(depleted(-3, 0));
        assert!(!depleted(-3, 1));
        assert!(!depleted(3, 0));
    }

    #[test]
    fn page_tokens_round_trip_and_are_bound_to_their_product() {
        let a = ProductId::parse(A).expect("a UUID");
        let b = ProductId::parse(B).expect("a UUID");
        let token = PageToken::encode(&a, 42);
        assert_eq!(
            PageToken::decode(&a, &token),
            Ok(Some(PageToken { before: 42 }))
        );
        assert_eq!(PageToken::decode(&a, ""), Ok(None));
        assert_eq!(
            PageToken::decode(&b, &token),
            Err(PageTokenError::OtherProduct)
        );
        for bad in ["zz", "abc", "ü", &PageToken::encode(&a, 0)] {
            assert_eq!(
                PageToken::decode(&a, bad),
                Err(PageTokenError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(1000), Ok(MAX_PAGE_SIZE));
        assert_eq!(page_size(-1), Err(NegativePageSize));
    }
}
