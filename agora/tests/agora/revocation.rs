//! Revocation reaches every verifier within seconds, across real processes: `agora serve <svc>`
//! per service on PostgreSQL + Redis (and `agora up` on the embedded default). After a logout, a
//! revoked session or a removed role, the old access token is refused by auth, user, product,
//! inventory, order and the edge, each on its own, within 2 s; a fresh token still works.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use agora_contracts::agora::{
    auth::v1::{
        LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest, RevokeSessionRequest,
        SetUserRolesRequest, auth_service_client::AuthServiceClient,
    },
    inventory::v1::{GetStockRequest, inventory_service_client::InventoryServiceClient},
    order::v1::{ListOrdersRequest, order_service_client::OrderServiceClient},
    product::v1::{ListProductsRequest, product_service_client::ProductServiceClient},
    user::v1::{GetMyProfileRequest, user_service_client::UserServiceClient},
};
use agora_platform::{
    on_both_backends,
    testing::{TestBackend, TestStore, authed},
};
use tonic::{Code, transport::Channel};

use crate::helpers::{AGORA, SERVICES, free_port};

const ADMIN_EMAIL: &str = "admin@agora.local";
const PASSWORD: &str = "correct horse 7";
/// What the issue of revocation promises: every verifier refuses within this.
const WITHIN: Duration = Duration::from_secs(2);

on_both_backends!(
    a_logout_and_a_revoked_session_are_refused_by_every_process_within_two_seconds,
    a_removed_role_is_refused_by_every_process_within_two_seconds,
);

/// The mesh as operators run it, one process per service (or `agora up`), killed on drop.
struct Mesh {
    children: Vec<Child>,
    ports: Vec<(&'static str, u16)>,
    gateway: u16,
    admin_password: String,
    _stores: Vec<TestStore>,
    _dir: tempfile::TempDir,
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Mesh {
    async fn start(backend: TestBackend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(&'static str, u16)> = SERVICES.iter().map(|s| (*s, free_port())).collect();
        let gateway = free_port();
        let base = |command: &mut Command| {
            command
                .env("AGORA_LOG__FILTER", "warn")
                .env("AGORA_DATA_DIR", dir.path().join("data"))
                .env("AGORA_GATEWAY__PORT", gateway.to_string())
                .env_remove("REDIS_URL")
                .env_remove("DATABASE_URL")
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            for (service, port) in &ports {
                command.env(
                    format!("AGORA_SERVICES__{}__PORT", service.to_uppercase()),
                    port.to_string(),
                );
            }
        };
        let mut children = Vec::new();
        let mut stores = Vec::new();
        let admin_password;
        match backend {
            TestBackend::Embedded => {
                let mut command = Command::new(AGORA);
                base(&mut command);
                command.arg("up");
                children.push(command.spawn().expect("agora up starts"));
                let file = dir.path().join("data").join("admin-password");
                let deadline = Instant::now() + Duration::from_secs(60);
                admin_password = loop {
                    if let Ok(password) = std::fs::read_to_string(&file)
                        && !password.trim().is_empty()
                    {
                        break password.trim().to_owned();
                    }
                    assert!(
                        Instant::now() < deadline,
                        "agora up wrote no admin password"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                };
            }
            TestBackend::Distributed => {
                for _ in SERVICES {
                    stores.push(TestStore::new(backend).await?);
                }
                let redis = stores[0].redis_url.clone().expect("distributed");
                let prefix = stores[0].prefix.clone();
                admin_password = format!("admin-{}", uuid::Uuid::now_v7().simple());
                let secrets: Vec<(String, String)> = SERVICES[1..]
                    .iter()
                    .map(|s| (s.to_uppercase(), format!("secret-{}", uuid::Uuid::now_v7())))
                    .collect();
                let launch = |command: &mut Command| {
                    base(command);
                    command
                        .env("REDIS_URL", &redis)
                        .env("AGORA_EVENTS__PREFIX", format!("{prefix}events:"))
                        .env("AGORA_AUTH__CACHE_PREFIX", format!("{prefix}auth:"))
                        .env("AGORA_PRODUCT__CACHE_PREFIX", format!("{prefix}product:"))
                        .env("AGORA_GATEWAY__CACHE_PREFIX", format!("{prefix}gateway:"))
                        .env("AGORA_AUTH__ADMIN_EMAIL", ADMIN_EMAIL)
                        .env("AGORA_AUTH__ADMIN_PASSWORD", &admin_password);
                    for (service, secret) in &secrets {
                        command.env(format!("AGORA_AUTH__SERVICE_CLIENTS__{service}"), secret);
                    }
                };
                for (service, store) in SERVICES.iter().zip(&stores) {
                    let mut command = Command::new(AGORA);
                    launch(&mut command);
                    command
                        .args(["serve", service])
                        .env("DATABASE_URL", &store.database_url);
                    if let Some((_, secret)) =
                        secrets.iter().find(|(s, _)| *s == service.to_uppercase())
                    {
                        command.env("AGORA_SERVICE_SECRET", secret);
                    }
                    children.push(command.spawn().expect("agora serve starts"));
                }
                let mut command = Command::new(AGORA);
                launch(&mut command);
                command.args(["serve", "gateway"]);
                children.push(command.spawn().expect("agora serve gateway starts"));
            }
        }
        let mut mesh = Self {
            children,
            ports,
            gateway,
            admin_password,
            _stores: stores,
            _dir: dir,
        };
        mesh.wait_ready().await;
        Some(mesh)
    }

    /// Waits for the edge's `/readyz/upstreams`: every upstream SERVING as the edge sees it
    /// (`/readyz` says only that the edge itself is up).
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some((200, _)) = http(self.gateway, "GET", "/readyz/upstreams", None, "").await {
                return;
            }
            for child in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("a mesh process exited early: {status}");
                }
            }
            assert!(Instant::now() < deadline, "the mesh never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn channel(&self, service: &str) -> Channel {
        let port = self
            .ports
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, p)| *p)
            .expect("a service of the mesh");
        Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("a URL")
            .connect_lazy()
    }

    fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel("auth"))
    }

    /// Registers an account; returns its email, access token and refresh token.
    async fn register(&self, name: &str) -> (String, String, String) {
        let email = format!("{name}-{}@example.com", uuid::Uuid::now_v7().simple());
        let answer = self
            .auth()
            .register(RegisterRequest {
                email: email.clone(),
                password: PASSWORD.into(),
            })
            .await
            .expect("registered")
            .into_inner();
        let tokens = answer.tokens.expect("tokens");
        (email, tokens.access_token, tokens.refresh_token)
    }

    async fn login(&self, email: &str, password: &str) -> String {
        self.auth()
            .login(LoginRequest {
                email: email.into(),
                password: password.into(),
            })
            .await
            .expect("signed in")
            .into_inner()
            .tokens
            .expect("tokens")
            .access_token
    }

    async fn user_id(&self, token: &str) -> String {
        let claims = token.split('.').nth(1).expect("a JWT");
        let claims =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims)
                .expect("base64url claims");
        let claims: serde_json::Value = serde_json::from_slice(&claims).expect("JSON claims");
        claims["sub"].as_str().expect("a subject").to_owned()
    }

    async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, &self.admin_password).await
    }

    /// Which of the six verifiers refuse `token` as unauthenticated: each service called
    /// directly on its own port (a method any signed-in user may call, or a public one, which
    /// still checks a token sent), and the edge, whose own refusal carries its challenge.
    async fn refusers(&self, token: &str) -> Vec<&'static str> {
        let mut refused = Vec::new();
        let code = |result: Result<(), tonic::Status>| result.err().map(|s| s.code());
        let calls = [
            (
                "auth",
                code(
                    self.auth()
                        .list_sessions(authed(Default::default(), token))
                        .await
                        .map(drop),
                ),
            ),
            (
                "user",
                code(
                    UserServiceClient::new(self.channel("user"))
                        .get_my_profile(authed(GetMyProfileRequest {}, token))
                        .await
                        .map(drop),
                ),
            ),
            (
                "product",
                code(
                    ProductServiceClient::new(self.channel("product"))
                        .list_products(authed(
                            ListProductsRequest {
                                page_size: 1,
                                ..Default::default()
                            },
                            token,
                        ))
                        .await
                        .map(drop),
                ),
            ),
            (
                "inventory",
                code(
                    InventoryServiceClient::new(self.channel("inventory"))
                        .get_stock(authed(
                            GetStockRequest {
                                product_id: uuid::Uuid::now_v7().to_string(),
                            },
                            token,
                        ))
                        .await
                        .map(drop),
                ),
            ),
            (
                "order",
                code(
                    OrderServiceClient::new(self.channel("order"))
                        .list_orders(authed(ListOrdersRequest::default(), token))
                        .await
                        .map(drop),
                ),
            ),
        ];
        for (service, code) in calls {
            if code == Some(Code::Unauthenticated) {
                refused.push(service);
            }
        }
        let edge = http(self.gateway, "GET", "/v1/users/me", Some(token), "")
            .await
            .expect("the edge answers");
        if edge.0 == 401
            && edge
                .1
                .to_ascii_lowercase()
                .contains("www-authenticate: bearer")
        {
            refused.push("edge");
        }
        refused
    }

    /// Waits until every verifier refuses `token`; returns how long that took.
    async fn until_refused_everywhere(&self, token: &str) -> Duration {
        let started = Instant::now();
        loop {
            let refused = self.refusers(token).await;
            if refused.len() == 6 {
                let took = started.elapsed();
                eprintln!("refused by every verifier after {took:?}");
                return took;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "after 10 s only {refused:?} refuse the revoked token"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One HTTP/1.1 request; returns the status and the whole head.
async fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{authorization}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned();
    Some((status, head))
}

async fn a_logout_and_a_revoked_session_are_refused_by_every_process_within_two_seconds(
    backend: TestBackend,
) {
    let Some(mesh) = Mesh::start(backend).await else {
        return;
    };

    // Logout: the session's access token dies with it.
    let (_, access, refresh) = mesh.register("leaving").await;
    assert!(
        mesh.refusers(&access).await.is_empty(),
        "a live token is accepted everywhere"
    );
    mesh.auth()
        .logout(LogoutRequest {
            refresh_token: refresh,
        })
        .await
        .expect("logged out");
    let took = mesh.until_refused_everywhere(&access).await;
    assert!(
        took < WITHIN,
        "a logout took {took:?} to reach every verifier"
    );

    // RevokeSession from another device of the account: the lost device's token dies, the
    // other device's lives.
    let (email, lost_device, _) = mesh.register("lost-phone").await;
    let sessions = mesh
        .auth()
        .list_sessions(authed(Default::default(), &lost_device))
        .await
        .expect("listed")
        .into_inner()
        .sessions;
    let lost_session = sessions[0].session_id.clone();
    let laptop = mesh.login(&email, PASSWORD).await;
    mesh.auth()
        .revoke_session(authed(
            RevokeSessionRequest {
                session_id: lost_session,
            },
            &laptop,
        ))
        .await
        .expect("revoked");
    let took = mesh.until_refused_everywhere(&lost_device).await;
    assert!(
        took < WITHIN,
        "a revoked session took {took:?} to reach every verifier"
    );
    assert!(
        mesh.refusers(&laptop).await.is_empty(),
        "the account's other session is untouched"
    );

    // Someone else's session is untouched.
    let (_, other, _) = mesh.register("bystander").await;
    assert!(mesh.refusers(&other).await.is_empty());
}

async fn a_removed_role_is_refused_by_every_process_within_two_seconds(backend: TestBackend) {
    let Some(mesh) = Mesh::start(backend).await else {
        return;
    };
    let admin = mesh.admin_token().await;
    let (_, first, refresh) = mesh.register("deputy").await;
    let user_id = mesh.user_id(&first).await;
    mesh.auth()
        .set_user_roles(authed(
            SetUserRolesRequest {
                user_id: user_id.clone(),
                roles: vec![agora_contracts::agora::auth::v1::Role::Admin as i32],
            },
            &admin,
        ))
        .await
        .expect("promoted");
    // The promotion reaches tokens at the next refresh; tokens issued in the same millisecond
    // as a change count as older, so the refresh is retried until its token is accepted.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut refresh = refresh;
    let deputy = loop {
        let tokens = mesh
            .auth()
            .refresh(RefreshRequest {
                refresh_token: refresh,
            })
            .await
            .expect("refreshed")
            .into_inner()
            .tokens
            .expect("tokens");
        refresh = tokens.refresh_token;
        if mesh.refusers(&tokens.access_token).await.is_empty() {
            break tokens.access_token;
        }
        assert!(
            Instant::now() < deadline,
            "the promoted token is never accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (status, _) = http(
        mesh.gateway,
        "GET",
        "/v1/users?pageSize=1",
        Some(&deputy),
        "",
    )
    .await
    .expect("the edge answers");
    assert_eq!(status, 200, "the deputy is an administrator for now");

    mesh.auth()
        .set_user_roles(authed(
            SetUserRolesRequest {
                user_id,
                roles: vec![],
            },
            &admin,
        ))
        .await
        .expect("demoted");
    let took = mesh.until_refused_everywhere(&deputy).await;
    assert!(
        took < WITHIN,
        "a removed role took {took:?} to reach every verifier"
    );

    // The demoted account signs in again as an ordinary user: its new token works where a user
    // may go, and no longer where an administrator may.
    let renewed = mesh
        .auth()
        .refresh(RefreshRequest {
            refresh_token: refresh,
        })
        .await
        .expect("the session itself lives on")
        .into_inner()
        .tokens
        .expect("tokens")
        .access_token;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !mesh.refusers(&renewed).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "a token issued after the change is refused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = http(
        mesh.gateway,
        "GET",
        "/v1/users?pageSize=1",
        Some(&renewed),
        "",
    )
    .await
    .expect("the edge answers");
    assert_eq!(status, 403, "the demoted account is no administrator");
    // The administrator who did it is untouched.
    assert!(mesh.refusers(&admin).await.is_empty());
}
