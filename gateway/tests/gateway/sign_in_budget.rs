//! The sign-in budget through a whole edge (`serve::serve` on a TCP listener) in front of the
//! real auth service, on either backend: it is counted per client address, so the token of each
//! account a client makes buys it nothing. A client registering from one address gets exactly the
//! documented number of accounts per window, then 429 with `Retry-After`, on REST and gRPC alike.
//!
//! The client connects from 127.0.0.2, so that it is not the 127.0.0.1 that auth trusts as the
//! edge.

use std::net::IpAddr;

use crate::whole_edge::{edge_config, http1_from, serve_edge};
use agora_contracts::agora::auth::v1 as auth_pb;
use agora_contracts::agora::auth::v1::auth_service_client::AuthServiceClient;
use agora_gateway::ratelimit::RateLimitSettings;
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, TestMesh, USER_PASSWORD, authed, email, on_both_backends};

on_both_backends!(
    registrations_from_one_address_are_cut_at_the_sign_in_budget_whatever_tokens_are_sent
);

/// Registration attempts in all: four times the budget, as an address minting accounts would.
const ATTEMPTS: usize = 40;

fn client() -> IpAddr {
    IpAddr::from([127, 0, 0, 2])
}

async fn registrations_from_one_address_are_cut_at_the_sign_in_budget_whatever_tokens_are_sent(
    backend: TestBackend,
) {
    let Some(mesh) = TestMesh::start(backend).await else {
        return;
    };
    let (edge, _stop) = serve_edge(edge_config(&mesh, ServiceKind::Auth)).await;
    let budget = usize::try_from(RateLimitSettings::default().sign_in_requests).expect("small");
    assert!(ATTEMPTS > budget);

    let mut emails = Vec::new();
    let mut tokens: Vec<String> = Vec::new();
    let mut refused = 0;
    for n in 0..ATTEMPTS {
        let address = email(&format!("mint{n}"));
        emails.push(address.clone());
        // Anonymous until the budget is spent, then each call carries the token of one of the
        // accounts made (a new one each time, round the accounts again when they run out).
        let bearer = match n.checked_sub(budget) {
            Some(k) if !tokens.is_empty() => {
                format!("\r\nauthorization: Bearer {}", tokens[k % tokens.len()])
            }
            _ => String::new(),
        };
        let head =
            format!("POST /v1/auth/register HTTP/1.1\r\ncontent-type: application/json{bearer}");
        let body = serde_json::json!({ "email": address, "password": USER_PASSWORD }).to_string();
        let answer = http1_from(edge, client(), &head, body.as_bytes()).await;
        if n < budget {
            assert_eq!(answer.status, 200, "registration {n} is within the budget");
            let registered: serde_json::Value =
                serde_json::from_slice(&answer.body).expect("a JSON body");
            let token = registered["tokens"]["accessToken"]
                .as_str()
                .expect("an access token");
            tokens.push(token.to_owned());
        } else {
            assert_eq!(
                answer.status,
                429,
                "registration {n}, with a bearer token: {}",
                String::from_utf8_lossy(&answer.body)
            );
            let retry_after: u64 = answer
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .expect("a Retry-After in seconds");
            assert!((1..=60).contains(&retry_after), "{retry_after}");
            assert_eq!(
                answer.header("ratelimit-limit"),
                Some(budget.to_string().as_str())
            );
            assert_eq!(answer.header("ratelimit-remaining"), Some("0"));
            refused += 1;
        }
    }
    assert_eq!(tokens.len(), budget);
    assert_eq!(refused, ATTEMPTS - budget);

    // Native gRPC through the same edge, from the same address, with a token: the same budget.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{edge}"))
        .expect("a URL")
        .local_address(Some(client()))
        .connect()
        .await
        .expect("the edge speaks h2c");
    let grpc_email = email("mint-grpc");
    let status = AuthServiceClient::new(channel)
        .register(authed(
            auth_pb::RegisterRequest {
                email: grpc_email.clone(),
                password: USER_PASSWORD.into(),
            },
            &tokens[0],
        ))
        .await
        .expect_err("the address's budget is spent");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    emails.push(grpc_email);

    // Exactly the admitted accounts exist: each signs in (straight to auth, past the edge's
    // budget), and none of the refused ones does.
    let mut made = 0;
    for address in &emails {
        match mesh.login(address, USER_PASSWORD).await {
            Ok(_) => made += 1,
            Err(status) => assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}"),
        }
    }
    assert_eq!(made, budget, "accounts made from one address in one window");
}
