//! Polyglot upstreams: a Python grpcio service outside Agora's contracts joins the REST edge
//! through its reflection alone (its HTTP rules become routes beside Agora's own); a tonic
//! server with only `v1alpha` reflection is discovered too; a server without reflection, or one
//! that never answers, fails discovery clearly and in time; and adding discovered files to the
//! pool refuses conflicts and missing imports.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_gateway::app::{Gateway, router};
use agora_gateway::discover::{DiscoveredFile, add_to_pool, discover};
use agora_gateway::routes::{Lookup, Routes};
use agora_gateway::upstream::Upstream;
use prost::Message as _;
use prost_reflect::DescriptorPool;
use serde_json::{Value, json};
use tokio_stream::wrappers::TcpListenerStream;
use tower::ServiceExt as _;

const GREETER: &str = "polyglot.greeter.v1.GreeterService";
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the gateway crate sits in the workspace")
}

fn contracts() -> DescriptorPool {
    DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET).expect("the contracts decode")
}

/// The Python of `scripts/lib/python-env.sh`, or `None` (after a `SKIPPED:` line) when it cannot be
/// installed here; with `CI=true` that is a failure instead.
fn python() -> Option<PathBuf> {
    let output = Command::new(repo_root().join("scripts/lib/python-env.sh"))
        .stderr(Stdio::inherit())
        .output();
    match output {
        Ok(output) if output.status.success() => Some(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        )),
        failure => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "scripts/lib/python-env.sh failed: {failure:?}"
            );
            println!("SKIPPED: scripts/lib/python-env.sh could not install grpcio: {failure:?}");
            None
        }
    }
}

/// The Python greeter of `tests/polyglot/`, stopped (SIGTERM, then SIGKILL) when dropped.
struct PythonGreeter {
    child: Child,
    url: String,
}

impl PythonGreeter {
    async fn start() -> Option<Self> {
        let python = python()?;
        let mut child = Command::new(python)
            .arg(repo_root().join("tests/polyglot/greeter_server.py"))
            .arg("0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the greeter starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        // From here on a failed start still stops the process.
        let mut greeter = Self {
            child,
            url: String::new(),
        };
        let line = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                std::io::BufReader::new(stdout)
                    .read_line(&mut line)
                    .map(|_| line)
            }),
        )
        .await
        .expect("the greeter listens within a minute")
        .expect("the reader finishes")
        .expect("the greeter's stdout reads");
        let addr = line
            .trim()
            .strip_prefix("greeter listening on ")
            .unwrap_or_else(|| panic!("the greeter's first line: {line:?}"));
        greeter.url = format!("http://{addr}");
        Some(greeter)
    }
}

impl Drop for PythonGreeter {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The greeter's proto and its imports, compiled by protox (custom options kept).
fn greeter_compiler() -> protox::Compiler {
    let root = repo_root();
    let mut compiler = protox::Compiler::new([root.join("tests/polyglot"), root.join("proto")])
        .expect("the include paths exist");
    compiler.include_imports(true);
    compiler
        .open_file("greeter/v1/greeter.proto")
        .expect("greeter.proto compiles");
    compiler
}

/// The greeter's files, each after its imports.
fn greeter_files() -> Vec<DiscoveredFile> {
    greeter_compiler()
        .descriptor_pool()
        .files()
        .map(|f| DiscoveredFile::decode(f.encode_to_vec().into()).expect("a file descriptor"))
        .collect()
}

/// Serves `routes` on a free local port; the server lives as long as the test's runtime.
async fn serve(routes: tonic::service::Routes) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

/// What a server's v1alpha reflection lists, asked directly.
async fn listed_over_v1alpha(channel: tonic::transport::Channel) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::once(request))
        .await
        .expect("v1alpha reflection answers")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("an answer")
        .expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("a list of services: {answer:?}");
    };
    list.service.into_iter().map(|s| s.name).collect()
}

fn greeter_routes(routes: &Routes) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = routes
        .iter()
        .filter(|r| r.binding.method.parent_service().full_name() == GREETER)
        .map(|r| {
            (
                r.binding.http_method.to_string(),
                r.binding.template.clone(),
            )
        })
        .collect();
    found.sort();
    found
}

fn expected_greeter_routes() -> Vec<(String, String)> {
    [
        ("GET", "/polyglot/v1/greetings/{name}"),
        ("GET", "/polyglot/v1/recorded-greetings/{greeting_id}"),
        ("POST", "/polyglot/v1/greetings"),
    ]
    .map(|(m, t)| (m.to_owned(), t.to_owned()))
    .to_vec()
}

