//! The console (`/console`, `/console/events`) of a whole edge in front of the real auth and
//! product services: who may see it, and the snapshot its stream carries.

use std::net::{IpAddr, SocketAddr};

use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, TestMesh};
use axum::extract::ConnectInfo;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use crate::whole_edge::{PATIENCE, edge_config, http1, serve_edge};

/// Auth and product on the embedded backend, and the settings of an edge in front of them.
async fn mesh() -> TestMesh {
    let mut mesh = TestMesh::start(TestBackend::Embedded)
        .await
        .expect("the embedded backend needs no server");
    mesh.spawn_service(agora_product::SERVICE).await;
    mesh
}

#[tokio::test]
async fn the_console_wants_an_administrators_token_unless_open_on_loopback() {
    let mesh = mesh().await;
    let (edge, _stop) = serve_edge(edge_config(&mesh, ServiceKind::Product)).await;

    let anonymous = http1(edge, "GET /console HTTP/1.1", b"").await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some("Bearer realm=\"agora\"")
    );
    // The page itself comes back, so a browser can ask for a token; no data is in it.
    assert!(String::from_utf8_lossy(&anonymous.body).contains("Administrators only"));
    let events = http1(edge, "GET /console/events HTTP/1.1", b"").await;
    assert_eq!(events.status, 401);

    let (_, user) = mesh.register("console.viewer@example.com").await;
    let customer = http1(
        edge,
        &format!("GET /console HTTP/1.1\r\nauthorization: Bearer {user}"),
        b"",
    )
    .await;
    assert_eq!(customer.status, 403);

    let admin = mesh.admin_token().await;
    let page = http1(
        edge,
        &format!("GET /console HTTP/1.1\r\nauthorization: Bearer {admin}"),
        b"",
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|value| value.starts_with("text/html")),
        "{}",
        page.head
    );
    assert!(
        page.header("content-security-policy")
            .is_some_and(|value| value.starts_with("default-src 'none'")),
        "{}",
        page.head
    );

    let (open, _stop_open) = serve_edge(
        edge_config(&mesh, ServiceKind::Product)
            .with("gateway.console.open_on_loopback", true)
            .expect("a valid setting"),
    )
    .await;
    assert_eq!(
        http1(open, "GET /console HTTP/1.1", b"").await.status,
        200,
        "a loopback client needs no token where the console is open on loopback"
    );
}

#[tokio::test]
async fn open_on_loopback_still_wants_a_token_from_any_other_address() {
    let mesh = mesh().await;
    let config = edge_config(&mesh, ServiceKind::Product)
        .with("gateway.console.open_on_loopback", true)
        .expect("a valid setting");
    let edge = agora_gateway::serve::build(&config)
        .await
        .expect("the edge builds");
    let from = |ip: IpAddr| {
        let mut request = http::Request::get("/console")
            .body(axum::body::Body::empty())
            .expect("a request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip, 40000)));
        request
    };
    let remote = edge
        .service
        .clone()
        .oneshot(from(IpAddr::from([10, 1, 2, 3])))
        .await
        .expect("infallible");
    assert_eq!(remote.status(), 401);
    let local = edge
        .service
        .clone()
        .oneshot(from(IpAddr::from([127, 0, 0, 1])))
        .await
        .expect("infallible");
    assert_eq!(local.status(), 200);
}

#[tokio::test]
async fn the_event_stream_carries_a_snapshot_of_every_upstream() {
    let mesh = mesh().await;
    let config = edge_config(&mesh, ServiceKind::Product)
        .with("gateway.console.interval", "200ms")
        .expect("a valid setting");
    let edge = agora_gateway::serve::build(&config)
        .await
        .expect("the edge builds");
    let admin = mesh.admin_token().await;
    let request = http::Request::get("/console/events")
        .header("authorization", format!("Bearer {admin}"))
        .body(axum::body::Body::empty())
        .expect("a request");
    let response = edge
        .service
        .clone()
        .oneshot(request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "{:?}",
        response.headers()
    );
    let mut body = response.into_body();
    let mut text = String::new();
    let snapshot = tokio::time::timeout(PATIENCE, async {
        loop {
            let frame = body
                .frame()
                .await
                .expect("the stream stays open")
                .expect("a frame");
            if let Some(data) = frame.data_ref() {
                text.push_str(&String::from_utf8_lossy(data));
            }
            if let Some(line) = text
                .split("\n\n")
                .find(|event| event.starts_with("event: snapshot"))
                .and_then(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
            {
                break serde_json::from_str::<serde_json::Value>(line).expect("JSON");
            }
        }
    })
    .await
    .expect("a snapshot within the patience");
    let names: Vec<&str> = snapshot["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|service| service["name"].as_str())
        .collect();
    for kind in ServiceKind::ALL {
        assert!(names.contains(&kind.name()), "{names:?}");
    }
    let product = snapshot["services"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == "product"))
        .expect("product");
    assert_eq!(product["grpc"], "agora.product.v1.ProductService");
    assert!(product["health"].is_string(), "{product}");
    assert_eq!(snapshot["sources"][0]["source"], "this process");
}
