//! What the command line names: the servers `agora serve` runs and the services `agora migrate`
//! migrates. How each is served and migrated is the one list of [`agora_services`].

use agora_platform::config::ServiceKind;
use clap::ValueEnum;

/// What `agora serve` can run: one of the services, or the REST edge in front of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Server {
    /// Accounts, sessions and tokens.
    Auth,
    /// Profiles.
    User,
    /// The catalog.
    Product,
    /// Stock, its ledger and reservations.
    Inventory,
    /// Orders and the reservation saga.
    Order,
    /// The REST-to-gRPC edge (HTTP on `gateway.port`): JSON routes from the contracts' HTTP
    /// rules, gRPC and gRPC-Web passthrough, probes and the OpenAPI document.
    Gateway,
}

impl Server {
    /// The service it is, or `None` for the gateway.
    pub(crate) fn service(self) -> Option<Service> {
        match self {
            Server::Auth => Some(Service::Auth),
            Server::User => Some(Service::User),
            Server::Product => Some(Service::Product),
            Server::Inventory => Some(Service::Inventory),
            Server::Order => Some(Service::Order),
            Server::Gateway => None,
        }
    }
}

/// The services this build contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Service {
    /// Accounts, sessions and tokens.
    Auth,
    /// Profiles.
    User,
    /// The catalog.
    Product,
    /// Stock, its ledger and reservations.
    Inventory,
    /// Orders and the reservation saga.
    Order,
}

impl Service {
    /// Which service it is.
    pub(crate) fn kind(self) -> ServiceKind {
        match self {
            Service::Auth => ServiceKind::Auth,
            Service::User => ServiceKind::User,
            Service::Product => ServiceKind::Product,
            Service::Inventory => ServiceKind::Inventory,
            Service::Order => ServiceKind::Order,
        }
    }

    /// How to serve and migrate it.
    pub(crate) fn service(self) -> &'static agora_platform::service::Service {
        agora_services::get(self.kind())
    }
}
