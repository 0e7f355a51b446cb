//! Client-side balancing against real gRPC servers: calls reach every address a name resolves to,
//! and follow the name as its addresses change.

use std::{
    collections::BTreeMap,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use agora_platform::discovery::{DnsTarget, Resolve, balanced_channel};
use futures::future::BoxFuture;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A resolver whose answer the test sets: a name it controls.
#[derive(Default)]
struct Zone(Mutex<Vec<SocketAddr>>);

impl Zone {
    fn set(&self, addrs: &[SocketAddr]) {
        *self.0.lock().expect("zone lock") = addrs.to_vec();
    }
}

impl Resolve for Zone {
    fn resolve(&self, _: &str, _: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        let addrs = self.0.lock().expect("zone lock").clone();
        Box::pin(async move { Ok(addrs) })
    }
}

/// A real health server whose only SERVING service is named `name`, so each answer tells which
/// server gave it.
async fn server(ip: &str, name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((ip, 0))
        .await
        .expect("bind on loopback");
    let addr = listener.local_addr().expect("local addr");
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(name, tonic_health::ServingStatus::Serving)
        .await;
    tokio::spawn(async move {
        let _reporter = reporter;
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .expect("health server");
    });
    addr
}

/// Which servers answered `calls` calls: a server knows only its own name.
async fn who_answers(channel: &Channel, names: &[&str], calls: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    let mut client = HealthClient::new(channel.clone());
    for _ in 0..calls {
        let mut answered = None;
        for name in names {
            let request = HealthCheckRequest {
                service: (*name).into(),
            };
            // Each name is asked in one call; only the server that knows it says SERVING. Two
            // calls in a row may reach different servers, so a call per name is tried until one
            // succeeds and the first success is counted.
            if client.check(request).await.is_ok() {
                answered = Some((*name).to_owned());
                break;
            }
        }
        *seen
            .entry(answered.unwrap_or_else(|| "nobody".into()))
            .or_default() += 1;
    }
    seen
}

fn channel_over(zone: &Arc<Zone>) -> Channel {
    balanced_channel(
        DnsTarget {
            host: "auth-headless.test".into(),
            port: 1,
        },
        |addr| Ok(Endpoint::from_shared(format!("http://{addr}"))?),
        zone.clone(),
        Duration::from_millis(50),
        1,
    )
}

async fn until(mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the balanced channel did not follow the name within 5s");
}

#[tokio::test]
async fn calls_spread_over_every_address_and_follow_the_name_as_it_changes() {
    let a = server("127.0.0.1", "a").await;
    let b = server("127.0.0.2", "b").await;
    let zone = Arc::new(Zone::default());
    zone.set(&[a]);
    let channel = channel_over(&zone);

    let seen = who_answers(&channel, &["a", "b"], 10).await;
    assert_eq!(
        seen.get("a"),
        Some(&10),
        "one address, one server: {seen:?}"
    );

    // A second pod becomes ready: calls reach both, without a new channel.
    zone.set(&[a, b]);
    until(async || {
        let seen = who_answers(&channel, &["a", "b"], 40).await;
        seen.get("a").is_some_and(|n| *n > 0) && seen.get("b").is_some_and(|n| *n > 0)
    })
    .await;

    // The first pod leaves: every call goes to the one left.
    zone.set(&[b]);
    until(async || who_answers(&channel, &["b"], 20).await.get("b") == Some(&20)).await;
    let seen = who_answers(&channel, &["a", "b"], 20).await;
    assert_eq!(seen.get("b"), Some(&20), "only b is left: {seen:?}");
}

#[tokio::test]
async fn a_dns_url_through_lazy_channel_resolves_with_the_system_resolver() {
    let a = server("127.0.0.1", "a").await;
    let channel = agora_platform::client::lazy_channel(&format!("dns:///localhost:{}", a.port()))
        .expect("valid dns url");
    let mut client = HealthClient::new(channel);
    let mut last = None;
    // localhost may also resolve to ::1, where nothing listens; the IPv4 address must serve.
    for _ in 0..50 {
        match client
            .check(HealthCheckRequest {
                service: "a".into(),
            })
            .await
        {
            Ok(_) => return,
            Err(status) => last = Some(status),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no answer through dns:///localhost: {last:?}");
}
