//! Product ids as requests name them: one id, or a batch of them.

use std::collections::HashMap;

use agora_contracts::agora::product::v1 as pb;
use agora_platform::batch;

use crate::error::ServiceError;

/// The most ids one BatchGetProducts may ask for.
pub const MAX_BATCH: usize = 100;

/// Parses a product id: any UUID spelling, normalised to the hyphenated lower-case form ids are
/// stored in.
///
/// # Errors
/// Not a UUID.
pub fn parse_id(raw: &str) -> Result<String, &'static str> {
    if raw.is_empty() {
        return Err("is required");
    }
    uuid::Uuid::parse_str(raw)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| "must be a UUID")
}

/// A product id, normalised (see [`parse_id`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductId(String);

impl ProductId {
    /// Parses an id (see [`parse_id`]).
    ///
    /// # Errors
    /// Empty, or not a UUID.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        parse_id(raw).map(Self)
    }

    /// The normalised id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalised id, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A BatchGetProducts request: each id once, at its first position, with the spelling the
/// caller used (a missing product is reported as the caller spelled it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchLookup {
    /// `(normalised id, id as sent)`, in request order, without repeats.
    wanted: Vec<(String, String)>,
}

impl TryFrom<pb::BatchGetProductsRequest> for BatchLookup {
    type Error = ServiceError;

    /// Checks the number of ids and every id, reporting every violation at once.
    fn try_from(request: pb::BatchGetProductsRequest) -> Result<Self, Self::Error> {
        let ids = batch::parse_ids("product", &request.product_ids, MAX_BATCH, parse_id)?;
        let wanted = ids
            .into_iter()
            .map(|(id, spelling)| (id, spelling.to_owned()))
            .collect();
        Ok(Self { wanted })
    }
}

impl BatchLookup {
    /// The normalised ids to look up, each once.
    pub fn ids(&self) -> Vec<String> {
        self.wanted.iter().map(|(id, _)| id.clone()).collect()
    }

    /// Splits the lookup's answer: what was `found` (by normalised id) in request order, and
    /// the ids that were not, as the caller spelled them.
    pub fn answer<T>(self, mut found: HashMap<String, T>) -> (Vec<T>, Vec<String>) {
        let mut present = Vec::with_capacity(found.len());
        let mut missing = Vec::new();
        for (id, raw) in self.wanted {
            match found.remove(&id) {
                Some(value) => present.push(value),
                None => missing.push(raw),
            }
        }
        (present, missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::violated_fields;

    fn lookup(ids: &[&str]) -> Result<BatchLookup, ServiceError> {
        BatchLookup::try_from(pb::BatchGetProductsRequest {
            product_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        })
    }

    #[test]
    fn ids_are_normalised_to_hyphenated_lower_case() {
        let id = uuid::Uuid::now_v7();
        let simple = id.simple().to_string().to_uppercase();
        assert_eq!(parse_id(&simple), Ok(id.hyphenated().to_string()));
        assert_eq!(parse_id("42"), Err("must be a UUID"));
        assert_eq!(parse_id(""), Err("is required"));
    }

    #[test]
    fn a_batch_keeps_each_id_once_at_its_first_position_and_answers_in_that_order() {
        let first = uuid::Uuid::now_v7();
        let second = uuid::Uuid::now_v7();
        let shouted = first.simple().to_string().to_uppercase();
        let lookup = lookup(&[&shouted, &second.to_string(), &first.to_string()]).expect("valid");
        assert_eq!(lookup.ids(), [first.to_string(), second.to_string()]);
        let found = HashMap::from([(second.to_string(), "second")]);
        assert_eq!(lookup.answer(found), (vec!["second"], vec![shouted]));
    }

    #[test]
    fn a_batch_with_every_id_wrong_reports_every_violation() {
        let error = lookup(&["", "42", "nope"]).expect_err("invalid");
        assert_eq!(
            violated_fields(error),
            ["product_ids[0]", "product_ids[1]", "product_ids[2]"]
        );
    }

    #[test]
    fn a_batch_must_name_one_to_a_hundred_products() {
        assert_eq!(
            violated_fields(lookup(&[]).expect_err("empty")),
            ["product_ids"]
        );
        let id = uuid::Uuid::now_v7().to_string();
        let too_many = vec![id.as_str(); MAX_BATCH + 1];
        assert_eq!(
            violated_fields(lookup(&too_many).expect_err("too many")),
            ["product_ids"]
        );
        assert!(lookup(&too_many[..MAX_BATCH]).is_ok());
    }
}
