//! The services of the mesh, in one list.
//!
//! Each service crate describes itself with one [`Service`] value (its kind, its migrations and
//! its `serve`); this crate gathers the five, so that what runs them (the `agora` binary) names
//! each service once, here, instead of matching on kinds of its own.

use agora_platform::{config::ServiceKind, service::Service};

/// Every service, in start-up order (auth first: the others verify tokens with its keys), the
/// order of [`ServiceKind::ALL`].
pub const ALL: [Service; 5] = [
    agora_auth::SERVICE,
    agora_user::SERVICE,
    agora_product::SERVICE,
    agora_inventory::SERVICE,
    agora_order::SERVICE,
];

/// The service of a kind.
pub fn get(kind: ServiceKind) -> &'static Service {
    match kind {
        ServiceKind::Auth => &ALL[0],
        ServiceKind::User => &ALL[1],
        ServiceKind::Product => &ALL[2],
        ServiceKind::Inventory => &ALL[3],
        ServiceKind::Order => &ALL[4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once_in_start_up_order_and_found_by_kind() {
        let kinds: Vec<_> = ALL.iter().map(|service| service.kind).collect();
        assert_eq!(kinds, ServiceKind::ALL);
        for kind in ServiceKind::ALL {
            assert_eq!(get(kind).kind, kind);
        }
    }
}
