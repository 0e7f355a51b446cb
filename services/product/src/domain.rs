//! The catalog's rules, without I/O: what a SKU, a name, a category, a price, an image URL and a
//! product id are, and how a product is stored for searching and sorting.
//! Requests are parsed into these types at the boundary, so the rest of the service never sees
//! unchecked input.

use crate::currency::is_known_currency;

mod ids;
mod image_url;

pub use ids::{BatchLookup, MAX_BATCH, ProductId, parse_id};
pub use image_url::ImageUrl;

/// Why one field was refused; the message completes "`<field>` ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Empty (after trimming, where the field is trimmed).
    #[error("is required")]
    Required,
    /// Longer than the field allows, in characters.
    #[error("must be at most {0} characters")]
    TooLong(usize),
    /// Contains characters the field does not allow.
    #[error("must not contain control characters")]
    ControlCharacters,
    /// Does not match the field's pattern.
    #[error("must match {0}")]
    Pattern(&'static str),
    /// A negative amount.
    #[error("must be at least 0")]
    Negative,
    /// An amount above [`Price::MAX_MINOR`].
    #[error("must be at most {}", Price::MAX_MINOR)]
    TooLarge,
    /// Not an ISO 4217 code this service knows.
    #[error("must be a known ISO 4217 currency code in upper case, e.g. EUR")]
    UnknownCurrency,
    /// Not an absolute `https` URL.
    #[error("must be an absolute https URL, or empty")]
    NotHttpsUrl,
}

/// `raw` when it is `valid`, else the refusal that names the `pattern` it had to match.
fn matching(raw: &str, valid: bool, pattern: &'static str) -> Result<String, FieldError> {
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(FieldError::Pattern(pattern))
    }
}

/// A stock keeping unit: `^[A-Z0-9][A-Z0-9_-]{0,63}$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku(String);

impl Sku {
    /// The pattern, as the contract states it.
    pub const PATTERN: &'static str = "^[A-Z0-9][A-Z0-9_-]{0,63}$";

    /// Checks a SKU; it is not normalised, so what is stored is what was sent.
    ///
    /// # Errors
    /// Empty, or not matching [`Sku::PATTERN`].
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let mut chars = raw.chars();
        let Some(first) = chars.next() else {
            return Err(FieldError::Required);
        };
        let valid = (first.is_ascii_uppercase() || first.is_ascii_digit())
            && raw.len() <= 64
            && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-');
        matching(raw, valid, Self::PATTERN).map(Self)
    }
}

/// A product name: 1 to 200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    /// The longest name, in characters.
    pub const MAX: usize = 200;

    /// Trims and checks a name.
    ///
    /// # Errors
    /// Empty after trimming, too long, or with control characters.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(FieldError::Required);
        }
        if name.chars().count() > Self::MAX {
            return Err(FieldError::TooLong(Self::MAX));
        }
        if name.chars().any(char::is_control) {
            return Err(FieldError::ControlCharacters);
        }
        Ok(Self(name.to_owned()))
    }
}

/// A plain-text description of at most 5000 characters, kept as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    /// The longest description, in characters.
    pub const MAX: usize = 5000;

    /// Checks a description. Line breaks and tabs are plain text; other control characters
    /// (NUL above all, which PostgreSQL cannot store) are refused.
    ///
    /// # Errors
    /// Too long, or with control characters other than tab and line breaks.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.chars().count() > Self::MAX {
            return Err(FieldError::TooLong(Self::MAX));
        }
        if raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(FieldError::ControlCharacters);
        }
        Ok(Self(raw.to_owned()))
    }
}

/// A category slug: 1 to 50 characters matching `^[a-z0-9]+(-[a-z0-9]+)*$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategorySlug(String);

impl CategorySlug {
    /// The pattern, as the contract states it.
    pub const PATTERN: &'static str = "^[a-z0-9]+(-[a-z0-9]+)*$";
    /// The longest slug.
    pub const MAX: usize = 50;

