//! Reading a method's access option, `(agora.options.v1.access)`, from its descriptor: the one
//! place that knows how the option is encoded, for the services' [`AccessPolicy`] and the edge.
//!
//! [`AccessPolicy`]: super::AccessPolicy

use prost_reflect::{MethodDescriptor, Value};

use super::Access;

/// The full name of the access option in the contracts.
pub const ACCESS_OPTION: &str = "agora.options.v1.access";

/// The access rule of one method, as its descriptor says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The method declares this level.
    Declared(Access),
    /// The method's descriptors know the option but the method declares none (or a level this
    /// build does not know): nobody may call it.
    Undeclared,
    /// The method's file does not import the option (a service outside the contracts): its own
    /// service decides.
    Foreign,
}

/// Reads the access rule of a method from its descriptor.
pub fn rule_of(method: &MethodDescriptor) -> Rule {
    let Some(extension) = method.parent_pool().get_extension_by_name(ACCESS_OPTION) else {
        return Rule::Foreign;
    };
    // A file that does not import the option cannot declare it: a service in another language
    // that joined the edge by its reflection shares the pool but not the contracts' rules.
    let declaring_file = extension.parent_file();
    if !method
        .parent_file()
        .dependencies()
        .any(|file| file.name() == declaring_file.name())
    {
        return Rule::Foreign;
    }
    let options = method.options();
    if !options.has_extension(&extension) {
        return Rule::Undeclared;
    }
    match *options.get_extension(&extension) {
        Value::EnumNumber(1) => Rule::Declared(Access::Public),
        Value::EnumNumber(2) => Rule::Declared(Access::User),
        Value::EnumNumber(3) => Rule::Declared(Access::Admin),
        Value::EnumNumber(4) => Rule::Declared(Access::Service),
        _ => Rule::Undeclared,
    }
}

#[cfg(test)]
mod tests {
    use prost_reflect::DescriptorPool;

    use super::*;

    fn contracts() -> DescriptorPool {
        DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET).expect("the contracts decode")
    }

    fn rule(pool: &DescriptorPool, service: &str, method: &str) -> Rule {
        let method = pool
            .get_service_by_name(service)
            .and_then(|s| s.methods().find(|m| m.name() == method))
            .expect("a method of the set");
        rule_of(&method)
    }

    #[test]
    fn each_level_is_read_from_the_access_option_of_the_contracts() {
        let pool = contracts();
        for (service, method, access) in [
            ("agora.auth.v1.AuthService", "Login", Access::Public),
            ("agora.user.v1.UserService", "GetMyProfile", Access::User),
            (
                "agora.inventory.v1.InventoryService",
                "AdjustStock",
                Access::Admin,
            ),
            (
                "agora.inventory.v1.InventoryService",
                "Reserve",
                Access::Service,
            ),
        ] {
            assert_eq!(
                rule(&pool, service, method),
                Rule::Declared(access),
                "{method}"
            );
        }
    }

    #[test]
    fn a_method_of_a_file_that_does_not_import_the_option_is_foreign() {
        let foreign = prost_types::FileDescriptorProto {
            name: Some("greet.proto".into()),
            package: Some("greet.v1".into()),
            message_type: vec![prost_types::DescriptorProto {
                name: Some("Hello".into()),
                ..Default::default()
            }],
            service: vec![prost_types::ServiceDescriptorProto {
                name: Some("Greeter".into()),
                method: vec![prost_types::MethodDescriptorProto {
                    name: Some("Greet".into()),
                    input_type: Some(".greet.v1.Hello".into()),
                    output_type: Some(".greet.v1.Hello".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            syntax: Some("proto3".into()),
            ..Default::default()
        };
        let alone = DescriptorPool::from_file_descriptor_set(prost_types::FileDescriptorSet {
            file: vec![foreign.clone()],
        })
        .expect("a valid set");
        assert_eq!(rule(&alone, "greet.v1.Greeter", "Greet"), Rule::Foreign);
        let mut shared = contracts();
        shared
            .add_file_descriptor_proto(foreign)
            .expect("added beside the contracts");
        assert_eq!(rule(&shared, "greet.v1.Greeter", "Greet"), Rule::Foreign);
        assert_eq!(
            rule(&shared, "agora.auth.v1.AuthService", "Login"),
            Rule::Declared(Access::Public)
        );
    }
}
