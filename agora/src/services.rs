//! The services this binary can run, and how to serve and migrate each.

use agora_platform::{
    config::{Config, ServiceKind},
    storage::{Database, Migrations},
};
use clap::ValueEnum;
use tokio::{net::TcpListener, sync::watch};

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
    /// In start-up order: auth first, since the others verify tokens with its keys.
    pub(crate) const ALL: [Service; 5] = [
        Service::Auth,
        Service::User,
        Service::Product,
        Service::Inventory,
        Service::Order,
    ];

    pub(crate) fn kind(self) -> ServiceKind {
        match self {
            Service::Auth => ServiceKind::Auth,
            Service::User => ServiceKind::User,
            Service::Product => ServiceKind::Product,
            Service::Inventory => ServiceKind::Inventory,
            Service::Order => ServiceKind::Order,
        }
    }

    /// The name its health is reported under.
    pub(crate) fn grpc_name(self) -> &'static str {
        self.kind().grpc_name()
    }

    fn migrations(self) -> Migrations {
        match self {
            Service::Auth => agora_auth::store::MIGRATIONS,
            Service::User => agora_user::store::MIGRATIONS,
            Service::Product => agora_product::store::MIGRATIONS,
            Service::Inventory => agora_inventory::store::MIGRATIONS,
            Service::Order => agora_order::store::MIGRATIONS,
        }
    }

    /// Serves until `stop` turns true.
    pub(crate) async fn serve(
        self,
        config: Config,
        listener: TcpListener,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let shutdown = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        match self {
            Service::Auth => agora_auth::serve(&config, listener, shutdown).await,
            Service::User => agora_user::serve(&config, listener, shutdown).await,
            Service::Product => agora_product::serve(&config, listener, shutdown).await,
            Service::Inventory => agora_inventory::serve(&config, listener, shutdown).await,
            Service::Order => agora_order::serve(&config, listener, shutdown).await,
        }
    }

    /// Applies the service's pending migrations.
    pub(crate) async fn migrate(self, config: &Config) -> anyhow::Result<()> {
        let db = Database::connect(&config.settings.database_url(self.kind())).await?;
        db.migrate(self.migrations()).await
    }
}
