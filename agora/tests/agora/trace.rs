//! One trace across the mesh: a REST CreateOrder sent to the edge with a `traceparent` comes out
//! as one trace spanning the gateway, order, product and inventory, each a separate `agora serve`
//! process exporting to a test OTLP receiver, with every hop parented by the one before it.

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use agora_platform::testing::{TestBackend, TestStore};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value,
    trace::v1::Span,
};

use crate::helpers::{AGORA, SERVICES, free_port};

/// An OTLP/gRPC trace receiver keeping every span with the service that sent it.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<(String, Span)>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut kept = self.0.lock().expect("not poisoned");
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    any_value::Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                kept.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// The processes of the mesh, stopped (SIGTERM, so their last spans are flushed) on drop.
struct Mesh(Vec<Child>);

impl Drop for Mesh {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for child in &mut self.0 {
            let _ = child.wait();
        }
    }
}

/// A plain HTTP/1.1 request to the edge: the status and the body.
async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (0, String::new());
    };
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("an answer");
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_create_order_is_one_trace_across_gateway_order_product_and_inventory() {
    // Redis carries the events between the processes; order keeps its data in PostgreSQL, the
    // others in SQLite files of their own.
    let Some(store) = TestStore::new(TestBackend::Distributed).await else {
        return;
    };
    let redis = store.redis_url.clone().expect("distributed");
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let otlp = listener.local_addr().expect("bound");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let ports: HashMap<&str, u16> = SERVICES.iter().map(|s| (*s, free_port())).collect();
    let gateway_port = free_port();
    let admin_password = "trace admin password 7";
    let secret = |service: &str| format!("trace-secret-{service}-{}", store.prefix.len());
    let environment = |command: &mut Command, name: &str| {
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AGORA_DATA_DIR", dir.path().join(name))
            .env("AGORA_LOG__FILTER", "warn")
            .env("REDIS_URL", &redis)
            .env("AGORA_EVENTS__PREFIX", format!("{}events:", store.prefix))
            .env("AGORA_AUTH__CACHE_PREFIX", format!("{}auth:", store.prefix))
            .env(
                "AGORA_PRODUCT__CACHE_PREFIX",
                format!("{}product:", store.prefix),
            )
            .env(
                "AGORA_GATEWAY__CACHE_PREFIX",
                format!("{}gateway:", store.prefix),
            )
            .env("AGORA_GATEWAY__PORT", gateway_port.to_string())
            .env("AGORA_AUTH__ADMIN_EMAIL", "admin@agora.local")
            .env("AGORA_AUTH__ADMIN_PASSWORD", admin_password)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
            // Export each batch within a fifth of a second rather than the default 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .current_dir(dir.path());
        for (service, port) in &ports {
            command.env(
                format!("AGORA_SERVICES__{}__PORT", service.to_uppercase()),
                port.to_string(),
            );
            if *service != "auth" {
                command.env(
                    format!("AGORA_AUTH__SERVICE_CLIENTS__{}", service.to_uppercase()),
                    secret(service),
                );
            }
        }
        if name != "auth" && name != "gateway" && name != "seed" {
            command.env("AGORA_SERVICE_SECRET", secret(name));
        }
        if name == "order" {
            command.env("DATABASE_URL", &store.database_url);
        }
    };
    let mut mesh = Mesh(Vec::new());
    for name in SERVICES.iter().copied().chain(["gateway"]) {
        std::fs::create_dir_all(dir.path().join(name)).expect("a data directory");
        let mut command = Command::new(AGORA);
        command.args(["serve", name]);
        environment(&mut command, name);
        mesh.0.push(
            command
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("agora serve starts"),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    // `/readyz/upstreams`: every upstream SERVING as the edge sees it (`/readyz` says only that
    // the edge itself is up).
    while http(gateway_port, "GET", "/readyz/upstreams", &[], "")
        .await
        .0
        != 200
    {
        assert!(Instant::now() < deadline, "the mesh never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    std::fs::create_dir_all(dir.path().join("seed")).expect("a data directory");
    let mut seed = Command::new(AGORA);
    seed.arg("seed");
    environment(&mut seed, "seed");
    let seeded = seed.output().expect("seed runs");
    assert!(seeded.status.success(), "{seeded:?}");

    let (_, listed) = http(gateway_port, "GET", "/v1/products?pageSize=1", &[], "").await;
    let product = json(&listed)["products"][0]["id"]
        .as_str()
        .expect("a product")
        .to_owned();
    let (status, registered) = http(
        gateway_port,
        "POST",
        "/v1/auth/register",
        &[("content-type", "application/json")],
        r#"{"email":"tracer@example.com","password":"correct horse 7"}"#,
    )
    .await;
    assert_eq!(status, 200, "{registered}");
    let token = json(&registered)["tokens"]["accessToken"]
        .as_str()
        .expect("a token")
        .to_owned();

    let trace_id = "5b8efff798038103d269b633813fc60c";
    let caller_span = "eee19b7ec3c1b174";
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    let bearer = format!("Bearer {token}");
    // Stock opens from the ProductCreated events the seed caused; an order may be refused
    // (OUT_OF_STOCK) for a moment until inventory has applied them.
    let body = format!(
        r#"{{"idempotencyKey":"trace-1","lines":[{{"productId":"{product}","quantity":1}}]}}"#
    );
    let placed = loop {
        let (status, placed) = http(
            gateway_port,
            "POST",
            "/v1/orders",
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer),
                ("traceparent", &traceparent),
            ],
            &body,
        )
        .await;
        if status == 200 || Instant::now() > deadline {
            assert_eq!(status, 200, "{placed}");
            break json(&placed);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        placed["order"]["status"], "ORDER_STATUS_CONFIRMED",
        "{placed}"
    );

    // Spans arrive in batches from four processes: wait until the whole chain is there.
    let waited = Instant::now() + Duration::from_secs(30);
    loop {
        let spans: Vec<(String, Span)> = receiver
            .0
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(_, span)| hex(&span.trace_id) == trace_id)
            .cloned()
            .collect();
        let chain = Chain(&spans);
        let complete = chain.parented_by("gateway", &[caller_span.to_owned()])
            && chain.parented_by("order", &chain.ids_of("gateway"))
            && chain.parented_by("product", &chain.ids_of("order"))
            && chain.parented_by("inventory", &chain.ids_of("order"));
        if complete {
            break;
        }
        assert!(
            Instant::now() < waited,
            "the trace is not one chain caller -> gateway -> order -> product and inventory: {:#?}",
            spans
                .iter()
                .map(|(s, span)| format!(
                    "{s}: {} {} <- {}",
                    span.name,
                    hex(&span.span_id),
                    hex(&span.parent_span_id)
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(mesh);
    store.database().await.close().await;
}

/// The spans of one trace, by the service that sent them.
struct Chain<'a>(&'a [(String, Span)]);

impl Chain<'_> {
    fn ids_of(&self, service: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(s, _)| s == service)
            .map(|(_, span)| hex(&span.span_id))
            .collect()
    }

    /// Whether some span of `service` has one of `parents` as its parent.
    fn parented_by(&self, service: &str, parents: &[String]) -> bool {
        self.0
            .iter()
            .any(|(s, span)| s == service && parents.contains(&hex(&span.parent_span_id)))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
