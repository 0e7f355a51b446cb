//! gRPC-Web at the edge, as a browser sends it: hand-framed bodies over a hand-written HTTP/1.1
//! connection, answered with the message frames and a trailer frame in the body.

use std::collections::HashMap;

use agora_contracts::agora::product::v1::product_service_client::ProductServiceClient;
use agora_testkit::{authed, on_both_backends};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tower::ServiceExt as _;

use super::*;

/// The frames of a gRPC-Web body: each one's flag byte and payload.
fn frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while let [flag, a, b, c, d, rest @ ..] = body {
        let length = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
        assert!(rest.len() >= length, "a truncated frame in {body:?}");
        frames.push((*flag, rest[..length].to_vec()));
        body = &rest[length..];
    }
    assert!(body.is_empty(), "bytes after the last frame: {body:?}");
    frames
}

/// A gRPC-Web-text body: each frame is base64 of its own, padded, so decode four by four.
fn unbase64(body: &[u8]) -> Vec<u8> {
    body.chunks(4)
        .flat_map(|quad| BASE64.decode(quad).expect("base64"))
        .collect()
}

/// The status line, headers (lower-case names) and de-chunked body of an HTTP/1.1 answer.
struct Http1Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A POST written by hand on a fresh HTTP/1.1 connection, as a browser's gRPC-Web client sends.
async fn http1_post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> Http1Answer {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the edge accepts");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {content_type}\r\n\
         x-grpc-web: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
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
        .expect("a complete head");
    let head = String::from_utf8(raw[..split].to_vec()).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().expect("a status code");
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut rest = &raw[split + 4..];
    let body = if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        let mut body = Vec::new();
        loop {
            let end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("a chunk size line");
            let size = std::str::from_utf8(&rest[..end]).expect("ASCII");
            let size = usize::from_str_radix(size.split(';').next().unwrap_or(size), 16)
                .expect("a hexadecimal chunk size");
            rest = &rest[end + 2..];
            if size == 0 {
                break body;
            }
            body.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
    } else {
        rest.to_vec()
    };
    Http1Answer {
        status,
        headers,
        body,
    }
}

/// Checks a gRPC-Web answer to ListProducts: one message listing `id`, then an OK trailer frame.
fn assert_lists(frames: &[(u8, Vec<u8>)], id: &str) {
    let [(0, message), (0x80, trailers)] = frames else {
        panic!("a message frame and a trailer frame, not {frames:?}");
    };
    let response = pb::ListProductsResponse::decode(message.as_slice()).expect("the message");
    assert!(response.products.iter().any(|p| p.id == id), "{response:?}");
    let trailers = String::from_utf8_lossy(trailers).to_ascii_lowercase();
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
}

async fn grpc_web_calls_over_http1_carry_their_trailers_in_the_body(backend: TestBackend) {
    let Some((mesh, addr, app, admin)) = catalog(backend).await else {
        return;
    };
    let created = ProductServiceClient::new(mesh.channel(ServiceKind::Product))
        .create_product(authed(
            pb::CreateProductRequest {
                product: Some(product("EDGE-WEB-1")),
            },
            &admin,
        ))
        .await
        .expect("created")
        .into_inner()
        .product
        .expect("a product");
    let request = frame(&pb::ListProductsRequest {
        page_size: 5,
        ..Default::default()
    });

    let binary = http1_post(addr, LIST_PRODUCTS, "application/grpc-web+proto", &request).await;
    assert_eq!(binary.status, 200, "{:?}", binary.headers);
    assert_eq!(binary.headers["content-type"], "application/grpc-web+proto");
    assert_lists(&frames(&binary.body), &created.id);

    let encoded = BASE64.encode(&request);
    let text = http1_post(
        addr,
        LIST_PRODUCTS,
        "application/grpc-web-text",
        encoded.as_bytes(),
    )
    .await;
    assert_eq!(text.status, 200);
    assert!(
        text.headers["content-type"].starts_with("application/grpc-web-text"),
        "answered in the encoding it was asked in: {:?}",
        text.headers
    );
    assert_lists(&frames(&unbase64(&text.body)), &created.id);

    let unknown = app
        .oneshot(
            http::Request::post("/agora.nothing.v1.NoService/Call")
                .header("content-type", "application/grpc-web+proto")
                .body(axum::body::Body::from(request))
                .expect("a request"),
        )
        .await
        .expect("answered");
    assert_eq!(unknown.status(), http::StatusCode::OK);
    assert_eq!(unknown.headers()["grpc-status"], "12");
}

on_both_backends!(grpc_web_calls_over_http1_carry_their_trailers_in_the_body);