    /// Checks a slug.
    ///
    /// # Errors
    /// Empty, too long, or not matching [`CategorySlug::PATTERN`].
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.is_empty() {
            return Err(FieldError::Required);
        }
        if raw.len() > Self::MAX {
            return Err(FieldError::TooLong(Self::MAX));
        }
        let valid = raw.split('-').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
        matching(raw, valid, Self::PATTERN).map(Self)
    }
}

/// A known ISO 4217 currency code, upper case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(String);

impl Currency {
    /// Checks a currency code.
    ///
    /// # Errors
    /// Empty, or not a known ISO 4217 code.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.is_empty() {
            return Err(FieldError::Required);
        }
        if is_known_currency(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldError::UnknownCurrency)
        }
    }
}

/// A unit price: 0 to [`Price::MAX_MINOR`] minor units in a known currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    /// The currency.
    pub currency: Currency,
    /// The amount in the currency's minor unit; at least 0.
    pub amount_minor: i64,
}

impl Price {
    /// The largest unit price, in minor units (a billion in a two-decimal currency). With the
    /// order contract's bounds (50 lines of at most 999 units) no order total can overflow.
    pub const MAX_MINOR: i64 = 100_000_000_000;

    /// Checks an amount in minor units.
    ///
    /// # Errors
    /// Negative, or above [`Price::MAX_MINOR`].
    pub fn amount(amount_minor: i64) -> Result<i64, FieldError> {
        if amount_minor < 0 {
            Err(FieldError::Negative)
        } else if amount_minor > Self::MAX_MINOR {
            Err(FieldError::TooLarge)
        } else {
            Ok(amount_minor)
        }
    }
}

/// The text values are strings once checked: each reads as its text. Values read back from the
/// store were checked when they were written (and rules may tighten later without making old
/// rows unreadable), so the store rebuilds them without re-checking.
macro_rules! stored {
    ($($ty:ident),*) => {
        $(
            impl $ty {
                /// The value, as checked.
                pub fn as_str(&self) -> &str {
                    &self.0
                }

                pub(crate) fn from_store(raw: String) -> Self {
                    Self(raw)
                }
            }
        )*
    };
}
stored!(Sku, ProductName, Description, CategorySlug, Currency);

/// Whether a product is on sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Listed and orderable.
    Active,
    /// Off sale for good.
    Archived,
}

impl Status {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Archived => "archived",
        }
    }

    /// Reads the stored form; `None` for a value this version does not know.
    pub fn from_column(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(Status::Active),
            "archived" => Some(Status::Archived),
            _ => None,
        }
    }
}

/// The fields of a product an admin sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFields {
    /// Unique across the catalog.
    pub sku: Sku,
    /// Shown to customers.
    pub name: ProductName,
    /// Plain text.
    pub description: Description,
    /// The category slug.
    pub category: CategorySlug,
    /// The unit price.
    pub price: Price,
    /// A picture, or empty.
    pub image_url: ImageUrl,
}

impl ProductFields {
    /// The lower-cased name products are sorted by. Lower-casing happens here, in Rust, so
    /// PostgreSQL and SQLite (whose `lower()` only knows ASCII) sort alike.
    pub fn name_key(&self) -> String {
        self.name.as_str().to_lowercase()
    }

    /// The lower-cased text a query searches (name and description, one per line), computed
    /// here for the same reason as [`ProductFields::name_key`].
    pub fn search_text(&self) -> String {
        format!("{}\n{}", self.name.as_str(), self.description.as_str()).to_lowercase()
    }
}

/// A product as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// Its id, a hyphenated lower-case UUIDv7.
    pub id: String,
    /// What admins set.
    pub fields: ProductFields,
    /// Whether it is on sale.
    pub status: Status,
    /// When it was created, in microseconds since the epoch.
    pub created_at: i64,
    /// When it last changed, in microseconds since the epoch.
    pub updated_at: i64,
}

impl Product {
    /// A new product, on sale, created and last changed `now` (microseconds since the epoch).
    pub fn new(id: String, fields: ProductFields, now: i64) -> Self {
        Self {
            id,
            fields,
            status: Status::Active,
            created_at: now,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests;
