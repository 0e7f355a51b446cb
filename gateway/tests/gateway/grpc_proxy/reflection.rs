//! The edge's own server reflection: the routed services listed, their files resolved with their
//! options, on v1 and v1alpha, without asking any upstream.

use prost::Message as _;

use super::*;

#[tokio::test]
async fn the_edges_reflection_lists_the_routed_services_and_resolves_their_files() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    use tonic_reflection::pb::v1alpha;

    // Nothing listens behind these: reflection is the edge's own, never forwarded.
    let dead = nowhere();
    let routed = [
        PRODUCT,
        "agora.auth.v1.AuthService",
        "agora.user.v1.UserService",
    ];
    let (addr, _) = edge(
        routed
            .iter()
            .map(|name| ((*name).to_owned(), upstream(&dead)))
            .collect(),
    )
    .await;
    let mut expected: Vec<String> = routed
        .iter()
        .chain(&[
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ])
        .map(|name| (*name).to_owned())
        .collect();
    expected.sort();

    let asks = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol(format!("{PRODUCT}.GetProduct")),
        MessageRequest::FileByFilename("agora/common/v1/money.proto".into()),
    ];
    let requests = asks.into_iter().map(|ask| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(ask),
    });
    let mut client = ServerReflectionClient::new(connect(addr).await);
    let stream = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection v1 answers")
        .into_inner();
    let answers = every_answer(stream, |answer| answer.message_response).await;
    let [
        MessageResponse::ListServicesResponse(list),
        MessageResponse::FileDescriptorResponse(product),
        MessageResponse::FileDescriptorResponse(money),
    ] = &answers[..]
    else {
        panic!("a list and two files, not {answers:?}");
    };
    let mut listed: Vec<String> = list.service.iter().map(|s| s.name.clone()).collect();
    listed.sort();
    assert_eq!(listed, expected, "the routed services, not every contract");
    let raw = &product.file_descriptor_proto[0];
    let proto = prost_types::FileDescriptorProto::decode(raw.as_slice()).expect("a file");
    assert_eq!(proto.name(), "agora/product/v1/product.proto");
    let rule = b"/v1/products/{product_id}";
    assert!(
        raw.windows(rule.len()).any(|w| w == rule),
        "the google.api.http options are kept for `describe`"
    );
    let money = prost_types::FileDescriptorProto::decode(money.file_descriptor_proto[0].as_slice())
        .expect("a file");
    assert_eq!(money.package(), "agora.common.v1");

    let mut alpha =
        v1alpha::server_reflection_client::ServerReflectionClient::new(connect(addr).await);
    let asks = [
        v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(PRODUCT.into()),
    ];
    let requests = asks
        .into_iter()
        .map(|ask| v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(ask),
        });
    let stream = alpha
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection v1alpha answers")
        .into_inner();
    let answers = every_answer(stream, |answer| answer.message_response).await;
    use v1alpha::server_reflection_response::MessageResponse as Alpha;
    let [
        Alpha::ListServicesResponse(list),
        Alpha::FileDescriptorResponse(file),
    ] = &answers[..]
    else {
        panic!("a list and a file, not {answers:?}");
    };
    let mut listed: Vec<String> = list.service.iter().map(|s| s.name.clone()).collect();
    listed.sort();
    assert_eq!(listed, expected);
    let proto = prost_types::FileDescriptorProto::decode(file.file_descriptor_proto[0].as_slice())
        .expect("a file");
    assert_eq!(proto.name(), "agora/product/v1/product.proto");
}

/// Every answer of a reflection stream (v1 or v1alpha: `take` picks the message out), read until
/// the server ends it, within [`PATIENCE`].
async fn every_answer<R, M>(
    mut stream: tonic::Streaming<R>,
    take: impl Fn(R) -> Option<M>,
) -> Vec<M> {
    tokio::time::timeout(PATIENCE, async {
        let mut answers = Vec::new();
        while let Some(answer) = stream.message().await.expect("no error") {
            answers.extend(take(answer));
        }
        answers
    })
    .await
    .expect("answers in time")
}
