//! The floors of `scripts/bench-edge.sh`: the cheapest answers this machine can give, set beside
//! what the edge costs.
//!
//! - `--body FILE`: an axum server answering every request over HTTP/1.1 with the same JSON body
//!   (the product the edge returns): the floor of any HTTP answer.
//! - `--body FILE --upstream URL --call PATH --message FILE`: the same, but each request first
//!   makes the gRPC call `PATH` with the framed message in `FILE` over one HTTP/2 connection to
//!   `URL` (hyper's client, no tonic) and waits for its answer: the floor of any REST-to-gRPC
//!   proxy, with nothing of the edge (no transcoding, auth, limits, tracing).

use std::path::PathBuf;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[derive(Parser)]
#[command(about = "Answers every request with one fixed JSON body, for scripts/bench-edge.sh")]
struct Cli {
    /// The address to listen on, e.g. 127.0.0.1:8081.
    #[arg(long)]
    listen: String,
    /// The file whose bytes are the JSON body of every answer.
    #[arg(long)]
    body: PathBuf,
    /// A gRPC server called before each answer (host:port).
    #[arg(long, requires_all = ["call", "message"])]
    upstream: Option<String>,
    /// The path of the call, `/<package.Service>/<Method>`.
    #[arg(long)]
    call: Option<String>,
    /// The file holding the call's request, framed (a 5-byte header, then the message).
    #[arg(long)]
    message: Option<PathBuf>,
}

#[derive(Clone)]
struct Upstream {
    send: SendRequest<Full<Bytes>>,
    uri: http::Uri,
    message: Bytes,
}

impl Upstream {
    async fn connect(addr: &str, call: &str, message: Bytes) -> anyhow::Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        let (send, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await?;
        tokio::spawn(connection);
        Ok(Self {
            send,
            uri: format!("http://{addr}{call}").parse()?,
            message,
        })
    }

    /// One call; an error when it does not answer grpc-status 0.
    async fn call(mut self) -> anyhow::Result<()> {
        let request = http::Request::post(self.uri)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .body(Full::new(self.message))?;
        let response = self.send.send_request(request).await?;
        let collected = response.into_body().collect().await?;
        let status = collected
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .map(|v| v.as_bytes().to_vec());
        anyhow::ensure!(status.as_deref() == Some(b"0"), "grpc-status {status:?}");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let body = Bytes::from(
        std::fs::read(&cli.body).with_context(|| format!("reading {}", cli.body.display()))?,
    );
    let upstream = match (&cli.upstream, &cli.call, &cli.message) {
        (Some(addr), Some(call), Some(message)) => {
            let message =
                std::fs::read(message).with_context(|| format!("reading {}", message.display()))?;
            Some(Upstream::connect(addr, call, message.into()).await?)
        }
        _ => None,
    };
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        let upstream = upstream.clone();
        async move {
            if let Some(upstream) = upstream
                && let Err(error) = upstream.call().await
            {
                return (
                    http::StatusCode::BAD_GATEWAY,
                    [(http::header::CONTENT_TYPE, "text/plain")],
                    Bytes::from(format!("{error:#}")),
                );
            }
            (
                http::StatusCode::OK,
                [(http::header::CONTENT_TYPE, "application/json")],
                body,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind(&cli.listen)
        .await
        .with_context(|| format!("listening on {}", cli.listen))?;
    axum::serve(listener, app).await?;
    Ok(())
}
