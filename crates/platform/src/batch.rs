//! The ids of a batch request (a BatchGetStock, a BatchGetProducts): how many one request may
//! name, and each id once, so every service that answers a batch reads it the same way.

use std::fmt::Display;

use crate::error::FieldViolations;

/// Parses the ids of `noun`s that a batch request names in its repeated field `<noun>_ids`
/// (`product_ids` for products): 1 to `max` of them, each checked by `parse`. An id named again
/// (in any spelling `parse` accepts) is kept once, at its first position, with the spelling it
/// had there, so an answer can name a missing id as the caller spelled it.
///
/// # Errors
/// Every violation: none or more than `max` ids (on `<noun>_ids`), and each id `parse` refuses
/// (on `<noun>_ids[i]`).
pub fn parse_ids<'a, T: PartialEq, E: Display>(
    noun: &str,
    raw: &'a [String],
    max: usize,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<(T, &'a str)>, FieldViolations> {
    let field = format!("{noun}_ids");
    let mut violations = FieldViolations::default();
    if raw.is_empty() {
        violations.add(&field, format!("must name at least one {noun}"));
    } else if raw.len() > max {
        violations.add(&field, format!("must name at most {max} {noun}s"));
    }
    let mut ids: Vec<(T, &str)> = Vec::with_capacity(raw.len());
    for (i, spelling) in raw.iter().enumerate() {
        if let Some(id) = violations.take(&format!("{field}[{i}]"), parse(spelling))
            && !ids.iter().any(|(seen, _)| *seen == id)
        {
            ids.push((id, spelling));
        }
    }
    violations.into_result(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(raw: &str) -> Result<u32, &'static str> {
        raw.trim().parse().map_err(|_| "must be a number")
    }

    fn fields(violations: FieldViolations) -> Vec<(String, String)> {
        let status = tonic::Status::from(violations.into_error());
        tonic_types::StatusExt::get_error_details(&status)
            .bad_request()
            .map(|request| {
                request
                    .field_violations
                    .iter()
                    .map(|v| (v.field.clone(), v.description.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn each_id_is_kept_once_at_its_first_position_with_its_first_spelling() {
        let raw = [" 2".to_owned(), "1".to_owned(), "2".to_owned()];
        let ids = parse_ids("thing", &raw, 3, number).expect("valid");
        assert_eq!(ids, [(2, " 2"), (1, "1")]);
    }

    #[test]
    fn a_batch_names_one_to_max_ids_and_every_bad_one_is_reported() {
        let none = parse_ids("thing", &[], 2, number).expect_err("empty");
        assert_eq!(
            fields(none),
            [(
                "thing_ids".to_owned(),
                "must name at least one thing".to_owned()
            )]
        );
        let raw = ["x".to_owned(), "1".to_owned(), "y".to_owned()];
        let too_many = parse_ids("thing", &raw, 2, number).expect_err("three");
        assert_eq!(
            fields(too_many),
            [
                (
                    "thing_ids".to_owned(),
                    "must name at most 2 things".to_owned()
                ),
                ("thing_ids[0]".to_owned(), "must be a number".to_owned()),
                ("thing_ids[2]".to_owned(), "must be a number".to_owned()),
            ]
        );
    }
}
