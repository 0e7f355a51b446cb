//! [`Startup`]: connects a service's parts, serves it, and stops what runs beside it after the
//! server has drained.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::net::TcpListener;
use tonic::{body::Body, server::NamedService};

use super::ServiceKind;
use crate::{
    access::AccessLayer,
    config::{Config, Settings},
    events::{Background, Bus, Handler, Relay, Stream, spawn_consumer},
    storage::{Database, Migrations},
};

/// The start-up of one service: what it is, its migrations, where and until when it serves, and
/// how calls are admitted. A service's `start` is given one by its
/// [`Service`](super::Service):
///
/// ```ignore
/// async fn start(startup: Startup<'_>) -> anyhow::Result<()> {
///     startup
///         .serve(|parts| async move {
///             parts.publish(Stream::Product);
///             Ok(ProductServiceServer::new(ProductApi::new(Store::new(parts.db().clone()))))
///         })
///         .await
/// }
/// ```
pub struct Startup<'a> {
    config: &'a Config,
    kind: ServiceKind,
    migrations: Migrations,
    listener: TcpListener,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
    access: Option<AccessLayer>,
    bus: Option<Bus>,
}

impl<'a> Startup<'a> {
    /// The start-up of the service `kind`, configured by `config`, whose schema `migrations`
    /// make, to serve on `listener` until `shutdown` resolves.
    pub(super) fn new(
        config: &'a Config,
        kind: ServiceKind,
        migrations: Migrations,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'a,
    ) -> Self {
        Self {
            config,
            kind,
            migrations,
            listener,
            shutdown: Box::pin(shutdown),
            access: None,
            bus: None,
        }
    }

    /// The whole configuration, for the service's own section.
    pub fn config(&self) -> &'a Config {
        self.config
    }

    /// Admits calls with `access` instead of [`AccessLayer::with_auth_keys`] (auth verifies
    /// with its own keys).
    pub fn access(mut self, access: AccessLayer) -> Self {
        self.access = Some(access);
        self
    }

    /// Uses a bus connected up front instead of connecting one while starting.
    pub fn bus(mut self, bus: Bus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Serves the service until its shutdown signal resolves, then drains.
    ///
    /// While health says NOT_SERVING, the database is connected and migrated, the bus opened and
    /// `build` called with the [`Parts`]; the service it returns is then served. What `build`
    /// registered on the parts runs until the server has drained, and is stopped then.
    ///
    /// # Errors
    /// Bad settings, an unreachable database or bus, a failed `build`, or a server failure.
    pub async fn serve<S, B, F>(self, build: B) -> anyhow::Result<()>
    where
        S: NamedService
            + tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        B: FnOnce(Parts<'a>) -> F,
        F: Future<Output = anyhow::Result<S>>,
    {
        let Self {
            config,
            kind,
            migrations,
            listener,
            shutdown,
            access,
            bus,
        } = self;
        let settings = &config.settings;
        let access = match access {
            Some(access) => access,
            None => AccessLayer::with_auth_keys(settings)?,
        };
        // Shared with the parts, so that the tasks outlive `build` and stop only after the
        // server has drained.
        let tasks = Arc::new(Mutex::new(Background::default()));
        let starting = {
            let tasks = Arc::clone(&tasks);
            async move {
                let db = Database::connect(&settings.database_url(kind)).await?;
                db.migrate(migrations).await?;
                let bus = match bus {
                    Some(bus) => bus,
                    None => Bus::connect(settings).await?,
                };
                build(Parts {
                    config,
                    kind,
                    db,
                    bus,
                    tasks,
                })
                .await
            }
        };
        let served = crate::server::run(listener, settings, access, starting, shutdown).await;
        // The server has drained (or never started): stop what ran beside it.
        drop(std::mem::take(
            &mut *tasks.lock().unwrap_or_else(PoisonError::into_inner),
        ));
        served
    }
}

impl std::fmt::Debug for Startup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Startup")
            .field("kind", &self.kind)
            .field("listener", &self.listener)
            .field("access", &self.access)
            .field("bus", &self.bus)
            .finish_non_exhaustive()
    }
}

/// What a service is built from while it starts, and where it registers what runs beside it.
pub struct Parts<'a> {
    config: &'a Config,
    kind: ServiceKind,
    db: Database,
    bus: Bus,
    /// The tasks registered so far; the [`Startup`] stops them after the server has drained.
    tasks: Arc<Mutex<Background>>,
}

impl<'a> Parts<'a> {
    /// The whole configuration, for the service's own section.
    pub fn config(&self) -> &'a Config {
        self.config
    }

    /// The platform's settings.
    pub fn settings(&self) -> &'a Settings {
        &self.config.settings
    }

    /// Which service is starting.
    pub fn kind(&self) -> ServiceKind {
        self.kind
    }

    /// The service's database, connected and migrated.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The bus.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Publishes the service's outbox to `stream` (its [`Relay`]) for as long as it serves.
    pub fn publish(&self, stream: Stream) {
        let settings = &self.config.settings.events;
        self.keep(Relay::new(self.db.clone(), self.bus.clone(), stream.name(), settings).spawn());
    }

    /// Consumes `stream` with `handler` for as long as the service serves, in the consumer
    /// group named after the service.
    pub fn consume<H: Handler>(&self, stream: Stream, handler: H) {
        let settings = &self.config.settings.events;
        self.keep(spawn_consumer(
            self.bus.clone(),
            stream.name(),
            self.kind.name(),
            handler,
            settings,
        ));
    }

    /// Runs `task` at once and then every `period` for as long as the service serves; a run
    /// that fails is logged at WARN under `name`, and the next runs as planned.
    pub fn every<T, Fut>(&self, period: Duration, name: &'static str, task: T)
    where
        T: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send,
    {
        self.periodic(period, name, task, true);
    }

    /// As [`Parts::every`], the first run one `period` from now rather than at once: for work
    /// that start-up has just done itself.
    pub fn every_after<T, Fut>(&self, period: Duration, name: &'static str, task: T)
    where
        T: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send,
    {
        self.periodic(period, name, task, false);
    }

    /// Keeps `background` running for as long as the service serves.
    pub fn keep(&self, background: Background) {
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(background);
    }

    fn periodic<T, Fut>(&self, period: Duration, name: &'static str, mut task: T, at_once: bool)
    where
        T: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send,
    {
        let mut background = Background::default();
        background.spawn(async move {
            let mut tick = tokio::time::interval(period);
            // A run that overran its period is not made up for with a burst.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            if !at_once {
                // The first tick completes at once.
                tick.tick().await;
            }
            loop {
                tick.tick().await;
                if let Err(error) = task().await {
                    tracing::warn!(task = name, error = format!("{error:#}"), "{name} failed");
                }
            }
        });
        self.keep(background);
    }
}

impl std::fmt::Debug for Parts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("kind", &self.kind)
            .field("bus", &self.bus)
            .finish_non_exhaustive()
    }
}
