use super::*;

fn user(roles: &[&str]) -> Principal {
    Principal {
        subject: "u".into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

#[test]
fn every_method_in_the_contracts_declares_an_access_rule() {
    let policy = AccessPolicy::from_descriptors(agora_contracts::FILE_DESCRIPTOR_SET)
        .expect("the contracts decode");
    let missing: Vec<_> = policy
        .methods()
        .filter(|(_, access)| access.is_none())
        .map(|(path, _)| path.to_owned())
        .collect();
    assert!(
        policy.methods().count() > 20,
        "the contracts define the mesh's methods"
    );
    assert!(
        missing.is_empty(),
        "methods without an access option: {missing:?}"
    );
}

#[test]
fn the_policy_reads_each_level_from_the_contracts() {
    let policy = AccessPolicy::from_descriptors(agora_contracts::FILE_DESCRIPTOR_SET)
        .expect("the contracts decode");
    let rule = |path: &str| policy.rule(path).expect("declared");
    assert_eq!(
        rule("/agora.auth.v1.AuthService/Login"),
        Some(Access::Public)
    );
    assert_eq!(
        rule("/agora.auth.v1.AuthService/ListSessions"),
        Some(Access::User)
    );
    assert_eq!(
        rule("/agora.auth.v1.AuthService/SetUserRoles"),
        Some(Access::Admin)
    );
    assert_eq!(
        rule("/agora.inventory.v1.InventoryService/Reserve"),
        Some(Access::Service)
    );
    assert_eq!(rule("/grpc.health.v1.Health/Check"), None);
    let unknown = policy
        .rule("/agora.auth.v1.AuthService/Nope")
        .expect_err("unknown");
    assert_eq!(unknown.code(), tonic::Code::Unimplemented);
}

#[test]
fn a_method_without_a_rule_is_denied() {
    let policy = AccessPolicy {
        methods: HashMap::from([("/x.v1.S/M".to_owned(), None)]),
    };
    let denied = policy.rule("/x.v1.S/M").expect_err("no rule");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}

#[test]
fn each_level_admits_exactly_its_callers() {
    use tonic::Code::{PermissionDenied, Unauthenticated};
    let code = |access, principal: Option<Principal>| {
        authorize(access, principal.as_ref())
            .err()
            .map(|s| s.code())
    };
    assert_eq!(code(Access::Public, None), None);
    assert_eq!(code(Access::User, None), Some(Unauthenticated));
    assert_eq!(code(Access::User, Some(user(&[]))), None);
    assert_eq!(
        code(Access::User, Some(user(&["service"]))),
        Some(PermissionDenied)
    );
    assert_eq!(code(Access::Admin, Some(user(&[]))), Some(PermissionDenied));
    assert_eq!(code(Access::Admin, Some(user(&["admin"]))), None);
    assert_eq!(
        code(Access::Service, Some(user(&["admin"]))),
        Some(PermissionDenied)
    );
    assert_eq!(code(Access::Service, Some(user(&["service"]))), None);
}

#[test]
fn service_methods_want_what_the_service_access_mode_says() {
    use ServiceAccess::{Both, Certificate, Either, Token};
    use tonic::Code::{PermissionDenied, Unauthenticated};
    let certificate = |id: &str, service: Option<&str>| PeerIdentity {
        spiffe_id: id.into(),
        service: service.map(str::to_owned),
    };
    let order = certificate("spiffe://agora/service/order", Some("order"));
    let edge = certificate("spiffe://agora/edge/gateway", None);
    let token = |subject: &str, roles: &[&str]| {
        Some(Principal {
            subject: subject.into(),
            ..user(roles)
        })
    };
    let who = |mode, token: Option<Principal>, peer: Option<&PeerIdentity>| {
        authorize_service(mode, token, peer).map(|p| p.subject)
    };
    let code = |result: Result<String, Status>| result.err().map(|s| s.code());

    assert_eq!(
        who(Token, token("order", &["service"]), None)
            .ok()
            .as_deref(),
        Some("order")
    );
    assert_eq!(code(who(Token, None, Some(&order))), Some(Unauthenticated));
    assert_eq!(
        who(Certificate, None, Some(&order)).ok().as_deref(),
        Some("order")
    );
    assert_eq!(
        code(who(Certificate, None, Some(&edge))),
        Some(PermissionDenied)
    );
    assert_eq!(
        code(who(Certificate, token("order", &["service"]), None)),
        Some(Unauthenticated)
    );
    assert_eq!(
        who(Either, None, Some(&order)).ok().as_deref(),
        Some("order")
    );
    assert_eq!(
        who(Either, token("order", &["service"]), Some(&edge))
            .ok()
            .as_deref(),
        Some("order")
    );
    assert!(who(Either, token("u", &[]), Some(&edge)).is_err());
    assert_eq!(
        who(Both, token("order", &["service"]), Some(&order))
            .ok()
            .as_deref(),
        Some("order")
    );
    assert_eq!(
        code(who(Both, token("product", &["service"]), Some(&order))),
        Some(PermissionDenied)
    );
    assert_eq!(code(who(Both, None, Some(&order))), Some(Unauthenticated));
}
