//! The clients' instruments against a real tonic server in this process, each test reading a
//! provider of its own.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use tonic::{Code, Request, Response, Status, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse,
    health_check_response::ServingStatus,
    health_client::HealthClient,
    health_server::{Health, HealthServer},
};

use super::*;
use crate::client::{
    BreakerSettings, CircuitBreaker, Idempotency, Propagate, Resilient, RetrySettings,
};
use crate::metrics::exposition::{Sample, matching, parse};

const HEALTH: &str = "grpc.health.v1.Health";

/// A health server whose first `failures` checks answer UNAVAILABLE, and the rest SERVING.
struct Flaky {
    failures: u32,
    seen: Arc<AtomicU32>,
}

#[tonic::async_trait]
impl Health for Flaky {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        if self.seen.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(Status::unavailable("not yet"));
        }
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        }))
    }

    type WatchStream = futures::stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not watched here"))
    }
}

/// Serves [`Flaky`] on a port of its own; the channel to it and the count of checks it saw.
async fn flaky(failures: u32) -> (Channel, Arc<AtomicU32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    let seen = Arc::new(AtomicU32::new(0));
    let server = HealthServer::new(Flaky {
        failures,
        seen: Arc::clone(&seen),
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let channel = crate::client::lazy_channel(&format!("http://{addr}")).expect("a valid URL");
    (channel, seen)
}

/// A provider of the test's own and its client instruments.
fn private() -> (Metrics, ClientMetrics) {
    let metrics = Metrics::private();
    let client = ClientMetrics::new(&metrics.meter());
    (metrics, client)
}

fn scrape(metrics: &Metrics) -> Vec<Sample> {
    parse(&metrics.render().expect("rendered")).expect("the text format")
}

/// The value of the one sample of `name` with `labels`, 0 when there is none.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = matching(samples, name, labels);
    assert!(found.len() <= 1, "{name} {labels:?}: {found:?}");
    found.first().map_or(0.0, |sample| sample.value)
}

fn retrying(metrics: &ClientMetrics, settings: RetrySettings) -> Resilient {
    Resilient::with_metrics(
        HEALTH,
        RetrySettings {
            base_backoff: Duration::ZERO,
            ..settings
        },
        BreakerSettings {
            failure_threshold: u32::MAX,
            open_for: Duration::from_secs(1),
        },
        metrics.clone(),
    )
}

async fn check(
    resilient: &Resilient,
    client: &HealthClient<Propagate<Channel>>,
) -> Result<Response<HealthCheckResponse>, Status> {
    resilient
        .call(
            Idempotency::Idempotent,
            HealthCheckRequest::default(),
            |request| {
                let mut client = client.clone();
                async move { client.check(request).await }
            },
        )
        .await
}

#[tokio::test]
async fn an_upstream_that_fails_twice_costs_two_retries_and_each_attempt_is_timed_with_its_status()
{
    let (metrics, client_metrics) = private();
    let (channel, seen) = flaky(2).await;
    let client = HealthClient::new(
        Propagate::new(channel, None, Duration::from_secs(3)).with_metrics(client_metrics.clone()),
    );
    let resilient = retrying(&client_metrics, RetrySettings::default());

    check(&resilient, &client).await.expect("the third attempt");
    assert_eq!(seen.load(Ordering::SeqCst), 3);

    let samples = scrape(&metrics);
    let retries = |outcome| {
        value(
            &samples,
            "agora_client_retries_total",
            &[("rpc_service", HEALTH), ("agora_retry_outcome", outcome)],
        )
    };
    assert_eq!(retries("taken"), 2.0);
    assert_eq!(retries("refused"), 0.0);
    let calls = |status| {
        value(
            &samples,
            "rpc_client_call_duration_seconds_count",
            &[
                ("rpc_system", "grpc"),
                ("rpc_service", HEALTH),
                ("rpc_method", "Check"),
                ("rpc_grpc_status_code", status),
            ],
        )
    };
    assert_eq!(calls("14"), 2.0);
    assert_eq!(calls("0"), 1.0);
}

#[tokio::test]
async fn retries_the_budget_refuses_are_counted_as_refused() {
    let (metrics, client_metrics) = private();
    let (channel, seen) = flaky(u32::MAX).await;
    let client = HealthClient::new(
        Propagate::new(channel, None, Duration::from_secs(3)).with_metrics(client_metrics.clone()),
    );
    // A budget with nothing in it: no floor, and calls earn no retries.
    let resilient = retrying(
        &client_metrics,
        RetrySettings {
            retry_ratio: 0.0,
            min_retries_per_sec: 0,
            ..RetrySettings::default()
        },
    );
    for _ in 0..3 {
        let status = check(&resilient, &client).await.expect_err("down");
        assert_eq!(status.code(), Code::Unavailable);
    }
    assert_eq!(seen.load(Ordering::SeqCst), 3, "no retry was sent");
    let samples = scrape(&metrics);
    let labels = |outcome| [("rpc_service", HEALTH), ("agora_retry_outcome", outcome)];
    assert_eq!(
        value(&samples, "agora_client_retries_total", &labels("refused")),
        3.0
    );
    assert_eq!(
        value(&samples, "agora_client_retries_total", &labels("taken")),
        0.0
    );
}

#[tokio::test]
async fn a_breaker_driven_open_shows_state_two_after_one_transition_to_open() {
    let (metrics, client_metrics) = private();
    let (channel, seen) = flaky(u32::MAX).await;
    let client = HealthClient::new(
        Propagate::new(channel, None, Duration::from_secs(3)).with_metrics(client_metrics.clone()),
    );
    let resilient = Resilient::with_metrics(
        HEALTH,
        RetrySettings {
            max_attempts: 1,
            ..RetrySettings::default()
        },
        BreakerSettings {
            failure_threshold: 2,
            open_for: Duration::from_secs(60),
        },
        client_metrics.clone(),
    );
    let state = |samples: &[Sample]| {
        value(
            samples,
            "agora_client_breaker_state",
            &[("rpc_service", HEALTH)],
        )
    };
    assert_eq!(state(&scrape(&metrics)), 0.0, "closed from the start");
    for _ in 0..5 {
        check(&resilient, &client).await.expect_err("down");
    }
    assert_eq!(seen.load(Ordering::SeqCst), 2, "open after two failures");

    let samples = scrape(&metrics);
    assert_eq!(state(&samples), 2.0);
    let transitions = matching(&samples, "agora_client_breaker_transitions_total", &[]);
    assert_eq!(transitions.len(), 1, "{transitions:?}");
    assert!(transitions[0].has(&[("rpc_service", HEALTH), ("agora_breaker_state", "open")]));
    assert_eq!(transitions[0].value, 1.0);
    // Two calls reached the upstream; the three the open breaker refused never left.
    assert_eq!(
        value(
            &samples,
            "rpc_client_call_duration_seconds_count",
            &[("rpc_method", "Check"), ("rpc_grpc_status_code", "14")],
        ),
        2.0
    );
}

#[test]
fn a_probe_shows_half_open_and_its_success_closes_the_breaker_again() {
    let (metrics, client_metrics) = private();
    let breaker = CircuitBreaker::with_metrics(
        "inventory",
        BreakerSettings {
            failure_threshold: 1,
            open_for: Duration::from_secs(5),
        },
        client_metrics,
    );
    let inventory = "agora.inventory.v1.InventoryService";
    let t = Instant::now();
    breaker.record_at(t, true);
    breaker
        .admit_at(t + Duration::from_secs(5))
        .expect("the probe");
    let samples = scrape(&metrics);
    let state = |samples: &[Sample]| {
        value(
            samples,
            "agora_client_breaker_state",
            &[("rpc_service", inventory)],
        )
    };
    assert_eq!(state(&samples), 1.0);
    breaker.record_at(t + Duration::from_secs(5), false);
    let samples = scrape(&metrics);
    assert_eq!(state(&samples), 0.0);
    for entered in ["open", "half_open", "closed"] {
        let labels = [("rpc_service", inventory), ("agora_breaker_state", entered)];
        assert_eq!(
            value(&samples, "agora_client_breaker_transitions_total", &labels),
            1.0,
            "{entered}"
        );
    }
}

#[tokio::test]
async fn a_call_to_a_path_of_no_known_service_is_timed_as_other_and_an_unreachable_one_as_unavailable()
 {
    let (metrics, client_metrics) = private();
    // Nothing listens on port 1.
    let channel = crate::client::lazy_channel("http://127.0.0.1:1").expect("a valid URL");
    let mut client = HealthClient::new(client_metrics.layer(channel));
    let status = client
        .check(HealthCheckRequest::default())
        .await
        .expect_err("unreachable");
    assert_eq!(status.code(), Code::Unavailable);
    let mut metered = client_metrics
        .layer(crate::client::lazy_channel("http://127.0.0.1:1").expect("a valid URL"));
    let request = http::Request::builder()
        .uri("http://127.0.0.1:1/scanner.v1.Probe/Anything")
        .body(Body::empty())
        .expect("a request");
    let _ = tower::ServiceExt::ready(&mut metered)
        .await
        .expect("ready")
        .call(request)
        .await;
    let samples = scrape(&metrics);
    let count =
        |labels: &[(&str, &str)]| value(&samples, "rpc_client_call_duration_seconds_count", labels);
    assert_eq!(
        count(&[
            ("rpc_service", HEALTH),
            ("rpc_method", "Check"),
            ("rpc_grpc_status_code", "14")
        ]),
        1.0
    );
    assert_eq!(
        count(&[
            ("rpc_service", OTHER),
            ("rpc_method", OTHER),
            ("rpc_grpc_status_code", "14")
        ]),
        1.0
    );
}

#[test]
fn with_metrics_off_the_instruments_record_nothing_and_the_text_says_so() {
    let metrics = Metrics::off();
    assert!(!metrics.is_on());
    let client_metrics = ClientMetrics::new(&metrics.meter());
    client_metrics.retry("inventory", RetryOutcome::Taken);
    client_metrics.breaker("inventory", BreakerState::Open, true);
    let text = metrics.render().expect("rendered");
    assert_eq!(text, "# metrics are off (telemetry.metrics = false)\n");
    assert!(parse(&text).expect("valid text").is_empty());
}
