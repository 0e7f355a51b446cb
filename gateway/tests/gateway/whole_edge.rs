//! A whole edge (`serve::serve` on a TCP listener, HTTP/1.1 and h2c) in front of the real auth
//! and product services on either backend (on PostgreSQL + Redis the edge counts its rate limits
//! in Redis too), and hand-written HTTP/1.1 requests to it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use agora_contracts::agora::product::v1 as pb;
use agora_platform::config::{Config, ServiceKind};
use agora_testkit::{TestBackend, TestMesh};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

/// How long any one answer may take before the test fails instead of hanging.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);
pub(crate) const LIST_PRODUCTS: &str = "/agora.product.v1.ProductService/ListProducts";

/// Auth and product on one backend, and a whole edge in front of them.
pub(crate) struct Setup {
    _mesh: TestMesh,
    pub(crate) edge: SocketAddr,
    _stop: oneshot::Sender<()>,
}

/// `None` (the test skips, loudly) when the backend's servers are unreachable outside CI.
pub(crate) async fn setup(backend: TestBackend) -> Option<Setup> {
    setup_with(backend, &[]).await
}

/// Like [`setup`], with extra settings of the edge (`("gateway.connections.idle_timeout", "1s")`).
pub(crate) async fn setup_with(backend: TestBackend, settings: &[(&str, &str)]) -> Option<Setup> {
    let mut mesh = TestMesh::start(backend).await?;
    mesh.spawn_service(agora_product::SERVICE).await;
    let config = settings
        .iter()
        .try_fold(
            edge_config(&mesh, ServiceKind::Product),
            |config, (key, value)| config.with(key, value),
        )
        .expect("valid settings");
    let (edge, stop) = serve_edge(config).await;
    Some(Setup {
        _mesh: mesh,
        edge,
        _stop: stop,
    })
}

/// The settings of an edge in front of the mesh's services, `kind` where the mesh runs it, with
/// the mesh's own key prefix for the edge's counters.
pub(crate) fn edge_config(mesh: &TestMesh, kind: ServiceKind) -> Config {
    mesh.service_config(kind)
        .clone()
        .with(
            &format!("services.{}.url", kind.name()),
            format!("http://{}", mesh.addr(kind)),
        )
        .and_then(|c| c.with("gateway.cache_prefix", format!("{}gateway:", mesh.prefix())))
        .expect("valid settings")
}

/// What came back on a hand-written HTTP/1.1 connection.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// A whole edge with `config` on a free port, serving until the sender is dropped.
pub(crate) async fn serve_edge(config: Config) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let edge = listener.local_addr().expect("bound");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        agora_gateway::serve::serve(&config, listener, shutdown)
            .await
            .expect("the edge serves");
    });
    (edge, stop)
}

/// One request written by hand on a fresh HTTP/1.1 connection (`head` without the blank line).
pub(crate) async fn http1(addr: SocketAddr, head: &str, body: &[u8]) -> Answer {
    http1_from(addr, IpAddr::from([127, 0, 0, 1]), head, body).await
}

/// [`http1`] on a connection from the loopback address `from`.
pub(crate) async fn http1_from(addr: SocketAddr, from: IpAddr, head: &str, body: &[u8]) -> Answer {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::new(from, 0))
        .expect("a loopback address");
    let mut stream = socket.connect(addr).await.expect("the edge accepts");
    let head = format!(
        "{head}\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("sent");
    stream.write_all(body).await.expect("sent");
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
        .await
        .expect("the edge answers and closes")
        .expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole answer");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let answer = Answer {
        status,
        head,
        body: Vec::new(),
    };
    if answer
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body);
    }
    Answer { body, ..answer }
}

/// The payload of a chunked body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..line_end])
            .ok()
            .and_then(|size| usize::from_str_radix(size.trim(), 16).ok())
            .expect("a chunk size");
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
    out
}

/// One gRPC message frame of an empty ListProducts request.
pub(crate) fn empty_list_request() -> Vec<u8> {
    let encoded = prost::Message::encode_to_vec(&pb::ListProductsRequest::default());
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(encoded.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(&encoded);
    framed
}
