//! The user service's rules, without I/O: what a display name, an address, a language and a
//! currency preference are, which fields an update may name, and what a registration carries.
//! Requests are parsed into these types at the boundary, so the store only ever sees checked
//! values.

use serde::{Deserialize, Serialize};

mod codes;
mod identity;
mod paging;
mod update;

pub use agora_platform::paging::{NegativePageSize, page_size};
pub use codes::{is_country_code, is_currency_code};
pub use identity::{Registration, RegistrationError, UserId, UserIdError};
pub use paging::{Cursor, EmailPrefix, EmailPrefixError, Listing, Page, PageToken, PageTokenError};
pub use update::{MaskError, ProfileChange, Selection};

/// Saved addresses a profile may hold.
pub const MAX_ADDRESSES: usize = 10;

/// Why a text field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty (after trimming) where a value is required.
    #[error("is required")]
    Required,
    /// Longer than the field allows, counted in characters.
    #[error("must be at most {0} characters")]
    TooLong(usize),
    /// Contains a control character (a newline, a tab, ...), which no label or address needs.
    #[error("must not contain control characters")]
    ControlCharacters,
}

/// Trims `raw` and checks it is `required` (non-empty) if asked, at most `max` characters and free
/// of control characters.
fn text(raw: &str, required: bool, max: usize) -> Result<String, TextError> {
    let value = raw.trim();
    if required && value.is_empty() {
        return Err(TextError::Required);
    }
    if value.chars().count() > max {
        return Err(TextError::TooLong(max));
    }
    if value.chars().any(char::is_control) {
        return Err(TextError::ControlCharacters);
    }
    Ok(value.to_owned())
}

/// The name shown in the shop: trimmed, 0 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Checks a display name; empty clears it.
    ///
    /// # Errors
    /// Too long, or it contains a control character.
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        text(raw, false, 100).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The fields of an address as a client sends them, and as the store keeps them (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AddressFields {
    /// The user's name for the address, e.g. "Home".
    pub label: String,
    /// Who receives the parcel.
    pub recipient: String,
    /// Street and number.
    pub line1: String,
    /// Apartment, floor, building, c/o.
    pub line2: String,
    /// City or town.
    pub city: String,
    /// State, province or region.
    pub region: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country_code: String,
}

/// A checked shipping address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address(AddressFields);

/// What is wrong with one field of an address: the field's name and the problem.
pub type AddressViolation = (&'static str, String);

impl Address {
    /// Trims every field and checks the limits of the contract; the country code is upper-cased
    /// and must be an assigned ISO 3166-1 alpha-2 code.
    ///
    /// # Errors
    /// Every field that breaks a limit, by field name.
    pub fn parse(raw: &AddressFields) -> Result<Self, Vec<AddressViolation>> {
        let mut violations = Vec::new();
        let mut check = |field: &'static str, value: &str, required: bool, max: usize| {
            text(value, required, max).unwrap_or_else(|error| {
                violations.push((field, error.to_string()));
                String::new()
            })
        };
        let mut fields = AddressFields {
            label: check("label", &raw.label, false, 50),
            recipient: check("recipient", &raw.recipient, true, 100),
            line1: check("line1", &raw.line1, true, 200),
            line2: check("line2", &raw.line2, false, 200),
            city: check("city", &raw.city, true, 100),
            region: check("region", &raw.region, false, 100),
            postal_code: check("postal_code", &raw.postal_code, false, 20),
            country_code: String::new(),
        };
        let country = raw.country_code.trim().to_ascii_uppercase();
        if country.is_empty() {
            violations.push(("country_code", "is required".into()));
        } else if !is_country_code(&country) {
            violations.push((
                "country_code",
                "must be an ISO 3166-1 alpha-2 country code, e.g. DE".into(),
            ));
        }
        fields.country_code = country;
        if violations.is_empty() {
            Ok(Self(fields))
        } else {
            Err(violations)
        }
    }

    /// An address the store wrote after parsing it: trusted as it is.
    pub fn from_stored(fields: AddressFields) -> Self {
        Self(fields)
    }

    /// The address's fields.
    pub fn fields(&self) -> &AddressFields {
        &self.0
    }
}

/// A profile's checked list of addresses: at most [`MAX_ADDRESSES`], labels unique when set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses(Vec<Address>);

impl Addresses {
    /// Checks every address and the list as a whole.
    ///
    /// # Errors
    /// Every problem, as `(path, problem)` where the path is relative to the list: `""` for the
    /// list itself, `[2].country_code` for a field of the third address.
    pub fn parse(raw: &[AddressFields]) -> Result<Self, Vec<(String, String)>> {
        let mut violations = Vec::new();
        if raw.len() > MAX_ADDRESSES {
            violations.push((
                String::new(),
                format!("must hold at most {MAX_ADDRESSES} addresses"),
            ));
        }
        let mut addresses = Vec::with_capacity(raw.len());
        for (index, fields) in raw.iter().enumerate() {
            match Address::parse(fields) {
                Ok(address) => addresses.push(address),
                Err(problems) => violations.extend(
                    problems
                        .into_iter()
                        .map(|(field, problem)| (format!("[{index}].{field}"), problem)),
                ),
            }
        }
        // Labels name addresses in the shop's UI ("ship to Home"), so two of one name would be
        // ambiguous; case and surrounding spaces do not make a label different.
        let labels: Vec<String> = raw.iter().map(|a| a.label.trim().to_lowercase()).collect();
        for (index, label) in labels.iter().enumerate() {
            if label.is_empty() {
                continue;
            }
            if let Some(first) = labels[..index].iter().position(|other| other == label) {
                violations.push((
                    format!("[{index}].label"),
                    format!("must be unique within the profile (address {first} has it too)"),
                ));
            }
        }
        if violations.is_empty() {
            Ok(Self(addresses))
        } else {
            Err(violations)
        }
    }

    /// The addresses, in the user's order.
    pub fn as_slice(&self) -> &[Address] {
        &self.0
    }
}

/// Why a language tag was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LanguageError {
    /// Longer than the 35 characters BCP 47 asks implementations to support.
    #[error("must be at most 35 characters")]
    TooLong,
    /// Not shaped like a BCP 47 tag.
    #[error("must be a BCP 47 language tag, e.g. en or pt-BR")]
    Malformed,
}

