//! The console's arithmetic on known readings: rates, success and quantiles from bucket
//! increases, counter resets, and the snapshot's services, bus and orders.

use agora_platform::metrics::exposition::parse;

use super::board::{Board, Upstream};
use super::sources::{Reading, SourceState};
use super::window::{Golden, Tally, Window, quantile};
use super::*;

/// The exposition text of GetProduct's calls: `ok` answered OK and `internal` INTERNAL, in
/// buckets of 5 ms, 10 ms, 25 ms and +Inf (cumulative counts for each status).
fn get_product(ok: [u32; 4], internal: [u32; 4]) -> String {
    let mut text = String::new();
    for (status, counts) in [("0", ok), ("13", internal)] {
        let labels = format!(
            "rpc_method=\"GetProduct\",rpc_service=\"agora.product.v1.ProductService\",\
             rpc_grpc_status_code=\"{status}\",rpc_system=\"grpc\""
        );
        for (le, count) in ["0.005", "0.01", "0.025", "+Inf"].iter().zip(counts) {
            text.push_str(&format!(
                "rpc_server_call_duration_seconds_bucket{{{labels},le=\"{le}\"}} {count}\n"
            ));
        }
        text.push_str(&format!(
            "rpc_server_call_duration_seconds_count{{{labels}}} {}\n",
            counts[3]
        ));
    }
    text
}

fn tally(text: &str) -> Tally {
    Tally::of(&parse(text).expect("well formed"))
}

fn key(service: &str, method: &str) -> (String, String) {
    (service.to_owned(), method.to_owned())
}

#[test]
fn quantiles_interpolate_within_the_bucket_the_rank_falls_in() {
    // 100 calls: 40 under 5 ms, 50 more under 10 ms, 10 more under 25 ms.
    let buckets = [
        (0.005, 40.0),
        (0.01, 90.0),
        (0.025, 100.0),
        (f64::INFINITY, 100.0),
    ];
    // Rank 50 is the 10th of 50 calls in (5 ms, 10 ms]: 5 + 5 * 10/50 = 6 ms.
    let p50 = quantile(0.5, &buckets).expect("calls");
    assert!((p50 - 0.006).abs() < 1e-12, "{p50}");
    // Rank 99 is the 9th of 10 in (10 ms, 25 ms]: 10 + 15 * 9/10 = 23.5 ms.
    let p99 = quantile(0.99, &buckets).expect("calls");
    assert!((p99 - 0.0235).abs() < 1e-12, "{p99}");
    // In the first bucket, from zero: rank 20 of 40 under 5 ms is 2.5 ms.
    let p20 = quantile(0.2, &buckets).expect("calls");
    assert!((p20 - 0.0025).abs() < 1e-12, "{p20}");
    // A rank in +Inf is the highest finite bound, as Prometheus answers.
    let slow = [(0.005, 1.0), (f64::INFINITY, 10.0)];
    assert_eq!(quantile(0.5, &slow), Some(0.005));
    assert_eq!(quantile(0.5, &[(0.005, 0.0), (f64::INFINITY, 0.0)]), None);
}

#[test]
fn a_minute_of_calls_gives_exact_rates_success_and_quantiles_from_bucket_increases() {
    let mut window = Window::default();
    // Before: 10 OK calls all under 5 ms, 2 INTERNAL under 25 ms.
    window.push(0.0, tally(&get_product([10, 10, 10, 10], [0, 0, 2, 2])));
    // A minute later: 90 more OK (30 under 5 ms, 50 in 5-10 ms, 10 in 10-25 ms), 10 more INTERNAL.
    window.push(
        60.0,
        tally(&get_product([40, 90, 100, 100], [0, 0, 12, 12])),
    );
    let changes = window.changes().expect("two readings");
    assert_eq!(changes.seconds, 60.0);
    let golden = changes.rpc[&key("agora.product.v1.ProductService", "GetProduct")];
    // 100 calls in 60 s; 10 of them INTERNAL, a fault of the server.
    assert!((golden.rate - 100.0 / 60.0).abs() < 1e-12, "{golden:?}");
    assert_eq!(golden.success, Some(0.9));
    // The increase per bucket: 30 under 5 ms, 80 under 10 ms, 100 under 25 ms.
    // p50: rank 50 is the 20th of 50 in (5, 10]: 5 + 5 * 20/50 = 7 ms.
    assert!(
        (golden.p50.expect("calls") - 0.007).abs() < 1e-12,
        "{golden:?}"
    );
    // p99: rank 99 is the 19th of 20 in (10, 25]: 10 + 15 * 19/20 = 24.25 ms.
    assert!(
        (golden.p99.expect("calls") - 0.02425).abs() < 1e-12,
        "{golden:?}"
    );
    assert_eq!(
        changes.services["agora.product.v1.ProductService"], golden,
        "one method: the service's numbers are its"
    );
}

#[test]
fn client_errors_are_not_failures_and_a_restarted_process_counts_from_zero() {
    let not_found = "rpc_server_call_duration_seconds_count{rpc_service=\"s\",rpc_method=\"m\",\
                     rpc_grpc_status_code=\"5\"} ";
    let mut window = Window::default();
    window.push(0.0, tally(&format!("{not_found}50\n")));
    // The process restarted: 8 calls since, fewer than before.
    window.push(4.0, tally(&format!("{not_found}8\n")));
    let golden = window.changes().expect("two readings").rpc[&key("s", "m")];
    assert_eq!(golden.rate, 2.0);
    assert_eq!(golden.success, Some(1.0), "NOT_FOUND is the caller's doing");
    // No buckets were read: no quantile rather than a made-up one.
    assert_eq!(golden.p50, None);
}

