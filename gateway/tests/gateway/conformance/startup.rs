//! The rules the edge refuses to start with: each proto here must fail `Routes::build` with a
//! message saying why, and the conformance proto itself must build.

use agora_gateway::routes::Routes;

use super::edge::{compile, pool};

/// The start-up error of the rules in `file` (relative to `gateway/tests/proto`).
fn refused(file: &str) -> String {
    let pool = compile(file).expect("the test proto compiles");
    match Routes::build(&pool) {
        Ok(_) => panic!("{file}: the edge starts with rules it must refuse"),
        Err(error) => error.to_string(),
    }
}

fn assert_refused(file: &str, reason: &str) {
    let error = refused(file);
    assert!(error.contains(reason), "{file}: {error}");
}

#[test]
fn every_rule_of_the_conformance_proto_builds_into_a_route() {
    let routes = Routes::build(&pool()).expect("the conformance rules build");
    // 15 methods; GetBook adds two additional bindings and Echo one.
    assert_eq!(routes.iter().count(), 18);
}

#[test]
fn a_get_rule_with_a_body_is_refused_at_start_up() {
    assert_refused("startup/get_with_body.proto", "may not have a body");
}

#[test]
fn a_delete_rule_with_a_body_is_refused_at_start_up() {
    assert_refused(
        "conformance/startup/delete_with_body.proto",
        "may not have a body",
    );
}

#[test]
fn two_identical_templates_under_one_method_are_refused_at_start_up() {
    assert_refused("startup/ambiguous.proto", "ambiguous template");
}

#[test]
fn an_additional_binding_identical_to_another_rule_is_refused_at_start_up() {
    assert_refused(
        "conformance/startup/ambiguous_binding.proto",
        "ambiguous template",
    );
}

#[test]
fn additional_bindings_nested_twice_are_refused_at_start_up() {
    assert_refused(
        "conformance/startup/nested_additional_bindings.proto",
        "may not nest",
    );
}

#[test]
fn a_path_variable_naming_a_missing_field_is_refused_at_start_up() {
    assert_refused("startup/unknown_variable.proto", "is not a field");
}

#[test]
fn a_path_variable_naming_a_repeated_field_is_refused_at_start_up() {
    assert_refused(
        "conformance/startup/repeated_variable.proto",
        "must name a singular scalar",
    );
}

#[test]
fn a_path_variable_naming_a_message_field_is_refused_at_start_up() {
    assert_refused(
        "conformance/startup/message_variable.proto",
        "must name a singular scalar",
    );
}

#[test]
fn a_path_variable_reaching_into_a_map_is_refused_at_start_up() {
    assert_refused(
        "conformance/startup/map_variable.proto",
        "must name a singular scalar",
    );
}

#[test]
fn a_path_variable_reaching_into_a_well_known_type_is_refused_at_start_up() {
    assert_refused(
        "conformance/startup/well_known_variable.proto",
        "must name a singular scalar",
    );
}

#[test]
fn a_body_naming_a_missing_field_is_refused_at_start_up() {
    assert_refused("conformance/startup/unknown_body.proto", "body field");
}

#[test]
fn a_response_body_naming_a_missing_field_is_refused_at_start_up() {
    assert_refused(
        "conformance/startup/unknown_response_body.proto",
        "response_body field",
    );
}
