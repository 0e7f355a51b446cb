use super::*;
use agora_platform::config::TokenSettings;
use agora_testkit::{TestBackend, TestMesh, email};
use axum::{Router, routing::any};
use tower::ServiceExt as _;

fn pool() -> DescriptorPool {
    DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET).expect("the contracts decode")
}

fn method(pool: &DescriptorPool, service: &str, name: &str) -> MethodDescriptor {
    pool.get_service_by_name(service)
        .and_then(|s| s.methods().find(|m| m.name() == name))
        .expect("a method of the contracts")
}

/// The edge's auth against a real auth service's keys.
async fn edge(mesh: &TestMesh) -> EdgeAuth {
    let source = GrpcKeySource::new(mesh.channel(ServiceKind::Auth));
    let verifier = Verifier::new(Arc::new(source), &TokenSettings::default());
    EdgeAuth::new(pool(), Arc::new(verifier))
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value"),
    );
    headers
}

#[test]
fn only_bearer_authorization_is_accepted() {
    assert_eq!(bearer_token(&HeaderMap::new()), Ok(None));
    assert_eq!(bearer_token(&bearer("abc")), Ok(Some("abc")));
    let mut basic = HeaderMap::new();
    basic.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Basic abc"),
    );
    assert!(bearer_token(&basic).is_err());
}

async fn each_level_admits_its_callers_and_challenges_the_rest(backend: TestBackend) {
    let Some(mesh) = TestMesh::start(backend).await else {
        return;
    };
    let auth = edge(&mesh).await;
    let pool = pool();
    let login = method(&pool, "agora.auth.v1.AuthService", "Login");
    let profile = method(&pool, "agora.user.v1.UserService", "GetMyProfile");
    let adjust = method(&pool, "agora.inventory.v1.InventoryService", "AdjustStock");
    let (user_id, user) = mesh.register(&email("edge-auth")).await;
    let admin = mesh.admin_token().await;

    assert_eq!(
        auth.admit(&login, &HeaderMap::new()).await.expect("public"),
        None
    );
    let principal = auth
        .admit(&profile, &bearer(&user))
        .await
        .expect("a signed-in user")
        .expect("a principal");
    assert_eq!(principal.subject, user_id);
    assert!(auth.admit(&adjust, &bearer(&admin)).await.is_ok());

    let anonymous = auth
        .admit(&profile, &HeaderMap::new())
        .await
        .expect_err("no token");
    assert_eq!(anonymous.status.code(), Code::Unauthenticated);
    assert_eq!(
        anonymous.challenge.expect("a challenge"),
        "Bearer realm=\"agora\""
    );

    let forged = auth
        .admit(&login, &bearer("eyJhbGciOiJFZERTQSJ9.e30.c2ln"))
        .await
        .expect_err("a bad token is refused even where none is needed");
    assert_eq!(forged.status.code(), Code::Unauthenticated);
    let challenge = forged.challenge.expect("a challenge");
    assert!(
        challenge
            .to_str()
            .expect("ascii")
            .contains("error=\"invalid_token\"")
    );

    let customer = auth
        .admit(&adjust, &bearer(&user))
        .await
        .expect_err("not an admin");
    assert_eq!(customer.status.code(), Code::PermissionDenied);
    assert!(
        customer
            .challenge
            .expect("a challenge")
            .to_str()
            .expect("ascii")
            .contains("insufficient_scope")
    );
}

async fn grpc_calls_through_the_edge_are_checked_by_path(backend: TestBackend) {
    let Some(mesh) = TestMesh::start(backend).await else {
        return;
    };
    let auth = edge(&mesh).await;
    let (_, user) = mesh.register(&email("edge-grpc")).await;
    let app = Router::new()
        .route("/{*path}", any(|| async { "upstream" }))
        .layer(axum::middleware::from_fn_with_state(auth, enforce));
    let call = |token: Option<&str>| {
        let mut request = Request::post("/agora.user.v1.UserService/GetMyProfile")
            .header("content-type", "application/grpc");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        app.clone()
            .oneshot(request.body(Body::empty()).expect("a request"))
    };
    let refused = call(None).await.expect("answered");
    assert_eq!(
        refused.status(),
        StatusCode::OK,
        "gRPC errors travel in grpc-status"
    );
    assert_eq!(refused.headers()["grpc-status"], "16");
    assert!(
        refused
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .is_none()
    );
    let admitted = call(Some(&user)).await.expect("answered");
    assert!(
        admitted.headers().get("grpc-status").is_none(),
        "reached the upstream"
    );
    // Health and reflection, and methods the contracts do not know, are not the edge's call.
    let health = app
        .clone()
        .oneshot(
            Request::post("/grpc.health.v1.Health/Check")
                .header("content-type", "application/grpc")
                .body(Body::empty())
                .expect("a request"),
        )
        .await
        .expect("answered");
    assert!(health.headers().get("grpc-status").is_none());
}

agora_testkit::on_both_backends!(
    each_level_admits_its_callers_and_challenges_the_rest,
    grpc_calls_through_the_edge_are_checked_by_path,
);
