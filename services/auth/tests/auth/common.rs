//! Starts a real auth server for a test: its own database (a SQLite file, or a fresh PostgreSQL
//! database with a Redis key prefix), a free port, and a handle that stops it.

// `pub` is for the test modules of this binary, the widest reach these helpers have.
#![allow(unreachable_pub)]

use std::{net::SocketAddr, time::Duration};

use agora_contracts::agora::auth::v1::{self as pb, auth_service_client::AuthServiceClient};
use agora_platform::{
    config::Config,
    testing::{TestBackend, TestStore},
};
use figment::Figment;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

pub const ADMIN_EMAIL: &str = "admin@agora.test";
pub const ADMIN_PASSWORD: &str = "admin password 1";
pub const ORDER_SECRET: &str = "order-service-secret";

pub struct TestAuth {
    // No test dials the address itself today; the handle still says where the server is.
    #[allow(dead_code)]
    pub addr: SocketAddr,
    pub channel: Channel,
    pub store: TestStore,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Builds the configuration a test server runs with; `tweak` adds settings.
pub fn config(store: &TestStore, tweak: &[(&str, serde_json::Value)]) -> Config {
    let mut config = Config::from_figment(Figment::new())
        .expect("defaults are valid")
        .with("services.auth.database_url", &store.database_url)
        .and_then(|c| c.with("auth.cache_prefix", &store.prefix))
        .and_then(|c| c.with("auth.admin_email", ADMIN_EMAIL))
        .and_then(|c| c.with("auth.admin_password", ADMIN_PASSWORD))
        .and_then(|c| c.with("auth.service_clients.order", ORDER_SECRET))
        .and_then(|c| c.with("auth.max_concurrent_hashes", 2))
        .and_then(|c| c.with("log.filter", "warn"))
        .expect("test settings are valid");
    if let Some(redis) = &store.redis_url {
        config = config.with("redis_url", redis).expect("valid");
    }
    for (key, value) in tweak {
        config = config.with(key, value).expect("valid test setting");
    }
    config
}

/// Auth serving `config` on a free port until the returned sender is dropped or sent to: its
/// address, a lazy channel to it, that sender, and the server's task.
async fn serve(
    config: Config,
) -> (
    SocketAddr,
    Channel,
    oneshot::Sender<()>,
    JoinHandle<anyhow::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        agora_auth::SERVICE
            .serve(&config, listener, async {
                let _ = stopped.await;
            })
            .await
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid URL")
        .connect_lazy();
    (addr, channel, stop, task)
}

impl TestAuth {
    /// Starts auth on `backend`; `None` when the backend's servers are down outside CI.
    pub async fn spawn(backend: TestBackend) -> Option<Self> {
        Self::spawn_with(backend, &[]).await
    }

    pub async fn spawn_with(
        backend: TestBackend,
        tweak: &[(&str, serde_json::Value)],
    ) -> Option<Self> {
        let store = TestStore::new(backend).await?;
        let config = config(&store, tweak);
        Some(Self::start(store, config).await)
    }

    pub async fn start(store: TestStore, config: Config) -> Self {
        let (addr, channel, stop, task) = serve(config).await;
        let auth = Self {
            addr,
            channel,
            store,
            stop: Some(stop),
            task: Some(task),
        };
        auth.wait_until_serving().await;
        auth
    }

    /// Another server on this one's database and cache (a second replica), with `tweak`.
    pub async fn replica(&self, tweak: &[(&str, serde_json::Value)]) -> Replica {
        let (_, channel, stop, task) = serve(config(&self.store, tweak)).await;
        Replica {
            channel,
            _stop: stop,
            task,
        }
    }

    pub async fn wait_until_serving(&self) {
        wait_until_serving(&self.channel).await;
    }

    pub fn client(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel.clone())
    }