#[tokio::test]
async fn discovering_the_python_greeter_yields_its_service_and_each_file_it_imports_once() {
    let Some(greeter) = PythonGreeter::start().await else {
        return;
    };
    let upstream = Upstream::lazy(&greeter.url).expect("a valid URL");
    let discovered = discover(upstream.channel(), DISCOVERY_TIMEOUT)
        .await
        .expect("the greeter's reflection answers");
    assert_eq!(
        discovered.services,
        [GREETER],
        "reflection itself is left out"
    );
    let mut names: Vec<&str> = discovered.files.iter().map(DiscoveredFile::name).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "google/api/annotations.proto",
            "google/api/http.proto",
            "google/protobuf/descriptor.proto",
            "greeter/v1/greeter.proto",
        ]
    );
}

#[tokio::test]
async fn the_python_greeter_answers_rest_calls_on_routes_from_its_discovered_http_rules() {
    let Some(greeter) = PythonGreeter::start().await else {
        return;
    };
    let upstream = Upstream::lazy(&greeter.url).expect("a valid URL");
    let discovered = discover(upstream.channel(), DISCOVERY_TIMEOUT)
        .await
        .expect("the greeter's reflection answers");
    let own = Routes::build(&contracts()).expect("the contracts' routes build");
    let mut pool = contracts();
    add_to_pool(&mut pool, &discovered.files).expect("the greeter's files join the contracts");
    let routes = Routes::build(&pool).expect("the combined routes build");
    // These templates exist only in the options the Python server sent.
    assert_eq!(greeter_routes(&routes), expected_greeter_routes());
    assert_eq!(routes.iter().count(), own.iter().count() + 3);
    let Lookup::Found(product, _) = routes.lookup(&http::Method::GET, "/v1/products") else {
        panic!("Agora's own GET /v1/products is still routed");
    };
    assert_eq!(
        product.binding.method.parent_service().full_name(),
        "agora.product.v1.ProductService"
    );

    let app = router(Arc::new(Gateway {
        routes,
        upstreams: [(GREETER.to_owned(), upstream)].into(),
        timeout: Duration::from_secs(5),
        body_limit: 1 << 20,
    }));
    let call = |method: &str, uri: &str, body: Option<Value>| {
        let request = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("x-request-id", "polyglot-1")
            .header("content-type", "application/json");
        let body = body.map_or_else(axum::body::Body::empty, |b| b.to_string().into());
        let app = app.clone();
        async move {
            let response = app
                .oneshot(request.body(body).expect("a request"))
                .await
                .expect("answered");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .expect("a body");
            let json: Value = serde_json::from_slice(&bytes).expect("a JSON body");
            (status, json)
        }
    };

    let (status, body) = call("GET", "/polyglot/v1/greetings/Ada%20Lovelace?times=2", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "greeting": "Hello, Ada Lovelace! Hello, Ada Lovelace!",
            "times": 2,
            "servedBy": "python-grpcio/1.76.0",
        })
    );

    let (status, body) = call(
        "POST",
        "/polyglot/v1/greetings",
        Some(json!({"name": "Grace", "text": "Welcome aboard"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let recorded = json!({"greetingId": "g-1", "name": "Grace", "text": "Welcome aboard"});
    assert_eq!(body, json!({ "greeting": recorded }));
    let (status, body) = call("GET", "/polyglot/v1/recorded-greetings/g-1", None).await;
    assert_eq!(
        (status, body),
        (http::StatusCode::OK, json!({ "greeting": recorded }))
    );

    let (status, body) = call("GET", "/polyglot/v1/recorded-greetings/g-404", None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], 5, "{body}");
    assert_eq!(body["message"], "no greeting with id g-404", "{body}");

    let (status, body) = call("GET", "/polyglot/v1/greetings/Ada?times=11", None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "times must be between 1 and 10", "{body}");

    // Matched in the same table (not a 404), but no product upstream is configured here.
    let (status, body) = call("GET", "/v1/products", None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["message"],
        "no upstream for agora.product.v1.ProductService"
    );
}

#[tokio::test]
async fn a_server_with_only_v1alpha_reflection_is_discovered_without_its_health_and_reflection() {
    let set = greeter_compiler().encode_file_descriptor_set();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(&set)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the reflection service builds");
    let (_reporter, health) = tonic_health::server::health_reporter();
    let url = serve(tonic::service::Routes::new(health).add_service(reflection)).await;

    let channel = Upstream::lazy(&url).expect("a valid URL").channel();
    let mut listed = listed_over_v1alpha(channel.clone()).await;
    listed.sort();
    assert_eq!(
        listed,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
            GREETER
        ]
    );
    let discovered = discover(channel, DISCOVERY_TIMEOUT)
        .await
        .expect("discovered over v1alpha");
    assert_eq!(discovered.services, [GREETER]);
    let mut pool = contracts();
    add_to_pool(&mut pool, &discovered.files).expect("the files join the contracts");
    let routes = Routes::build(&pool).expect("the combined routes build");
    assert_eq!(greeter_routes(&routes), expected_greeter_routes());
}

#[tokio::test]
async fn a_server_without_reflection_fails_discovery_with_a_clear_error_within_the_timeout() {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let url = serve(tonic::service::Routes::new(health)).await;
    let channel = Upstream::lazy(&url).expect("a valid URL").channel();
    let started = Instant::now();
    let error = discover(channel, Duration::from_secs(5))
        .await
        .expect_err("there is no reflection to ask");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let message = format!("{error:#}");
    assert!(
        message.contains("serves no gRPC server reflection")
            && message.contains("v1 and v1alpha both answered UNIMPLEMENTED"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_fails_discovery_saying_what_was_asked() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let channel = Upstream::lazy(&format!("http://127.0.0.1:{port}"))
        .expect("a valid URL")
        .channel();
    let error = discover(channel, DISCOVERY_TIMEOUT)
        .await
        .expect_err("nothing listens");
    let message = error.to_string();
    assert!(
        message.starts_with(
            "the upstream's reflection: listing the services over grpc.reflection.v1 failed: \
             Unavailable:"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_fails_discovery_once_the_timeout_runs_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("bound");
    // Accepts connections and holds them open without a word of HTTP/2.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let channel = Upstream::lazy(&format!("http://{addr}"))
        .expect("a valid URL")
        .channel();
    let started = Instant::now();
    let error = discover(channel, Duration::from_millis(500))
        .await
        .expect_err("nothing answers");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        error.to_string(),
        "the upstream's reflection did not answer within 500ms"
    );
}

#[test]
fn files_sent_in_any_order_are_added_each_after_its_imports() {
    let mut files = greeter_files();
    files.reverse();
    assert_eq!(files[0].name(), "greeter/v1/greeter.proto");
    let mut pool = DescriptorPool::new();
    add_to_pool(&mut pool, &files).expect("every import is among the files");
    let routes = Routes::build(&pool).expect("the greeter's routes build");
    assert_eq!(greeter_routes(&routes), expected_greeter_routes());
}

#[test]
fn an_import_neither_sent_nor_in_the_pool_is_refused_by_name_and_nothing_is_added() {
    let files: Vec<DiscoveredFile> = greeter_files()
        .into_iter()
        .filter(|f| f.name() != "google/api/http.proto")
        .collect();
    let mut pool = DescriptorPool::new();
    let error = add_to_pool(&mut pool, &files).expect_err("http.proto is missing");
    assert_eq!(
        error.to_string(),
        "the upstream's google/api/annotations.proto imports google/api/http.proto, which the \
         upstream did not send and the gateway does not have"
    );
    // descriptor.proto could have gone in first; all or nothing keeps it out.
    assert_eq!(pool.files().count(), 0);
}

#[test]
fn a_discovered_service_the_gateway_already_routes_is_refused_and_the_pool_is_unchanged() {
    let mut pool = contracts();
    let before = pool.files().count();
    let product = pool
        .get_service_by_name("agora.product.v1.ProductService")
        .expect("the contracts have the product service");
    let mut copy = product.parent_file().file_descriptor_proto().clone();
    copy.name = Some("elsewhere/product.proto".to_owned());
    let copy = DiscoveredFile::decode(copy.encode_to_vec().into()).expect("a file descriptor");
    let error = add_to_pool(&mut pool, &[copy]).expect_err("the service is Agora's");
    assert_eq!(
        error.to_string(),
        format!(
            "the upstream's elsewhere/product.proto defines agora.product.v1.ProductService, a \
             service the gateway already has (from {})",
            product.parent_file().name()
        )
    );
    assert_eq!(pool.files().count(), before);
}
