//! [`MetricsEndpoint`]: the admin HTTP port of a process, serving `GET /metrics`.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::Metrics;

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The longest a scraper may take to send its request head: the port is small and shared by
/// nothing else, so a slow client is dropped rather than kept.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /metrics` on its own port, for as long as this value lives.
#[derive(Debug)]
pub struct MetricsEndpoint {
    addr: SocketAddr,
    /// The accept loop; aborted on drop, which closes the port.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MetricsEndpoint {
    /// Binds `addr` and serves `metrics` there.
    ///
    /// # Errors
    /// The address could not be bound.
    pub async fn bind(addr: SocketAddr, metrics: Metrics) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding telemetry.metrics_addr {addr}"))?;
        Self::serve(listener, metrics)
    }

    /// Serves `metrics` on `listener`.
    ///
    /// # Errors
    /// The listener has no local address.
    pub fn serve(listener: TcpListener, metrics: Metrics) -> anyhow::Result<Self> {
        let addr = listener
            .local_addr()
            .context("reading the metrics listener's address")?;
        let task = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors, say: wait rather than spin.
                        tracing::warn!(%error, "accepting a metrics connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let metrics = metrics.clone();
                        async move { Ok::<_, Infallible>(answer(&metrics, &request)) }
                    });
                    let served = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    if let Err(error) = served {
                        tracing::debug!(%error, "metrics connection ended");
                    }
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// The address it listens on (the port chosen when `0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

fn answer<B>(metrics: &Metrics, request: &http::Request<B>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, text: String| {
        let mut response = Response::new(Full::new(Bytes::from(text)));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "not found; metrics are at /metrics\n".into(),
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = reply(StatusCode::METHOD_NOT_ALLOWED, String::new());
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match metrics.render() {
        Ok(text) => {
            let mut response = reply(StatusCode::OK, text);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(CONTENT_TYPE),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, "rendering metrics failed");
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics unavailable\n".into(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    async fn ask(addr: SocketAddr, method: &str, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("listening");
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("sent");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("answered");
        answer
    }

    #[tokio::test]
    async fn metrics_are_served_as_prometheus_text_at_metrics_only_and_the_port_closes_on_drop() {
        let metrics = Metrics::private();
        metrics
            .meter()
            .u64_counter("agora.test.calls")
            .build()
            .add(2, &[]);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let endpoint = MetricsEndpoint::serve(listener, metrics).expect("serving");
        let addr = endpoint.local_addr();

        let answer = ask(addr, "GET", "/metrics").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains("content-type: text/plain; version=0.0.4"),
            "{answer}"
        );
        let (_, body) = answer.split_once("\r\n\r\n").expect("a body");
        let samples = crate::metrics::exposition::parse(body).expect("the text format");
        let calls = crate::metrics::exposition::matching(&samples, "agora_test_calls_total", &[]);
        assert_eq!(calls.len(), 1, "{body}");
        assert_eq!(calls[0].value, 2.0);

        assert!(ask(addr, "GET", "/").await.starts_with("HTTP/1.1 404"));
        let refused = ask(addr, "POST", "/metrics").await;
        assert!(refused.starts_with("HTTP/1.1 405"), "{refused}");
        assert!(refused.contains("allow: GET, HEAD"), "{refused}");

        drop(endpoint);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