    /// Triggers shutdown and waits for the server to stop.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("server task"),
            None => Ok(()),
        }
    }

    /// Registers a fresh account and returns (user id, tokens).
    pub async fn register(&self, email: &str) -> (String, pb::Tokens) {
        let response = self
            .client()
            .register(pb::RegisterRequest {
                email: email.into(),
                password: "correct horse 7".into(),
            })
            .await
            .expect("registration succeeds")
            .into_inner();
        (response.user_id, response.tokens.expect("tokens"))
    }

    pub async fn login(
        &self,
        email: &str,
        password: &str,
    ) -> Result<pb::LoginResponse, tonic::Status> {
        self.client()
            .login(pb::LoginRequest {
                email: email.into(),
                password: password.into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// A Login as a client at `address` (auth believes the loopback peer's `x-forwarded-for`)
    /// presenting the device token `device`; the answer and the device token it hands out.
    pub async fn login_from(
        &self,
        email: &str,
        password: &str,
        address: &str,
        device: Option<&str>,
    ) -> Result<(pb::LoginResponse, String), tonic::Status> {
        login_on(&self.channel, email, password, address, device).await
    }

    /// The live sessions of the account behind `access_token`.
    pub async fn sessions(&self, access_token: &str) -> Result<Vec<pb::Session>, tonic::Status> {
        self.client()
            .list_sessions(authed(pb::ListSessionsRequest {}, access_token))
            .await
            .map(|r| r.into_inner().sessions)
    }

    /// Exchanges a refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<pb::Tokens, tonic::Status> {
        self.client()
            .refresh(pb::RefreshRequest {
                refresh_token: refresh_token.into(),
            })
            .await
            .map(|r| r.into_inner().tokens.expect("tokens"))
    }

    /// The published key set.
    pub async fn jwks(&self) -> Vec<pb::Jwk> {
        self.client()
            .get_jwks(pb::GetJwksRequest {})
            .await
            .expect("GetJwks answers")
            .into_inner()
            .keys
    }

    /// Asks for a signing key rotation with `token`; the new key id on success.
    pub async fn rotate(&self, token: &str) -> Result<String, tonic::Status> {
        self.client()
            .rotate_signing_key(authed(pb::RotateSigningKeyRequest {}, token))
            .await
            .map(|r| r.into_inner().kid)
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .expect("the configured admin can sign in")
            .tokens
            .expect("tokens")
            .access_token
    }
}

impl Drop for TestAuth {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A second auth server sharing a [`TestAuth`]'s stores; it stops when dropped.
pub struct Replica {
    pub channel: Channel,
    _stop: oneshot::Sender<()>,
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// [`TestAuth::login_from`] on any auth server.
pub async fn login_on(
    channel: &Channel,
    email: &str,
    password: &str,
    address: &str,
    device: Option<&str>,
) -> Result<(pb::LoginResponse, String), tonic::Status> {
    let mut request = tonic::Request::new(pb::LoginRequest {
        email: email.into(),
        password: password.into(),
    });
    let metadata = request.metadata_mut();
    metadata.insert("x-forwarded-for", address.parse().expect("an address"));
    if let Some(device) = device {
        metadata.insert("agora-device", device.parse().expect("a token is ASCII"));
    }
    let response = AuthServiceClient::new(channel.clone())
        .login(request)
        .await?;
    let device = response
        .metadata()
        .get("agora-device")
        .expect("a successful login hands out a device token")
        .to_str()
        .expect("ASCII")
        .to_owned();
    Ok((response.into_inner(), device))
}

/// Waits until the auth server behind `channel` says SERVING.
pub async fn wait_until_serving(channel: &Channel) {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let mut health = HealthClient::new(channel.clone());
    for _ in 0..200 {
        let status = health
            .check(HealthCheckRequest {
                service: "agora.auth.v1.AuthService".into(),
            })
            .await
            .map(|r| r.into_inner().status)
            .ok();
        if status == Some(tonic_health::ServingStatus::Serving as i32) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("auth did not become SERVING within 10 s");
}

pub use agora_platform::testing::authed;

/// A unique email for one test.
pub fn email(name: &str) -> String {
    format!("{name}.{}@example.com", uuid::Uuid::now_v7().simple())
}
