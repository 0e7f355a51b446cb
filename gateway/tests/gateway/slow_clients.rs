//! Clients that hold connections without using them, against a whole edge: one trickling its
//! request head a byte at a time is cut off after `gateway.connections.header_read_timeout`
//! while other clients are served, and a connection left idle is closed after `idle_timeout`.
//! Connection handling does not depend on the backend, so these run on the embedded one only.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use agora_testkit::TestBackend;

use crate::whole_edge::{PATIENCE, http1, setup_with};

#[tokio::test]
async fn a_client_trickling_its_head_is_cut_off_after_the_header_read_timeout_while_others_are_served()
 {
    let setup = setup_with(
        TestBackend::Embedded,
        &[
            ("gateway.connections.header_read_timeout", "1s"),
            ("gateway.connections.idle_timeout", "30s"),
        ],
    )
    .await
    .expect("the embedded backend always runs");
    let edge = setup.edge;
    let slow = TcpStream::connect(edge).await.expect("the edge accepts");
    let started = Instant::now();
    let (mut reader, mut writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        writer
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: edge\r\nx-slow: ")
            .await
            .expect("the head starts");
        // At most 20 more bytes, one every half second: far past the timeout if never cut off.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if writer.write_all(b"a").await.is_err() {
                break;
            }
        }
    });

    // Others are served while the slow client holds its connection.
    for round in 0..10 {
        let answer = http1(edge, "GET /healthz HTTP/1.1", b"").await;
        assert_eq!(answer.status, 200, "round {round}: {answer:?}");
    }

    let mut answer = Vec::new();
    let read = tokio::time::timeout(PATIENCE, reader.read_to_end(&mut answer))
        .await
        .expect("the edge closes the slow connection");
    let after = started.elapsed();
    trickle.abort();
    assert!(
        read.is_err() || !String::from_utf8_lossy(&answer).contains(" 200 "),
        "the trickled request was never served: {answer:?}"
    );
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(5),
        "cut off after {after:?}"
    );
}

#[tokio::test]
async fn a_connection_left_idle_is_closed_after_the_idle_timeout() {
    let setup = setup_with(
        TestBackend::Embedded,
        &[("gateway.connections.idle_timeout", "1s")],
    )
    .await
    .expect("the embedded backend always runs");
    let mut client = TcpStream::connect(setup.edge)
        .await
        .expect("the edge accepts");
    client
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: edge\r\n\r\n")
        .await
        .expect("sent");
    // The answer, then nothing: read until the edge closes the connection.
    let mut received = Vec::new();
    let mut answered = None;
    let mut buffer = [0_u8; 1024];
    loop {
        let read = tokio::time::timeout(PATIENCE, client.read(&mut buffer))
            .await
            .expect("the edge closes the idle connection");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                received.extend_from_slice(&buffer[..n]);
                answered.get_or_insert_with(Instant::now);
            }
        }
    }
    let answered = answered.expect("the request was answered first");
    let idle = answered.elapsed();
    assert!(
        String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200"),
        "{received:?}"
    );
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(5),
        "closed after {idle:?} idle"
    );
}
