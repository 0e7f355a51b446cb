//! [`ServiceKind`]: the five services of the mesh, with the names and port each is known by.

use agora_contracts::agora::{
    auth::v1::auth_service_server, inventory::v1::inventory_service_server,
    order::v1::order_service_server, product::v1::product_service_server,
    user::v1::user_service_server,
};
use serde::Deserialize;

/// The five services of the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// Accounts, sessions and tokens.
    Auth,
    /// Profiles.
    User,
    /// The catalog.
    Product,
    /// Stock and reservations.
    Inventory,
    /// Orders.
    Order,
}

impl ServiceKind {
    /// Every service, in start-up order (auth first: the others verify tokens with its keys).
    pub const ALL: [ServiceKind; 5] = [
        ServiceKind::Auth,
        ServiceKind::User,
        ServiceKind::Product,
        ServiceKind::Inventory,
        ServiceKind::Order,
    ];

    /// The lower-case name used in settings, database names, service tokens and as the consumer
    /// group of the service's event consumers.
    pub const fn name(self) -> &'static str {
        match self {
            ServiceKind::Auth => "auth",
            ServiceKind::User => "user",
            ServiceKind::Product => "product",
            ServiceKind::Inventory => "inventory",
            ServiceKind::Order => "order",
        }
    }

    /// The full gRPC name of the service (`agora.auth.v1.AuthService`, ...), which its health is
    /// reported under: taken from the generated code, so it cannot drift from the contracts.
    pub const fn grpc_name(self) -> &'static str {
        match self {
            ServiceKind::Auth => auth_service_server::SERVICE_NAME,
            ServiceKind::User => user_service_server::SERVICE_NAME,
            ServiceKind::Product => product_service_server::SERVICE_NAME,
            ServiceKind::Inventory => inventory_service_server::SERVICE_NAME,
            ServiceKind::Order => order_service_server::SERVICE_NAME,
        }
    }

    /// The port the service listens on unless `services.<name>.port` says otherwise.
    pub const fn default_port(self) -> u16 {
        match self {
            ServiceKind::Auth => 50051,
            ServiceKind::User => 50052,
            ServiceKind::Product => 50053,
            ServiceKind::Inventory => 50054,
            ServiceKind::Order => 50055,
        }
    }
}

impl std::fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::ServiceKind;

    #[test]
    fn grpc_names_are_the_contracts_service_names() {
        let names: Vec<_> = ServiceKind::ALL.map(ServiceKind::grpc_name).to_vec();
        assert_eq!(
            names,
            [
                "agora.auth.v1.AuthService",
                "agora.user.v1.UserService",
                "agora.product.v1.ProductService",
                "agora.inventory.v1.InventoryService",
                "agora.order.v1.OrderService",
            ]
        );
    }

    #[test]
    fn each_service_has_its_own_default_port() {
        let ports: Vec<_> = ServiceKind::ALL.map(ServiceKind::default_port).to_vec();
        assert_eq!(ports, [50051, 50052, 50053, 50054, 50055]);
    }
}
