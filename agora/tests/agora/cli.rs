//! The `agora` binary as operators and containers use it: real processes, real signals.

use std::{
    io::Read,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use agora_platform::testing::{TestBackend, TestStore};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::{AGORA, free_port};

/// `agora` with a clean environment of settings and its own data directory.
fn agora(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(AGORA);
    command
        .env("AGORA_DATA_DIR", data_dir)
        .env("AGORA_LOG__FILTER", "warn")
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL")
        .env_remove("AUTH_DATABASE_URL")
        .current_dir(data_dir);
    command
}

async fn health_of(port: u16, service: &str) -> Option<i32> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .ok()?
        .connect_timeout(Duration::from_millis(300))
        .connect()
        .await
        .ok()?;
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .ok()
        .map(|r| r.into_inner().status)
}

async fn wait_for_status(port: u16, status: tonic_health::ServingStatus) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if health_of(port, "agora.auth.v1.AuthService").await == Some(status as i32) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("port {port} never reported {status:?}");
}

/// A plain HTTP/1.1 GET, answered in full (the connection closes after the response).
async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the gateway listens");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("an answer");
    answer
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

fn wait_with_timeout(mut child: Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut stdout = String::new();
            let mut stderr = String::new();
            if let Some(mut out) = child.stdout.take() {
                let _ = out.read_to_string(&mut stdout);
            }
            if let Some(mut err) = child.stderr.take() {
                let _ = err.read_to_string(&mut stderr);
            }
            return Output {
                status,
                stdout: stdout.into_bytes(),
                stderr: stderr.into_bytes(),
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_health_not_serving_before_the_process_exits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let child = agora(dir.path())
        .args(["serve", "auth"])
        .env("AGORA_SERVICES__AUTH__PORT", port.to_string())
        .env("AGORA_SERVER__DRAIN_DELAY", "1500ms")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agora starts");
    wait_for_status(port, tonic_health::ServingStatus::Serving).await;

    terminate(&child);
    wait_for_status(port, tonic_health::ServingStatus::NotServing).await;
    let output =
        tokio::task::spawn_blocking(move || wait_with_timeout(child, Duration::from_secs(20)))
            .await
            .expect("joined");
    assert!(
        output.status.success(),
        "a drained shutdown exits 0: {output:?}"
    );
    assert_eq!(
        health_of(port, "").await,
        None,
        "the port is closed after exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_seeds_a_fresh_data_directory_prints_where_to_point_clients_and_serves_there() {
    use agora_contracts::agora::{
        inventory::v1::{BatchGetStockRequest, inventory_service_client::InventoryServiceClient},
        product::v1::{ListProductsRequest, product_service_client::ProductServiceClient},
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // A data directory `up` creates itself, so its mode is `up`'s doing.
    let data_dir = dir.path().join("data");
    let ports: Vec<(&str, u16)> = ["AUTH", "USER", "PRODUCT", "INVENTORY", "ORDER"]
        .into_iter()
        .map(|name| (name, free_port()))
        .collect();
    let gateway_port = free_port();
    let port = |name: &str| {
        ports
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .expect("a port")
    };
    let mut command = agora(dir.path());
    command
        .arg("up")
        .env("AGORA_DATA_DIR", &data_dir)
        .env("AGORA_GATEWAY__PORT", gateway_port.to_string());
    for (name, port) in &ports {
        command.env(format!("AGORA_SERVICES__{name}__PORT"), port.to_string());
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agora starts");
    wait_for_status(port("AUTH"), tonic_health::ServingStatus::Serving).await;
    let probe = Command::new(AGORA)
        .args([
            "health",
            &format!("127.0.0.1:{}", port("INVENTORY")),
            "agora.inventory.v1.InventoryService",
        ])
        .output()
        .expect("health runs");
    assert!(probe.status.success());
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "SERVING");
    let order = Command::new(AGORA)
        .args([
            "health",
            &format!("127.0.0.1:{}", port("ORDER")),
            "agora.order.v1.OrderService",
        ])
        .output()
        .expect("health runs");
    assert_eq!(String::from_utf8_lossy(&order.stdout).trim(), "SERVING");

    // The demo catalog arrives, stocked, without anyone signing in.
    let channel = |port: u16| {
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("url")
            .connect_lazy()
    };
    let mut products = ProductServiceClient::new(channel(port("PRODUCT")));
    let mut listed = Vec::new();
    for _ in 0..400 {
        listed = products
            .list_products(ListProductsRequest {
                page_size: 100,
                ..ListProductsRequest::default()
            })
            .await
            .map(|r| r.into_inner().products)
            .unwrap_or_default();
        if listed.len() == 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed.len(), 30, "the demo catalog is loaded");
    let ids: Vec<String> = listed.iter().map(|p| p.id.clone()).collect();
    let mut stock = Vec::new();
    for _ in 0..400 {
        stock = InventoryServiceClient::new(channel(port("INVENTORY")))
            .batch_get_stock(BatchGetStockRequest {
                product_ids: ids.clone(),
            })
            .await
            .expect("stock is public")
            .into_inner()
            .stock_levels;
        if stock.iter().map(|s| s.on_hand).sum::<i64>() == 701 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stock.len(), 30, "every product has a stock record");
    assert_eq!(
        stock.iter().map(|s| s.available).sum::<i64>(),
        701,
        "and its units"
    );

    // The REST edge serves the same catalog on its own port.
    let edge = http_get(gateway_port, "/v1/products?pageSize=100").await;
    assert!(edge.starts_with("HTTP/1.1 200"), "{edge}");
    assert_eq!(edge.matches("\"sku\"").count(), 30, "{edge}");

    // `agora seed` against the running mesh changes nothing the second time.
    let mut seed = agora(dir.path());
    seed.arg("seed").env("AGORA_DATA_DIR", &data_dir);
    for (name, port) in &ports {
        seed.env(format!("AGORA_SERVICES__{name}__PORT"), port.to_string());
    }
    let seeded = seed.output().expect("seed runs");
    assert!(seeded.status.success(), "{seeded:?}");
    assert!(
        String::from_utf8_lossy(&seeded.stdout).contains("has products already"),
        "{seeded:?}"
    );

    // What holds secrets is the owner's alone, write-ahead logs included, while they are open.
    #[cfg(unix)]
    {
        let mut secrets = vec![data_dir.join("admin-password")];
        for service in ["auth", "user", "product", "inventory", "order"] {
            secrets.extend(agora_platform::private_files::sqlite_files(
                &data_dir.join(format!("{service}.db")),
            ));
        }
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(mode_of(&data_dir), 0o700, "the data directory");
        // A rollback journal lives only as long as its transaction, so read each mode once.
        let modes: Vec<(&std::path::PathBuf, u32)> = secrets
            .iter()
            .filter_map(|path| Some((path, std::fs::metadata(path).ok()?.permissions().mode())))
            .collect();
        assert!(
            modes.len() >= 6,
            "every database and the password: {modes:?}"
        );
        for (path, mode) in modes {
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }
    }

    terminate(&child);
    let stdout = child.stdout.take();
    let output =
        tokio::task::spawn_blocking(move || wait_with_timeout(child, Duration::from_secs(20)))
            .await
            .expect("joined");
    let mut printed = String::new();
    if let Some(mut out) = stdout {
        out.read_to_string(&mut printed).expect("stdout");
    }
    assert!(output.status.success(), "{output:?}");
    for (_, port) in &ports {
        assert!(printed.contains(&format!("127.0.0.1:{port}")), "{printed}");
    }
    assert!(
        printed.contains("Loaded the demo catalog: 30 products"),
        "{printed}"
    );
    assert!(printed.contains("admin@agora.local"), "{printed}");
    assert!(printed.contains("ProductService/ListProducts"), "{printed}");
    assert!(printed.contains("AuthService/Register"), "{printed}");
    assert!(printed.contains("OrderService/CreateOrder"), "{printed}");
    let first_curl = format!("curl -s 'http://127.0.0.1:{gateway_port}/v1/products?pageSize=3");
    assert!(printed.contains(&first_curl), "{printed}");
    assert!(
        !printed.contains("chmod"),
        "nothing to warn about: {printed}"
    );
    let password = std::fs::read_to_string(data_dir.join("admin-password")).expect("kept");
    assert!(
        password.trim().len() >= 24,
        "a made-up password is kept for the next run"
    );
    for service in ["auth", "user", "product", "inventory", "order"] {
        assert!(
            data_dir.join(format!("{service}.db")).exists(),
            "embedded data lives in the data directory"
        );
    }
}

#[cfg(unix)]
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_loosened_by_hand_is_reported_at_start_up_and_left_as_it_is() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("auth.db");
    std::fs::write(&database, "").expect("an empty database");
    std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let port = free_port();
    let mut child = agora(dir.path())
        .args(["serve", "auth"])
        .env("AGORA_SERVICES__AUTH__PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agora starts");
    wait_for_status(port, tonic_health::ServingStatus::Serving).await;

    terminate(&child);
    let stdout = child.stdout.take();
    let output =
        tokio::task::spawn_blocking(move || wait_with_timeout(child, Duration::from_secs(20)))
            .await
            .expect("joined");
    let mut printed = String::new();
    if let Some(mut out) = stdout {
        out.read_to_string(&mut printed).expect("stdout");
    }
    assert!(output.status.success(), "{output:?}");
    assert!(
        printed.contains(&format!("chmod 600 {}", database.display())),
        "{printed}"
    );
    assert_eq!(mode_of(&database), 0o644, "the operator's mode is kept");
}

#[test]
fn the_health_probe_fails_when_nothing_answers() {
    let port = free_port();
    let output = Command::new(AGORA)
        .args(["health", &format!("127.0.0.1:{port}"), "--timeout", "500ms"])
        .output()
        .expect("health runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("UNREACHABLE"));
}

#[test]
fn a_bad_setting_stops_start_up_and_names_the_setting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = agora(dir.path())
        .args(["serve", "auth"])
        .env("AGORA_SERVER__CONCURRENCY_LIMIT", "lots")
        .output()
        .expect("agora runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert!(stderr.contains("server.concurrency_limit"), "{stderr}");
}

async fn migrate_applies_the_schema_once_and_is_idempotent(backend: TestBackend) {
    let Some(store) = TestStore::new(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    for _ in 0..2 {
        let output = agora(dir.path())
            .args(["migrate", "auth"])
            .env("DATABASE_URL", &store.database_url)
            .output()
            .expect("agora runs");
        assert!(output.status.success(), "{output:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("migrations applied"));
    }
    let db = store.database().await;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(db.pool())
        .await
        .expect("the users table exists");
    assert_eq!(count, 0);
}

#[tokio::test]
async fn migrate_on_sqlite() {
    migrate_applies_the_schema_once_and_is_idempotent(TestBackend::Embedded).await;
}

#[tokio::test]
async fn migrate_on_postgres() {
    migrate_applies_the_schema_once_and_is_idempotent(TestBackend::Distributed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_switches_to_postgres_and_redis_by_environment_alone() {
    let Some(store) = TestStore::new(TestBackend::Distributed).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut child = agora(dir.path())
        .args(["serve", "auth"])
        .env("AGORA_SERVICES__AUTH__PORT", port.to_string())
        .env("DATABASE_URL", &store.database_url)
        .env(
            "REDIS_URL",
            store.redis_url.as_deref().expect("distributed"),
        )
        .env("AGORA_AUTH__CACHE_PREFIX", &store.prefix)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agora starts");
    wait_for_status(port, tonic_health::ServingStatus::Serving).await;

    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("valid URL")
        .connect()
        .await
        .expect("connects");
    agora_contracts::agora::auth::v1::auth_service_client::AuthServiceClient::new(channel)
        .register(agora_contracts::agora::auth::v1::RegisterRequest {
            email: "pg-user@example.com".into(),
            password: "correct horse 7".into(),
        })
        .await
        .expect("registered");
    let db = store.database().await;
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(db.pool())
        .await
        .expect("the account is in PostgreSQL");
    assert_eq!(users, 1);
    assert!(
        !dir.path().join("auth.db").exists(),
        "no SQLite file was made"
    );

    terminate(&child);
    let _ = child.stderr.take();
    let output =
        tokio::task::spawn_blocking(move || wait_with_timeout(child, Duration::from_secs(20)))
            .await
            .expect("joined");
    assert!(output.status.success());
    db.close().await;
}

/// A one-connection HTTP server on a free port that answers `response`, or never answers when
/// `response` is empty; returns its port.
fn http_server(response: &'static str) -> u16 {
    use std::io::Write as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        if response.is_empty() {
            std::thread::sleep(Duration::from_secs(5));
        } else {
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

fn http_health(url: &str) -> Output {
    Command::new(AGORA)
        .args(["health", "--http", url, "--timeout", "1s"])
        .output()
        .expect("health runs")
}

#[test]
fn the_http_probe_passes_on_2xx_and_fails_on_an_error_no_answer_or_nothing_listening() {
    let ok = http_server("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let output = http_health(&format!("http://127.0.0.1:{ok}/readyz"));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "HTTP 200");

    let unavailable = http_server("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    let output = http_health(&format!("http://127.0.0.1:{unavailable}/readyz"));
    assert!(!output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "HTTP 503");

    let silent = http_server("");
    let started = Instant::now();
    let output = http_health(&format!("http://127.0.0.1:{silent}/readyz"));
    assert!(!output.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the timeout bounds the wait"
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("UNREACHABLE"));

    let output = http_health(&format!("http://127.0.0.1:{}/readyz", free_port()));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("UNREACHABLE"));
}

#[test]
fn the_http_probe_refuses_a_url_it_cannot_ask() {
    let output = http_health("https://127.0.0.1:8443/readyz");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("http://"));
}