#[test]
fn the_window_keeps_a_reading_a_minute_old_as_its_baseline() {
    let mut window = Window::default();
    for second in 0..=40 {
        let at = f64::from(second) * 2.0;
        window.push(
            at,
            tally(&format!(
                "agora_orders_total{{agora_order_outcome=\"placed\"}} {second}\n"
            )),
        );
    }
    // At 80 s the baseline is the reading of 20 s: 30 orders in 60 s.
    let changes = window.changes().expect("readings");
    assert_eq!(changes.seconds, 60.0);
    assert_eq!(changes.orders_per_minute["placed"], 30.0);
}

#[test]
fn the_snapshot_lists_every_upstream_and_says_no_data_for_absent_series() {
    let mut board = Board::default();
    let upstreams = [Upstream {
        name: "product".into(),
        grpc: "agora.product.v1.ProductService".into(),
        health: "SERVING".into(),
        since: "2026-01-01T00:00:00Z".into(),
    }];
    let reading = |text: &str| Reading {
        samples: parse(text).expect("well formed"),
        sources: vec![SourceState {
            source: "this process".into(),
            service: Some("agora".into()),
            error: None,
        }],
    };
    board.update(0.0, 0, reading(&get_product([0; 4], [0; 4])), &upstreams);
    let health = "rpc_server_call_duration_seconds_count{rpc_service=\"grpc.health.v1.Health\",\
                  rpc_method=\"Check\",rpc_grpc_status_code=\"0\"} 30\n";
    let snapshot = board.update(
        2.0,
        2000,
        reading(&format!("{}{health}", get_product([4, 4, 4, 4], [0; 4]))),
        &upstreams,
    );
    assert_eq!(snapshot.services.len(), 1, "health checks are left out");
    let product = &snapshot.services[0];
    assert_eq!(product.replicas, 1, "agora up serves every service");
    assert_eq!(product.health.as_deref(), Some("SERVING"));
    assert_eq!(product.golden.rate, 2.0);
    assert_eq!(product.rate_history, vec![0.0, 2.0]);
    assert_eq!(product.methods[0].method, "GetProduct");
    assert!(snapshot.bus.is_none());
    assert!(snapshot.orders.is_none());

    let json = serde_json::to_value(&snapshot).expect("serializable");
    assert_eq!(json["services"][0]["p50"], 0.0025);
    assert_eq!(json["bus"], serde_json::Value::Null);
}

#[test]
fn the_bus_sums_backlogs_and_keeps_the_oldest_lag_of_each_stream() {
    let text = "agora_outbox_backlog{messaging_destination_name=\"order\"} 3\n\
                agora_outbox_backlog{messaging_destination_name=\"order\"} 2\n\
                agora_outbox_lag_seconds{messaging_destination_name=\"order\"} 1.5\n\
                agora_outbox_lag_seconds{messaging_destination_name=\"order\"} 4\n\
                agora_consumer_lag{messaging_destination_name=\"order\",messaging_consumer_group_name=\"inventory\"} 7\n";
    let mut board = Board::default();
    let reading = Reading {
        samples: parse(text).expect("well formed"),
        sources: Vec::new(),
    };
    let bus = board.update(0.0, 0, reading, &[]).bus.expect("reported");
    assert_eq!(bus.streams[0].backlog, Some(5.0));
    assert_eq!(bus.streams[0].lag_seconds, Some(4.0));
    assert_eq!(bus.consumers[0].group, "inventory");
    assert_eq!(bus.consumers[0].lag, 7.0);
    assert_eq!(bus.backlog_history, vec![5.0]);
}

#[test]
fn a_source_that_is_not_an_http_url_or_a_tiny_interval_stops_start_up() {
    let settings = ConsoleSettings {
        sources: vec!["product:9464/metrics".into()],
        ..ConsoleSettings::default()
    };
    let error = settings.validate().expect_err("refused");
    assert!(
        error.to_string().contains("gateway.console.sources[0]"),
        "{error}"
    );
    let settings = ConsoleSettings {
        interval: Duration::from_millis(10),
        ..ConsoleSettings::default()
    };
    assert!(settings.validate().is_err());
    assert_eq!(Golden::default().success, None);
}

#[tokio::test]
async fn scraped_sources_are_read_over_http_and_one_that_does_not_answer_is_reported() {
    use agora_platform::metrics::{Metrics, MetricsEndpoint};

    let metrics = Metrics::private();
    metrics.meter().u64_counter("agora.orders").build().add(
        3,
        &[opentelemetry::KeyValue::new(
            "agora.order.outcome",
            "placed",
        )],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let endpoint = MetricsEndpoint::serve(listener, metrics).expect("serving");
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port")
        .local_addr()
        .expect("bound");
    let sources = sources::Sources::new(
        vec![
            format!("http://{}/metrics", endpoint.local_addr()),
            format!("http://{closed}/metrics"),
        ],
        Duration::from_secs(5),
    )
    .expect("a client");

    let reading = sources.read().await;
    assert_eq!(reading.sources.len(), 3, "this process and both URLs");
    assert_eq!(reading.sources[0].source, "this process");
    let scraped = &reading.sources[1];
    assert_eq!(scraped.service.as_deref(), Some("agora"), "{scraped:?}");
    assert!(scraped.error.is_none(), "{scraped:?}");
    assert!(
        reading.sources[2].error.is_some(),
        "{:?}",
        reading.sources[2]
    );
    assert_eq!(Tally::of(&reading.samples).orders["placed"], 3.0);
}
