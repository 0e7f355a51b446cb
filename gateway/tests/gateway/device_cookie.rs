//! Auth's device token through a whole edge (`serve::serve` on a TCP listener) in front of the
//! real auth and product services, on either backend: a REST login sets the `agora_device`
//! cookie, the cookie sent back makes a known device, and an attacker failing from 50 addresses
//! neither locks that device out nor gets more guesses than auth's budget. gRPC through the edge
//! carries the token as metadata.
//!
//! Clients connect from 127.0.0.2 and up (the loopback network), not the 127.0.0.1 that auth
//! trusts as the edge, so auth counts each as its own address.

use std::net::IpAddr;

use crate::whole_edge::{self, edge_config, http1_from, serve_edge};
use agora_contracts::agora::auth::v1 as pb;
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, TestMesh, USER_PASSWORD, email, on_both_backends};

on_both_backends!(a_rest_login_sets_the_device_cookie_and_sending_it_back_signs_in_under_attack);

/// Auth's default budget of unknown devices' failures per account.
const BUDGET: usize = 5;
/// Auth's default device lifetime, 90 days, in seconds.
const LIFETIME: &str = "7776000";

fn client_ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// A REST login from `from`, with `cookie` as the Cookie header.
async fn rest_login(
    edge: std::net::SocketAddr,
    from: u8,
    email: &str,
    password: &str,
    cookie: Option<&str>,
) -> whole_edge::Answer {
    let cookie = cookie
        .map(|c| format!("\r\ncookie: {c}"))
        .unwrap_or_default();
    let head = format!("POST /v1/auth/login HTTP/1.1\r\ncontent-type: application/json{cookie}");
    let body = format!(r#"{{"email":"{email}","password":"{password}"}}"#);
    http1_from(edge, client_ip(from), &head, body.as_bytes()).await
}

/// The token of an answer's `Set-Cookie: agora_device=...`.
fn device_cookie(answer: &whole_edge::Answer) -> String {
    let cookie = answer
        .header("set-cookie")
        .unwrap_or_else(|| panic!("a device cookie: {}", answer.head));
    for attribute in [
        "Path=/v1/auth",
        &format!("Max-Age={LIFETIME}"),
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(
        answer.header("grpc-metadata-agora-device").is_none(),
        "page script never sees the token: {}",
        answer.head
    );
    let (name, rest) = cookie.split_once('=').expect("name=value");
    assert_eq!(name, "agora_device");
    rest.split(';').next().expect("a value").to_owned()
}

async fn a_rest_login_sets_the_device_cookie_and_sending_it_back_signs_in_under_attack(
    backend: TestBackend,
) {
    let Some(mut mesh) = TestMesh::start(backend).await else {
        return;
    };
    mesh.spawn_service(agora_product::SERVICE).await;
    // The edge's own sign-in budget (10 a minute per address) stays on: every client here keeps
    // within it.
    let (edge, _stop) = serve_edge(edge_config(&mesh, ServiceKind::Product)).await;
    let owner = email("owner");
    mesh.register(&owner).await;

    let first = rest_login(edge, 60, &owner, USER_PASSWORD, None).await;
    assert_eq!(first.status, 200, "{}", first.head);
    let token = device_cookie(&first);

    // An attacker, one wrong password from each of 50 addresses.
    let (mut checked, mut refused) = (0, 0);
    for from in 2..52 {
        let answer = rest_login(edge, from, &owner, "guess horse 1", None).await;
        match answer.status {
            401 => checked += 1,
            429 => {
                assert!(answer.header("retry-after").is_some(), "{}", answer.head);
                refused += 1;
            }
            other => panic!("{other}: {}", answer.head),
        }
    }
    assert_eq!(checked, BUDGET, "guesses that reached the password check");
    assert_eq!(refused, 50 - BUDGET);

    // The owner's browser sends its cookie back: a known device, not locked out.
    let cookie = format!("theme=dark; agora_device={token}");
    let again = rest_login(edge, 60, &owner, USER_PASSWORD, Some(&cookie)).await;
    assert_eq!(again.status, 200, "{}", again.head);
    let fresh = device_cookie(&again);
    assert_ne!(fresh, token, "each sign-in hands out a fresh token");

    // Without it, a new device waits for the window to end: the scheme's trade-off.
    let new_device = rest_login(edge, 60, &owner, USER_PASSWORD, None).await;
    assert_eq!(new_device.status, 429, "{}", new_device.head);

    // gRPC through the edge carries the token as metadata, both ways.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{edge}"))
        .expect("a URL")
        .local_address(Some(client_ip(61)))
        .connect()
        .await
        .expect("the edge speaks h2c");
    let mut call = tonic::Request::new(pb::LoginRequest {
        email: owner.clone(),
        password: USER_PASSWORD.into(),
    });
    call.metadata_mut()
        .insert("agora-device", fresh.parse().expect("ASCII"));
    let answer = pb::auth_service_client::AuthServiceClient::new(channel)
        .login(call)
        .await
        .expect("a known device over gRPC");
    assert!(answer.metadata().get("agora-device").is_some());
    assert_eq!(
        answer
            .metadata()
            .get("agora-device-max-age")
            .expect("the lifetime"),
        LIFETIME
    );
}
