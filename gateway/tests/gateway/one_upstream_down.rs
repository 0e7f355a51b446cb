//! One service down behind a whole edge: the edge stays ready and keeps serving every other
//! service's routes; the stopped service's routes answer at once, 503 with `Retry-After` on
//! REST and UNAVAILABLE on gRPC passthrough, `/readyz?verbose` names it, and its routes work
//! again within seconds of its return.

use std::time::Duration;

use agora_contracts::agora::user::v1 as user_pb;
use agora_contracts::agora::user::v1::user_service_client::UserServiceClient;
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, TestMesh, email, eventually, on_both_backends};
use tokio::time::Instant;

use crate::whole_edge::{Answer, PATIENCE, edge_config, http1, serve_edge};

/// The longest a call to a service the edge knows is down may take to be refused.
const FAST: Duration = Duration::from_secs(1);

fn json(answer: &Answer) -> serde_json::Value {
    serde_json::from_slice(&answer.body).unwrap_or_else(|e| panic!("JSON ({e}): {answer:?}"))
}

async fn the_edge_stays_ready_and_fails_fast_only_the_routes_of_a_stopped_service(
    backend: TestBackend,
) {
    let Some(mut mesh) = TestMesh::start(backend).await else {
        return;
    };
    mesh.spawn_service(agora_user::SERVICE).await;
    mesh.spawn_service(agora_product::SERVICE).await;
    // Product's settings name auth and user where the mesh runs them.
    let (edge, _stop) = serve_edge(edge_config(&mesh, ServiceKind::Product)).await;
    let (_, token) = mesh.register(&email("down")).await;
    let head = format!("GET /v1/users/me HTTP/1.1\r\nauthorization: Bearer {token}");
    let profile = || http1(edge, &head, b"");
    eventually(
        "the profile is served through the edge",
        PATIENCE,
        || async { (profile().await.status == 200).then_some(()) },
    )
    .await;

    mesh.stop(ServiceKind::User).await;
    // Before the edge's next check notices, a call is tried: it fails as fast as the refused
    // connection, and says when to come back too.
    let started = Instant::now();
    let first = profile().await;
    assert!(
        started.elapsed() < FAST,
        "answered in {:?}",
        started.elapsed()
    );
    assert_eq!(first.status, 503, "{first:?}");
    assert_eq!(first.header("retry-after"), Some("1"), "{first:?}");
    eventually(
        "/readyz?verbose shows user unreachable",
        PATIENCE,
        || async {
            let report = json(&http1(edge, "GET /readyz?verbose HTTP/1.1", b"").await);
            (report["upstreams"]["user"]["status"] == "UNREACHABLE").then_some(())
        },
    )
    .await;

    let ready = http1(edge, "GET /readyz HTTP/1.1", b"").await;
    assert_eq!(ready.status, 200, "the edge itself stays ready: {ready:?}");
    let report = http1(edge, "GET /readyz?verbose HTTP/1.1", b"").await;
    assert_eq!(report.status, 200, "{report:?}");
    let report = json(&report);
    assert_eq!(report["status"], "SERVING", "{report}");
    assert_eq!(
        report["upstreams"]["product"]["status"], "SERVING",
        "{report}"
    );
    assert!(
        report["upstreams"]["user"]["lastCheck"].is_string(),
        "{report}"
    );
    let whole = http1(edge, "GET /readyz/upstreams HTTP/1.1", b"").await;
    assert_eq!(
        whole.status, 503,
        "not every upstream is serving: {whole:?}"
    );
    assert!(
        json(&whole)["message"]
            .as_str()
            .is_some_and(|m| m.contains("user (UNREACHABLE)")),
        "{whole:?}"
    );

    let products = http1(edge, "GET /v1/products?pageSize=2 HTTP/1.1", b"").await;
    assert_eq!(products.status, 200, "browsing goes on: {products:?}");
    assert!(json(&products)["products"].is_array(), "{products:?}");

    let started = Instant::now();
    let refused = profile().await;
    assert!(
        started.elapsed() < FAST,
        "refused in {:?}",
        started.elapsed()
    );
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.header("retry-after"), Some("1"), "{refused:?}");
    let body = json(&refused);
    assert_eq!(body["code"], tonic::Code::Unavailable as i32, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("user service")),
        "{body}"
    );

    let malformed = http1(
        edge,
        &format!("PATCH /v1/users/me HTTP/1.1\r\nauthorization: Bearer {token}\r\ncontent-type: application/json"),
        b"{\"profile\":",
    )
    .await;
    assert_eq!(
        malformed.status, 400,
        "bad input is a 400 even now: {malformed:?}"
    );

    let mut client = UserServiceClient::connect(format!("http://{edge}"))
        .await
        .expect("the edge speaks h2c");
    let mut call = tonic::Request::new(user_pb::GetMyProfileRequest::default());
    call.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a header value"),
    );
    let started = Instant::now();
    let status = client.get_my_profile(call).await.expect_err("user is down");
    assert!(
        started.elapsed() < FAST,
        "refused in {:?}",
        started.elapsed()
    );
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");

    mesh.restart(ServiceKind::User).await;
    eventually(
        "the profile is served again",
        Duration::from_secs(5),
        || async { (profile().await.status == 200).then_some(()) },
    )
    .await;
}

on_both_backends!(the_edge_stays_ready_and_fails_fast_only_the_routes_of_a_stopped_service);
