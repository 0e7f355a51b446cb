//! Streaming calls forwarded as they happen: a server stream's messages arrive while it stays
//! open, and a bidi stream answers each request before the next is sent.

use prost::Message as _;

use super::*;

/// The mirror's name for the reflection service, so that its bidi stream goes through the
/// edge's forwarding instead of the edge's own reflection.
const MIRROR: &str = "test.Mirror";
const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";

/// `request` with the service of its path renamed from `from` to `to`.
fn renamed<B>(mut request: http::Request<B>, from: &str, to: &str) -> http::Request<B> {
    let method = request.uri().path().strip_prefix(&format!("/{from}/"));
    if let Some(method) = method {
        *request.uri_mut() = format!("/{to}/{method}").parse().expect("a path");
    }
    request
}

/// An upstream with a server-streaming method (health's Watch) and a bidi one (reflection,
/// reachable as `test.Mirror`): real tonic services on an h2c listener.
async fn mirror() -> (SocketAddr, tonic_health::server::HealthReporter) {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(MIRROR, tonic_health::ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(agora_contracts::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("reflection builds");
    let routes = tonic::service::Routes::new(health).add_service(reflection);
    let service = tower::ServiceBuilder::new()
        .map_request(|request: Request| renamed(request, MIRROR, REFLECTION_V1))
        .service(routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(
        async move { axum::serve(listener, Router::new().fallback_service(service)).await },
    );
    (addr, reporter)
}

#[tokio::test]
async fn streaming_calls_flow_through_the_edge_both_ways_as_they_happen() {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let (upstream_addr, reporter) = mirror().await;
    let url = format!("http://{upstream_addr}");
    let (addr, _) = edge(
        [
            ("grpc.health.v1.Health", upstream(&url)),
            (MIRROR, upstream(&url)),
        ]
        .into_iter()
        .map(|(name, upstream)| (name.to_owned(), upstream))
        .collect(),
    )
    .await;
    let channel = connect(addr).await;

    // Server streaming: each change of status arrives while the call stays open.
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: MIRROR.into(),
        })
        .await
        .expect("the watch starts")
        .into_inner();
    let first = soon("the first status", watch.message()).await;
    assert_eq!(first.expect("no error").expect("a status").status, 1);
    reporter
        .set_service_status(MIRROR, tonic_health::ServingStatus::NotServing)
        .await;
    let second = soon("the change", watch.message()).await;
    assert_eq!(second.expect("no error").expect("a status").status, 2);

    // Bidi: the second request is sent only after the first answer came back, so neither
    // body may be buffered to its end.
    let client = tower::ServiceBuilder::new()
        .map_request(|request: http::Request<tonic::body::Body>| {
            renamed(request, REFLECTION_V1, MIRROR)
        })
        .service(channel);
    let (send, requests) = tokio::sync::mpsc::channel(1);
    let ask = |ask| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(ask),
    };
    send.send(ask(MessageRequest::ListServices(String::new())))
        .await
        .expect("queued");
    let mut answers = ServerReflectionClient::new(client)
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(requests))
        .await
        .expect("the mirror answers")
        .into_inner();
    let list = soon("the first answer", answers.message()).await;
    let Some(MessageResponse::ListServicesResponse(list)) =
        list.expect("no error").and_then(|a| a.message_response)
    else {
        panic!("a service list");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "agora.order.v1.OrderService"),
        "the mirror's own list (every contract) came back: {list:?}"
    );
    send.send(ask(MessageRequest::FileContainingSymbol(
        "agora.order.v1.OrderService".into(),
    )))
    .await
    .expect("queued");
    let file = soon("the second answer", answers.message()).await;
    let Some(MessageResponse::FileDescriptorResponse(file)) =
        file.expect("no error").and_then(|a| a.message_response)
    else {
        panic!("a file");
    };
    let proto = prost_types::FileDescriptorProto::decode(file.file_descriptor_proto[0].as_slice())
        .expect("a file");
    assert_eq!(proto.name(), "agora/order/v1/order.proto");
    drop(send);
    let end = soon("the end of the call", answers.message()).await;
    assert!(
        end.expect("ends with OK in its trailers").is_none(),
        "nothing after the last answer"
    );
}
