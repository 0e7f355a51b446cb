//! What an UpdateMyProfile changes: the fields its mask selects, and the checked new values.

use super::{Addresses, CurrencyCode, DisplayName, Language};

/// Why an update mask path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    /// `user_id`, `email`, `create_time` or `update_time`.
    #[error("names a read-only field")]
    ReadOnly,
    /// A sub-field of `addresses`: the list is replaced as a whole.
    #[error("addresses are replaced as a whole list: name `addresses`")]
    AddressSubField,
    /// Anything else.
    #[error(
        "names no updatable field (display_name, addresses, preferences, \
         preferences.language, preferences.currency_code, preferences.marketing_emails)"
    )]
    Unknown,
}

/// Which updatable fields an update changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    /// `display_name`.
    pub display_name: bool,
    /// `addresses`, as a whole list.
    pub addresses: bool,
    /// `preferences.language`.
    pub language: bool,
    /// `preferences.currency_code`.
    pub currency_code: bool,
    /// `preferences.marketing_emails`.
    pub marketing_emails: bool,
}

impl Selection {
    /// Adds the field(s) one update mask path names; `preferences` names all its sub-fields and
    /// `*` every updatable field.
    ///
    /// # Errors
    /// The path names a read-only or unknown field.
    pub fn add_path(&mut self, path: &str) -> Result<(), MaskError> {
        let path = path.trim();
        let top = path.split('.').next().unwrap_or_default();
        match path {
            "*" => {
                self.display_name = true;
                self.addresses = true;
                self.add_path("preferences")?;
            }
            "display_name" => self.display_name = true,
            "addresses" => self.addresses = true,
            "preferences" => {
                self.language = true;
                self.currency_code = true;
                self.marketing_emails = true;
            }
            "preferences.language" => self.language = true,
            "preferences.currency_code" => self.currency_code = true,
            "preferences.marketing_emails" => self.marketing_emails = true,
            _ if matches!(top, "user_id" | "email" | "create_time" | "update_time") => {
                return Err(MaskError::ReadOnly);
            }
            _ if top == "addresses" => return Err(MaskError::AddressSubField),
            _ => return Err(MaskError::Unknown),
        }
        Ok(())
    }

    /// Whether nothing is selected.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A checked change to a profile: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChange {
    /// The new display name.
    pub display_name: Option<DisplayName>,
    /// The new list of addresses.
    pub addresses: Option<Addresses>,
    /// The new language preference.
    pub language: Option<Language>,
    /// The new currency preference.
    pub currency_code: Option<CurrencyCode>,
    /// The new marketing consent.
    pub marketing_emails: Option<bool>,
}

impl ProfileChange {
    /// Whether the change changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
