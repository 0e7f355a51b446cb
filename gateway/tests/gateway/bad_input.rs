//! Bad input, one row each, against a whole edge in front of the real services: each gets the
//! 4xx and gRPC code of its row, and none is ever a 5xx, a 429 (which tells a client to send the
//! same thing again later) or UNAVAILABLE (which tells it to retry at once).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::whole_edge::{Answer, LIST_PRODUCTS, empty_list_request, http1, setup};
use agora_testkit::{TestBackend, on_both_backends};

on_both_backends!(
    every_bad_input_gets_its_4xx_and_grpc_code_and_never_a_5xx_429_or_unavailable,
    answers_and_refusals_go_out_with_their_length_not_chunked,
);

/// One bad request: what it is, its head and body, the HTTP status and gRPC code expected.
struct Row {
    what: &'static str,
    head: String,
    body: Vec<u8>,
    status: u16,
    code: tonic::Code,
}

fn row(what: &'static str, head: String, body: &[u8], status: u16, code: tonic::Code) -> Row {
    Row {
        what,
        head,
        body: body.to_vec(),
        status,
        code,
    }
}

fn rows() -> Vec<Row> {
    use tonic::Code::{InvalidArgument, Unimplemented};
    let big = "v".repeat(12 * 1024);
    let many: String = (0..150).map(|i| format!("\r\nx-many-{i}: v")).collect();
    let grpc_post = |content_type: &str, extra: &str| {
        format!("POST {LIST_PRODUCTS} HTTP/1.1\r\ncontent-type: {content_type}{extra}")
    };
    let frame = empty_list_request();
    vec![
        row(
            "an oversized Grpc-Metadata header",
            format!("GET /v1/products HTTP/1.1\r\ngrpc-metadata-tenant: {big}"),
            b"",
            431,
            InvalidArgument,
        ),
        row(
            "Grpc-Metadata-Content-Length: 0",
            "GET /v1/products HTTP/1.1\r\ngrpc-metadata-content-length: 0".into(),
            b"",
            400,
            InvalidArgument,
        ),
        row(
            "Grpc-Metadata-Transfer-Encoding",
            "GET /v1/products HTTP/1.1\r\ngrpc-metadata-transfer-encoding: chunked".into(),
            b"",
            400,
            InvalidArgument,
        ),
        row(
            "too many headers",
            format!("GET /v1/products HTTP/1.1{many}"),
            b"",
            431,
            InvalidArgument,
        ),
        row(
            "a URL over the limit",
            format!("GET /v1/products?pageToken={} HTTP/1.1", "x".repeat(9000)),
            b"",
            414,
            InvalidArgument,
        ),
        row(
            "an unparsable query parameter",
            "GET /v1/products?pageSize=many HTTP/1.1".into(),
            b"",
            400,
            InvalidArgument,
        ),
        row(
            "malformed JSON",
            "POST /v1/auth/login HTTP/1.1\r\ncontent-type: application/json".into(),
            b"{\"email\":",
            400,
            InvalidArgument,
        ),
        row(
            "gRPC-Web text whose body is not base64",
            grpc_post("application/grpc-web-text", ""),
            b"!!!! this is not base64 !!!!",
            200,
            InvalidArgument,
        ),
        row(
            "gRPC-Web with an oversized header",
            grpc_post("application/grpc-web+proto", &format!("\r\nx-big: {big}")),
            &frame,
            200,
            InvalidArgument,
        ),
        row(
            "gRPC over HTTP/1.1 with an oversized header",
            grpc_post(
                "application/grpc",
                &format!("\r\nte: trailers\r\nx-big: {big}"),
            ),
            &frame,
            200,
            InvalidArgument,
        ),
        row(
            "a gRPC-Web encoding not served",
            grpc_post("application/grpc-web+json", ""),
            b"{}",
            200,
            Unimplemented,
        ),
    ]
}

/// The gRPC code of an answer: its `grpc-status` header, else the one in a gRPC-Web trailer
/// frame of its body (base64 for gRPC-Web text), else the `code` of a `google.rpc.Status` body.
fn grpc_code(answer: &Answer) -> Option<i32> {
    if let Some(code) = answer.header("grpc-status") {
        return code.parse().ok();
    }
    let text = answer
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/grpc-web-text"));
    let body = if text {
        answer
            .body
            .chunks(4)
            .flat_map(|quad| BASE64.decode(quad).unwrap_or_default())
            .collect()
    } else {
        answer.body.clone()
    };
    let body = String::from_utf8_lossy(&body).to_ascii_lowercase();
    if let Some((_, rest)) = body.split_once("grpc-status:") {
        return rest
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|code| code.parse().ok());
    }
    serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|status| status["code"].as_i64())
        .and_then(|code| i32::try_from(code).ok())
}

async fn every_bad_input_gets_its_4xx_and_grpc_code_and_never_a_5xx_429_or_unavailable(
    backend: TestBackend,
) {
    let Some(setup) = setup(backend).await else {
        return;
    };
    let mut failures = Vec::new();
    for row in rows() {
        let answer = http1(setup.edge, &row.head, &row.body).await;
        let code = grpc_code(&answer);
        let ok = answer.status == row.status
            && code == Some(row.code as i32)
            && answer.status < 500
            && answer.status != 429
            && code != Some(tonic::Code::Unavailable as i32);
        if !ok {
            failures.push(format!(
                "{}: expected {} {:?}, got {} code {code:?}: {} {}",
                row.what,
                row.status,
                row.code,
                answer.status,
                answer.head,
                String::from_utf8_lossy(&answer.body)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A complete answer's length is known: HTTP/1.1 clients get it as `Content-Length` (a naive
/// client reading to the end of the connection sees the JSON alone), never chunked.
async fn answers_and_refusals_go_out_with_their_length_not_chunked(backend: TestBackend) {
    let Some(setup) = setup(backend).await else {
        return;
    };
    for (head, status) in [
        ("GET /v1/products?pageSize=1 HTTP/1.1", 200),
        ("GET /v1/no-such-route HTTP/1.1", 404),
    ] {
        let answer = http1(setup.edge, head, b"").await;
        assert_eq!(answer.status, status, "{head}: {}", answer.head);
        assert_eq!(
            answer.header("transfer-encoding"),
            None,
            "{head}: {}",
            answer.head
        );
        assert_eq!(
            answer.header("content-length"),
            Some(answer.body.len().to_string().as_str()),
            "{head}: {}",
            answer.head
        );
        serde_json::from_slice::<serde_json::Value>(&answer.body)
            .unwrap_or_else(|e| panic!("{head}: not JSON ({e})"));
    }
}
