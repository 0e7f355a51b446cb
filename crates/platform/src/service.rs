//! The shape of a service: what it is ([`ServiceKind`], [`Service`]) and how it starts
//! ([`Startup`]).
//!
//! Every service starts the same way: connect its database and migrate it, open the bus, start
//! what runs beside the server (the outbox relay, consumers, periodic tasks), build the handlers,
//! serve with [`crate::server::run`], and stop the tasks once the server has drained. A service
//! declares its parts to a [`Startup`]; the platform owns their lifetime.
//!
//! # Layout
//! - `kind`: [`ServiceKind`], the five services with their names and default ports.
//! - `startup`: [`Startup`] and the [`Parts`] a service is built from.

use futures::future::BoxFuture;
use tokio::net::TcpListener;

use crate::{
    config::Config,
    storage::{Database, Migrations},
};

mod kind;
mod startup;

pub use kind::ServiceKind;
pub use startup::{Parts, Startup};

/// A service serving, until its shutdown signal and drain are over.
pub type Serving = BoxFuture<'static, anyhow::Result<()>>;

/// How a service starts: it declares its parts to the [`Startup`] it is given, which serves them.
pub type Start = for<'a> fn(Startup<'a>) -> BoxFuture<'a, anyhow::Result<()>>;

/// One service of the mesh, as the binary and the test kit run it: each service crate exports
/// one (`agora_product::SERVICE`, ...).
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// Which service it is.
    pub kind: ServiceKind,
    /// Its schema's migrations.
    pub migrations: Migrations,
    /// Its `start` function.
    pub start: Start,
}

impl Service {
    /// The start-up of this service with `config`, on `listener` until `shutdown` resolves: for a
    /// service crate that starts itself with more than its [`Start`] takes (order's test hooks).
    pub fn startup<'a>(
        &self,
        config: &'a Config,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'a,
    ) -> Startup<'a> {
        Startup::new(config, self.kind, self.migrations, listener, shutdown)
    }

    /// Serves on `listener` until `shutdown` resolves, then drains.
    ///
    /// # Errors
    /// Bad settings, an unreachable database or bus, or a server failure.
    pub async fn serve(
        &self,
        config: &Config,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        (self.start)(self.startup(config, listener, shutdown)).await
    }

    /// As [`Service::serve`], owning its configuration: a future to spawn.
    ///
    /// # Errors
    /// As [`Service::serve`].
    pub fn run(
        &self,
        config: Config,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Serving {
        let service = *self;
        Box::pin(async move { service.serve(&config, listener, shutdown).await })
    }

    /// Applies the service's pending migrations to its database.
    ///
    /// # Errors
    /// An unreachable database or a failed migration.
    pub async fn migrate(&self, config: &Config) -> anyhow::Result<()> {
        let db = Database::connect(&config.settings.database_url(self.kind)).await?;
        db.migrate(self.migrations).await
    }
}

/// Declares a service crate's `SERVICE`: its [`ServiceKind`], its [`Migrations`] and its
/// `start(Startup<'_>)` function, boxed into a [`Start`].
///
/// ```ignore
/// agora_platform::service!(ServiceKind::User, store::MIGRATIONS, start);
/// ```
#[macro_export]
macro_rules! service {
    ($kind:expr, $migrations:expr, $start:path) => {
        /// This service, as the mesh runs it (the binary and the test kit start it from here).
        pub const SERVICE: $crate::service::Service = $crate::service::Service {
            kind: $kind,
            migrations: $migrations,
            start: |startup| ::std::boxed::Box::pin($start(startup)),
        };
    };
}
