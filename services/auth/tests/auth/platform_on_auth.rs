//! The platform pieces that talk to a real auth service: JWKS fetched over gRPC (with a refresh
//! on an unknown key id), service credentials, propagation, reflection and health.

use agora_platform::on_both_backends;

use std::{sync::Arc, time::Duration};

use crate::common::{ORDER_SECRET, TestAuth, email};
use agora_contracts::agora::auth::v1::{self as pb, auth_service_client::AuthServiceClient};
use agora_platform::{
    access::{GrpcKeySource, TokenError, Verifier},
    client::{Propagate, ServiceCredentials},
    config::TokenSettings,
    context::CallContext,
    testing::TestBackend,
};
use tonic::Code;

async fn a_remote_verifier_follows_a_key_rotation(backend: TestBackend) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let verifier = Verifier::new(
        Arc::new(GrpcKeySource::new(auth.channel.clone())),
        &TokenSettings::default(),
    )
    .with_min_refresh(Duration::from_millis(100));
    let (user_id, before) = auth.register(&email("remote")).await;
    let principal = verifier
        .verify(&before.access_token)
        .await
        .expect("verified");
    assert_eq!(principal.subject, user_id);
    assert!(!principal.is_admin());

    let admin = auth.admin_token().await;
    auth.rotate(&admin).await.expect("rotated");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (_, after) = auth.register(&email("remote-after")).await;
    verifier
        .verify(&after.access_token)
        .await
        .expect("an unknown kid makes the verifier fetch the keys again");
    verifier
        .verify(&before.access_token)
        .await
        .expect("the retired key is still published");
    let admin_principal = verifier.verify(&admin).await.expect("verified");
    assert!(admin_principal.is_admin());
}

async fn service_calls_carry_the_services_token_and_the_request_id(backend: TestBackend) {
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let credentials = Arc::new(ServiceCredentials::new(
        auth.channel.clone(),
        "order",
        ORDER_SECRET.to_owned().into(),
    ));
    let channel = Propagate::new(
        auth.channel.clone(),
        Some(credentials),
        Duration::from_secs(5),
    );
    let mut client = AuthServiceClient::new(channel);
    let call = CallContext {
        request_id: "order-req-1".into(),
        deadline: None,
    };
    let status = call
        .scope(async { client.list_sessions(pb::ListSessionsRequest {}).await })
        .await
        .expect_err("a service is not a user");
    // PERMISSION_DENIED, not UNAUTHENTICATED: the service token was sent and accepted.
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("order-req-1"),
        "the server saw (and echoed) the caller's request id"
    );

    let wrong = Arc::new(ServiceCredentials::new(
        auth.channel.clone(),
        "order",
        "not-the-secret".to_owned().into(),
    ));
    let mut client = AuthServiceClient::new(Propagate::new(
        auth.channel.clone(),
        Some(wrong),
        Duration::from_secs(5),
    ));
    let status = client
        .list_sessions(pb::ListSessionsRequest {})
        .await
        .expect_err("no token could be had");
    assert_eq!(status.code(), Code::Unavailable);
}

async fn reflection_lists_the_service_and_health_on_both_versions(backend: TestBackend) {
    use tokio_stream::StreamExt;
    let Some(auth) = TestAuth::spawn(backend).await else {
        return;
    };

    let mut v1 = tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(
        auth.channel.clone(),
    );
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut answers = v1
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection v1")
        .into_inner();
    let answer = answers.next().await.expect("an answer").expect("ok");
    let Some(
        tonic_reflection::pb::v1::server_reflection_response::MessageResponse::ListServicesResponse(
            list,
        ),
    ) = answer.message_response
    else {
        panic!("not a service list");
    };
    let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert!(
        names.contains(&"agora.auth.v1.AuthService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"agora.order.v1.OrderService".to_owned()),
        "only what this port serves is listed: {names:?}"
    );

    let mut v1alpha =
        tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient::new(
            auth.channel.clone(),
        );
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "agora.auth.v1.AuthService".into(),
            ),
        ),
    };
    let mut answers = v1alpha
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection v1alpha")
        .into_inner();
    let answer = answers.next().await.expect("an answer").expect("ok");
    assert!(matches!(
        answer.message_response,
        Some(tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(ref files))
            if !files.file_descriptor_proto.is_empty()
    ));
}

async fn a_verifier_without_reachable_keys_answers_unavailable_not_unauthenticated(
    backend: TestBackend,
) {
    let Some(mut auth) = TestAuth::spawn(backend).await else {
        return;
    };
    let (_, tokens) = auth.register(&email("offline")).await;
    auth.stop().await.expect("stopped");
    let verifier = Verifier::new(
        Arc::new(GrpcKeySource::new(auth.channel.clone())),
        &TokenSettings::default(),
    );
    let error = verifier
        .verify(&tokens.access_token)
        .await
        .expect_err("no keys");
    assert!(matches!(error, TokenError::KeysUnavailable(_)), "{error}");
}

on_both_backends!(
    a_remote_verifier_follows_a_key_rotation,
    service_calls_carry_the_services_token_and_the_request_id,
    reflection_lists_the_service_and_health_on_both_versions,
    a_verifier_without_reachable_keys_answers_unavailable_not_unauthenticated,
);
