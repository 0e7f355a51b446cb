//! [`TestMesh`]: the services of the mesh started in the test process, each on its own port
//! and its own database, stopped and restarted at will.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use crate::{ADMIN_EMAIL, ADMIN_PASSWORD, ServeFn, Shutdown, USER_PASSWORD};
use agora_contracts::agora::auth::v1::{self as auth_pb, auth_service_client::AuthServiceClient};
pub(crate) use agora_platform::testing::TestBackend;
use agora_platform::{
    config::{Config, ServiceKind},
    events::Bus,
    storage::Database,
    testing::TestStore,
};
use figment::Figment;
use tokio::net::TcpListener;
use tonic::transport::Channel;

mod running;

use running::Running;

/// Services of one test, and what they share.
pub struct TestMesh {
    backend: TestBackend,
    /// This test's Redis key prefix and bus name.
    prefix: String,
    redis_url: Option<String>,
    services: HashMap<ServiceKind, Running>,
}

impl std::fmt::Debug for TestMesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The running services hold their serve functions and tasks, which print nothing useful.
        let running: HashMap<_, _> = self
            .services
            .iter()
            .map(|(kind, r)| (kind, r.addr))
            .collect();
        f.debug_struct("TestMesh")
            .field("backend", &self.backend)
            .field("prefix", &self.prefix)
            .field("services", &running)
            .finish_non_exhaustive()
    }
}

fn secret(kind: ServiceKind) -> String {
    format!("{}-test-secret", kind.name())
}

impl TestMesh {
    /// Starts auth on `backend`; `None` when the backend's servers are down outside CI.
    ///
    /// # Panics
    /// When auth does not start.
    pub async fn start(backend: TestBackend) -> Option<Self> {
        Self::start_with_redis(backend, None).await
    }

    /// Like [`TestMesh::start`], with every service of the mesh on the Redis at `redis_url`
    /// (a [`PrivateRedis`], for tests that stop or empty it), on either backend.
    ///
    /// # Panics
    /// When auth does not start.
    pub async fn start_on_redis(backend: TestBackend, redis_url: String) -> Option<Self> {
        Self::start_with_redis(backend, Some(redis_url)).await
    }

    async fn start_with_redis(backend: TestBackend, redis_url: Option<String>) -> Option<Self> {
        let probe = TestStore::new(backend).await?;
        let mut mesh = Self {
            backend,
            prefix: probe.prefix.clone(),
            redis_url: redis_url.or_else(|| probe.redis_url.clone()),
            services: HashMap::new(),
        };
        drop(probe);
        mesh.spawn_service(agora_auth::SERVICE).await;
        Some(mesh)
    }

    /// Which backend this mesh runs on.
    pub fn backend(&self) -> TestBackend {
        self.backend
    }

    /// The Redis server of the distributed backend.
    pub fn redis_url(&self) -> Option<String> {
        self.redis_url.clone()
    }

    /// This test's key prefix (also the name of its bus).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Starts `service` (a service crate's `SERVICE`) and waits until it is SERVING.
    ///
    /// # Panics
    /// When the service does not become SERVING within 20 s.
    pub async fn spawn_service(&mut self, service: agora_platform::service::Service) {
        self.spawn(service.kind, move |config, listener, shutdown| {
            service.run(config, listener, shutdown)
        })
        .await;
    }

