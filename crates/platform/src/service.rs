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

/// A signal that resolves when a service should stop, boxed so it fits a [`Serve`] pointer.
pub type Shutdown = BoxFuture<'static, ()>;

/// A service serving, until its shutdown signal and drain are over.
pub type Serving = BoxFuture<'static, anyhow::Result<()>>;

/// How a service serves: on a listener, with its configuration, until the shutdown signal.
pub type Serve = fn(Config, TcpListener, Shutdown) -> Serving;

/// One service of the mesh, as the binary and the test kit run it: each service crate exports
/// one (`agora_product::SERVICE`, ...).
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// Which service it is.
    pub kind: ServiceKind,
    /// Its schema's migrations.
    pub migrations: Migrations,
    /// Its `serve` function.
    pub serve: Serve,
}

impl Service {
    /// Serves on `listener` until `shutdown` resolves, then drains.
    ///
    /// # Errors
    /// Bad settings, an unreachable database or bus, or a server failure.
    pub fn run(
        &self,
        config: Config,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Serving {
        (self.serve)(config, listener, Box::pin(shutdown))
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
/// `serve(&Config, TcpListener, impl Future<Output = ()>)` function, boxed into a [`Serve`].
///
/// ```ignore
/// agora_platform::service!(ServiceKind::User, store::MIGRATIONS, serve);
/// ```
#[macro_export]
macro_rules! service {
    ($kind:expr, $migrations:expr, $serve:path) => {
        /// This service, as the mesh runs it (the binary and the test kit start it from here).
        pub const SERVICE: $crate::service::Service = $crate::service::Service {
            kind: $kind,
            migrations: $migrations,
            serve: |config, listener, shutdown| {
                ::std::boxed::Box::pin(async move { $serve(&config, listener, shutdown).await })
            },
        };
    };
}
