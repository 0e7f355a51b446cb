//! Rules the contracts keep that `buf lint` cannot check: which methods face the edge.

use prost_reflect::{DescriptorPool, DynamicMessage, Value};

/// Methods with no HTTP rule on purpose: called by services or operators over gRPC only.
const GRPC_ONLY: [&str; 2] = [
    "agora.auth.v1.AuthService.IssueServiceToken",
    "agora.auth.v1.AuthService.RotateSigningKey",
];

fn pool() -> DescriptorPool {
    DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set decodes")
}

fn option(options: &DynamicMessage, pool: &DescriptorPool, name: &str) -> Option<Value> {
    let extension = pool
        .get_extension_by_name(name)
        .expect("declared extension");
    options
        .has_extension(&extension)
        .then(|| options.get_extension(&extension).into_owned())
}

#[test]
fn every_edge_method_has_an_http_rule_and_no_internal_one_does() {
    let pool = pool();
    let mut checked = 0;
    for service in pool
        .services()
        .filter(|s| s.package_name().starts_with("agora."))
    {
        for method in service.methods() {
            let options = method.options();
            let access = option(&options, &pool, "agora.options.v1.access");
            let http = option(&options, &pool, "google.api.http");
            let internal =
                access == Some(Value::EnumNumber(4)) || GRPC_ONLY.contains(&method.full_name());
            assert_eq!(
                http.is_some(),
                !internal,
                "{}: internal methods carry no HTTP rule, edge methods carry one",
                method.full_name()
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} methods found");
}

#[test]
fn all_five_services_and_the_events_are_in_the_contracts() {
    let pool = pool();
    for service in [
        "agora.auth.v1.AuthService",
        "agora.user.v1.UserService",
        "agora.product.v1.ProductService",
        "agora.inventory.v1.InventoryService",
        "agora.order.v1.OrderService",
    ] {
        assert!(pool.get_service_by_name(service).is_some(), "{service}");
    }
    let envelope = pool
        .get_message_by_name("agora.events.v1.EventEnvelope")
        .expect("the event envelope");
    assert!(envelope.get_field_by_name("payload").is_some());
    let watch = pool
        .get_service_by_name("agora.order.v1.OrderService")
        .and_then(|s| s.methods().find(|m| m.name() == "WatchOrder"))
        .expect("WatchOrder");
    assert!(watch.is_server_streaming());
}

#[test]
fn the_descriptor_set_keeps_the_comments_for_reflection_and_docs() {
    let pool = pool();
    let file = pool
        .get_file_by_name("agora/auth/v1/auth.proto")
        .expect("auth.proto");
    let source = file
        .file_descriptor_proto()
        .source_code_info
        .as_ref()
        .expect("source info is kept");
    assert!(source.location.iter().any(|l| {
        l.leading_comments()
            .contains("Creates an account and signs it in.")
    }));
}