    /// Starts `kind` with `serve` (its crate's `serve` function) and waits until it is SERVING.
    ///
    /// # Panics
    /// When the service does not become SERVING within 20 s.
    pub async fn spawn<F, Fut>(&mut self, kind: ServiceKind, serve: F)
    where
        F: Fn(Config, TcpListener, Shutdown) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.spawn_with(kind, &[], serve).await;
    }

    /// Like [`TestMesh::spawn`], with extra settings (`("inventory.sweep_interval", json!("1s"))`).
    ///
    /// # Panics
    /// On an invalid setting, or when the service does not become SERVING within 20 s.
    pub async fn spawn_with<F, Fut>(
        &mut self,
        kind: ServiceKind,
        tweak: &[(&str, serde_json::Value)],
        serve: F,
    ) where
        F: Fn(Config, TcpListener, Shutdown) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let store = TestStore::new(self.backend)
            .await
            .expect("the backend answered a moment ago");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("a bound address");
        let config = self.config(kind, &store, addr, tweak);
        let serve: ServeFn =
            Arc::new(move |config, listener, shutdown| Box::pin(serve(config, listener, shutdown)));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("a valid URL")
            .connect_lazy();
        let mut running = Running {
            addr,
            channel,
            store,
            config,
            serve,
            stop: None,
            task: None,
        };
        running.launch(listener);
        running.wait_until_serving(kind).await;
        self.services.insert(kind, running);
    }

    fn config(
        &self,
        kind: ServiceKind,
        store: &TestStore,
        addr: SocketAddr,
        tweak: &[(&str, serde_json::Value)],
    ) -> Config {
        let name = kind.name();
        let mut settings: Vec<(String, serde_json::Value)> = vec![
            ("log.filter".into(), "warn".into()),
            ("events.prefix".into(), self.prefix.clone().into()),
            ("events.relay_interval".into(), "20ms".into()),
            (format!("services.{name}.port"), addr.port().into()),
            (
                format!("services.{name}.database_url"),
                store.database_url.clone().into(),
            ),
            ("service_secret".into(), secret(kind).into()),
        ];
        // The services that cache keep their keys under this test's prefix.
        if matches!(kind, ServiceKind::Auth | ServiceKind::Product) {
            settings.push((
                format!("{name}.cache_prefix"),
                format!("{}{name}:", self.prefix).into(),
            ));
        }
        if let Some(auth) = self.services.get(&ServiceKind::Auth) {
            settings.push((
                "services.auth.url".into(),
                format!("http://{}", auth.addr).into(),
            ));
        }
        for (other, running) in &self.services {
            settings.push((
                format!("services.{}.url", other.name()),
                format!("http://{}", running.addr).into(),
            ));
        }
        if kind == ServiceKind::Auth {
            settings.push(("auth.admin_email".into(), ADMIN_EMAIL.into()));
            settings.push(("auth.admin_password".into(), ADMIN_PASSWORD.into()));
            settings.push(("auth.max_concurrent_hashes".into(), 2.into()));
            for client in ServiceKind::ALL {
                settings.push((
                    format!("auth.service_clients.{}", client.name()),
                    secret(client).into(),
                ));
            }
        }
        if let Some(redis) = &self.redis_url {
            settings.push(("redis_url".into(), redis.clone().into()));
        }
        let mut config = Config::from_figment(Figment::new()).expect("defaults are valid");
        for (key, value) in settings
            .iter()
            .map(|(key, value)| (key.as_str(), value))
            .chain(tweak.iter().map(|(key, value)| (*key, value)))
        {
            config = config
                .with(key, value)
                .unwrap_or_else(|error| panic!("test setting {key}: {error}"));
        }
        config
    }

    fn running(&self, kind: ServiceKind) -> &Running {
        self.services
            .get(&kind)
            .unwrap_or_else(|| panic!("{} was not spawned in this test", kind.name()))
    }

    fn running_mut(&mut self, kind: ServiceKind) -> &mut Running {
        self.services
            .get_mut(&kind)
            .unwrap_or_else(|| panic!("{} was not spawned in this test", kind.name()))
    }

    /// A channel to a running service.
    ///
    /// # Panics
    /// When `kind` was never spawned.
    pub fn channel(&self, kind: ServiceKind) -> Channel {
        self.running(kind).channel.clone()
    }

    /// Where a service listens.
    ///
    /// # Panics
    /// When `kind` was never spawned.
    pub fn addr(&self, kind: ServiceKind) -> SocketAddr {
        self.running(kind).addr
    }

    /// The settings a service runs with.
    ///
    /// # Panics
    /// When `kind` was never spawned.
    pub fn service_config(&self, kind: ServiceKind) -> &Config {
        &self.running(kind).config
    }

    /// A pool on a service's own database, for checks the API cannot make.
    ///
    /// # Panics
    /// When `kind` was never spawned or its database does not open.
    pub async fn database(&self, kind: ServiceKind) -> Database {
        self.running(kind).store.database().await
    }

    /// This test's bus.
    ///
    /// # Panics
    /// When the test's Redis cannot be reached.
    pub async fn bus(&self) -> Bus {
        match &self.redis_url {
            Some(url) => Bus::redis(url, self.prefix.clone())
                .await
                .expect("the test Redis answers"),
            None => Bus::memory(self.prefix.clone()),
        }
    }

    /// Stops a service and waits until it has drained.
    ///
    /// # Panics
    /// When `kind` was never spawned or its server failed.
    pub async fn stop(&mut self, kind: ServiceKind) {
        self.running_mut(kind).shutdown().await;
    }

    /// Starts a stopped (or running) service again on the same port and database.
    ///
    /// # Panics
    /// When the port cannot be bound again or the service does not become SERVING.
    pub async fn restart(&mut self, kind: ServiceKind) {
        let running = self.running_mut(kind);
        running.shutdown().await;
        let listener = TcpListener::bind(running.addr)
            .await
            .expect("the service's port is free again");
        running.launch(listener);
        running.wait_until_serving(kind).await;
    }

    fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel(ServiceKind::Auth))
    }

    /// Signs in and returns the access token.
    ///
    /// # Errors
    /// Whatever auth answered.
    pub async fn login(&self, email: &str, password: &str) -> Result<String, tonic::Status> {
        let response = self
            .auth()
            .login(auth_pb::LoginRequest {
                email: email.into(),
                password: password.into(),
            })
            .await?
            .into_inner();
        Ok(response.tokens.map(|t| t.access_token).unwrap_or_default())
    }

    /// An access token of the administrator.
    ///
    /// # Panics
    /// When the administrator cannot sign in.
    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .expect("the test administrator signs in")
    }

    /// Registers a new account; returns its id and an access token.
    ///
    /// # Panics
    /// When registration fails.
    pub async fn register(&self, email: &str) -> (String, String) {
        let response = self
            .auth()
            .register(auth_pb::RegisterRequest {
                email: email.into(),
                password: USER_PASSWORD.into(),
            })
            .await
            .expect("registration succeeds")
            .into_inner();
        let token = response.tokens.map(|t| t.access_token).unwrap_or_default();
        (response.user_id, token)
    }

    /// A service token, as the service `kind` gets it from auth.
    ///
    /// # Panics
    /// When auth refuses.
    pub async fn service_token(&self, kind: ServiceKind) -> String {
        self.auth()
            .issue_service_token(auth_pb::IssueServiceTokenRequest {
                client_id: kind.name().into(),
                client_secret: secret(kind),
            })
            .await
            .expect("auth issues the service token")
            .into_inner()
            .access_token
    }
}