/// A preferred language: a BCP 47 tag in its canonical case (`pt-BR`, `zh-Hant-TW`), or empty for
/// the shop's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language(String);

impl Language {
    /// Checks the syntax of a BCP 47 tag (a 2-3 or 5-8 letter language, then subtags of 1 to 8
    /// letters or digits, no singleton last) and puts it in canonical case: language lower,
    /// script title, region upper. Whether the subtags are registered is not checked.
    ///
    /// # Errors
    /// Too long or malformed.
    pub fn parse(raw: &str) -> Result<Self, LanguageError> {
        let tag = raw.trim();
        if tag.is_empty() {
            return Ok(Self(String::new()));
        }
        if tag.len() > 35 {
            return Err(LanguageError::TooLong);
        }
        let subtags: Vec<&str> = tag.split('-').collect();
        let well_formed = subtags
            .iter()
            .all(|s| (1..=8).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric()));
        let language = subtags[0];
        let language_ok = matches!(language.len(), 2 | 3 | 5..=8)
            && language.chars().all(|c| c.is_ascii_alphabetic());
        let dangling_singleton = subtags.last().is_some_and(|s| s.len() == 1);
        if !well_formed || !language_ok || dangling_singleton {
            return Err(LanguageError::Malformed);
        }
        let mut canonical = vec![language.to_ascii_lowercase()];
        // After a singleton (an extension or private use) subtags keep no case convention.
        let mut in_extension = false;
        for subtag in &subtags[1..] {
            let alphabetic = subtag.chars().all(|c| c.is_ascii_alphabetic());
            in_extension |= subtag.len() == 1;
            canonical.push(match (in_extension, subtag.len(), alphabetic) {
                (false, 4, true) => {
                    let lower = subtag.to_ascii_lowercase();
                    let (first, rest) = lower.split_at(1);
                    format!("{}{rest}", first.to_ascii_uppercase())
                }
                (false, 2, true) => subtag.to_ascii_uppercase(),
                _ => subtag.to_ascii_lowercase(),
            });
        }
        Ok(Self(canonical.join("-")))
    }

    /// The tag (empty: the shop's default).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a currency code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an ISO 4217 currency code, e.g. EUR")]
pub struct CurrencyError;

/// A preferred display currency: an ISO 4217 code in upper case, or empty for the shop's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyCode(String);

impl CurrencyCode {
    /// Trims, upper-cases and checks a currency code against the ISO 4217 list.
    ///
    /// # Errors
    /// Not a circulating ISO 4217 currency.
    pub fn parse(raw: &str) -> Result<Self, CurrencyError> {
        let code = raw.trim().to_ascii_uppercase();
        if code.is_empty() || is_currency_code(&code) {
            Ok(Self(code))
        } else {
            Err(CurrencyError)
        }
    }

    /// The code (empty: the shop's default).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A profile as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The account's id.
    pub user_id: String,
    /// The account's email, normalised.
    pub email: String,
    /// The display name (may be empty).
    pub display_name: String,
    /// The saved addresses, in the user's order.
    pub addresses: Vec<Address>,
    /// Preferred language (may be empty).
    pub language: String,
    /// Preferred currency (may be empty).
    pub currency_code: String,
    /// Marketing consent.
    pub marketing_emails: bool,
    /// When the account was registered, in microseconds since the epoch.
    pub created_at: i64,
    /// When the profile last changed, in microseconds since the epoch.
    pub updated_at: i64,
}

#[cfg(test)]
mod tests;
