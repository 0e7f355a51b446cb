//! `/metrics` of a real `agora up`: a known mix of calls through the edge, then the exact count
//! of each label set of `rpc.server.call.duration` and `http.server.request.duration`, read
//! from the Prometheus text the process serves.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use agora_contracts::agora::{
    inventory::v1::{BatchGetStockRequest, inventory_service_client::InventoryServiceClient},
    product::v1::{ListProductsRequest, product_service_client::ProductServiceClient},
};
use agora_platform::metrics::exposition::{self, Sample};

use crate::helpers::{AGORA, free_port};

const RPC: &str = "rpc_server_call_duration_seconds_count";
const HTTP: &str = "http_server_request_duration_seconds_count";
const PRODUCT: &str = "agora.product.v1.ProductService";
const ROUTE: &str = "/v1/products/{product_id}";

/// A plain HTTP/1.1 GET: the status code, the content type and the body (read to the close).
async fn get(port: u16, path: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the port is open");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("an answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

/// The count of the one sample named `name` with `labels`, 0 when there is none.
fn count(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = exposition::matching(samples, name, labels);
    assert!(found.len() <= 1, "one series per label set: {found:?}");
    found.first().map_or(0.0, |sample| sample.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_count_of_every_call_by_method_status_and_route_on_one_metrics_port() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ports: Vec<(&str, u16)> = ["AUTH", "USER", "PRODUCT", "INVENTORY", "ORDER"]
        .into_iter()
        .map(|name| (name, free_port()))
        .collect();
    let port_of = |name: &str| ports.iter().find(|(n, _)| *n == name).expect("a port").1;
    let (edge, metrics) = (free_port(), free_port());
    let mut command = Command::new(AGORA);
    command
        .arg("up")
        .current_dir(dir.path())
        .env("AGORA_DATA_DIR", dir.path().join("data"))
        .env("AGORA_LOG__FILTER", "warn")
        .env("AGORA_GATEWAY__PORT", edge.to_string())
        .env(
            "AGORA_TELEMETRY__METRICS_ADDR",
            format!("127.0.0.1:{metrics}"),
        )
        .env_remove("REDIS_URL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    for (name, port) in &ports {
        command.env(format!("AGORA_SERVICES__{name}__PORT"), port.to_string());
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("agora starts");

    // `up` says where its metrics are once it is ready; that printed line is what is scraped.
    let (lines, printed) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let scrape = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = printed.recv_timeout(left) else {
                panic!("no metrics line within 15 s: {seen}");
            };
            seen.push_str(&line);
            seen.push('\n');
            if let Some(command) = line.trim().strip_prefix("curl -s ")
                && command.ends_with("/metrics")
            {
                return command.to_owned();
            }
        }
    })
    .await
    .expect("joined");
    assert_eq!(scrape, format!("http://127.0.0.1:{metrics}/metrics"));
    let url_path = "/metrics";

    let channel = |port: u16| {
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("url")
            .connect_lazy()
    };
    let ids: Vec<String> = ProductServiceClient::new(channel(port_of("PRODUCT")))
        .list_products(ListProductsRequest {
            page_size: 100,
            ..ListProductsRequest::default()
        })
        .await
        .expect("the demo catalog")
        .into_inner()
        .products
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids.len(), 30, "the demo catalog is loaded");
    let ready = get(edge, "/readyz").await;
    assert_eq!(ready.0, 200, "{ready:?}");

    // Through the edge: 3 found, 2 unknown, 1 malformed; and a path no route matches.
    for id in &ids[..3] {
        assert_eq!(get(edge, &format!("/v1/products/{id}")).await.0, 200);
    }
    for _ in 0..2 {
        let unknown = uuid::Uuid::now_v7();
        assert_eq!(get(edge, &format!("/v1/products/{unknown}")).await.0, 404);
    }
    assert_eq!(get(edge, "/v1/products/not-an-id").await.0, 400);
    assert_eq!(get(edge, "/v1/no/such/route").await.0, 404);
    // Straight to the product server, a method it does not serve.
    let refused = InventoryServiceClient::new(channel(port_of("PRODUCT")))
        .batch_get_stock(BatchGetStockRequest::default())
        .await
        .expect_err("not a product method");

    // A call is recorded when its answer has gone, which may be a moment after the client has
    // it: read until the last one shows.
    let deadline = Instant::now() + Duration::from_secs(5);
    let samples = loop {
        let (status, content_type, body) = get(metrics, url_path).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let samples = exposition::parse(&body).expect("the Prometheus text format");
        let shown = exposition::matching(&samples, RPC, &[("rpc_service", "_OTHER")]).len()
            + exposition::matching(&samples, HTTP, &[("http_route", "_OTHER")]).len();
        if count(
            &samples,
            RPC,
            &[("rpc_method", "GetProduct"), ("rpc_grpc_status_code", "3")],
        ) == 1.0
            && shown == 2
            || Instant::now() > deadline
        {
            break samples;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let rpc = |method: &str, code: &str| {
        count(
            &samples,
            RPC,
            &[
                ("rpc_system", "grpc"),
                ("rpc_service", PRODUCT),
                ("rpc_method", method),
                ("rpc_grpc_status_code", code),
            ],
        )
    };
    assert_eq!(rpc("GetProduct", "0"), 3.0, "OK");
    assert_eq!(rpc("GetProduct", "5"), 2.0, "NOT_FOUND");
    assert_eq!(rpc("GetProduct", "3"), 1.0, "INVALID_ARGUMENT");
    let other = exposition::matching(&samples, RPC, &[("rpc_service", "_OTHER")]);
    assert_eq!(other.len(), 1, "{other:?}");
    assert_eq!(other[0].labels["rpc_method"], "_OTHER");
    assert_eq!(
        other[0].labels["rpc_grpc_status_code"],
        (refused.code() as i32).to_string()
    );
    assert_eq!(other[0].value, 1.0);

    let http = |route: &str, status: &str| {
        count(
            &samples,
            HTTP,
            &[
                ("http_route", route),
                ("http_request_method", "GET"),
                ("http_response_status_code", status),
                ("agora_edge_protocol", "rest"),
            ],
        )
    };
    assert_eq!(http(ROUTE, "200"), 3.0);
    assert_eq!(http(ROUTE, "404"), 2.0);
    assert_eq!(http(ROUTE, "400"), 1.0);
    assert_eq!(http("_OTHER", "404"), 1.0);
    assert_eq!(http("/readyz", "200"), 1.0, "the probes by their own path");
    assert!(
        samples
            .iter()
            .filter(|sample| sample.name == HTTP)
            .all(|sample| !sample.labels["http_route"].contains(&ids[0])),
        "never a raw path"
    );

    // The edge's own calls upstream, timed by the platform's client: one per GetProduct it
    // forwarded, under the status the product server answered.
    let client = |code: &str| {
        count(
            &samples,
            "rpc_client_call_duration_seconds_count",
            &[
                ("rpc_system", "grpc"),
                ("rpc_service", PRODUCT),
                ("rpc_method", "GetProduct"),
                ("rpc_grpc_status_code", code),
            ],
        )
    };
    assert_eq!(
        [client("0"), client("5"), client("3")],
        [3.0, 2.0, 1.0],
        "OK, NOT_FOUND, INVALID_ARGUMENT"
    );
    // The process itself is measured too.
    for gauge in [
        "process_memory_usage_bytes",
        "process_open_file_descriptor_count",
        "agora_runtime_workers",
    ] {
        assert!(count(&samples, gauge, &[]) > 0.0, "{gauge}");
    }

    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(stopped.success());
    let exited = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("joined")
        .expect("exits");
    assert!(exited.success(), "{exited:?}");
}
