use super::*;

fn settings(json: serde_json::Value) -> Result<OrderSettings, serde_json::Error> {
    serde_json::from_value(json)
}

#[test]
fn the_default_settings_work_on_a_laptop() {
    assert!(OrderSettings::default().validate().is_ok());
}

#[test]
fn durations_are_read_in_human_form_and_unknown_keys_are_refused() {
    let read = settings(serde_json::json!({
        "reservation_ttl": "30s",
        "idempotency_retention": "2h",
        "watch": { "max_per_user": 4 },
    }))
    .expect("valid settings");
    assert_eq!(read.reservation_ttl, Duration::from_secs(30));
    assert_eq!(read.idempotency_retention, Duration::from_secs(7200));
    assert_eq!(read.watch.max_per_user, 4);
    assert_eq!(read.watch.max_total, 10_000);
    assert!(read.validate().is_ok());
    assert!(settings(serde_json::json!({ "ttl": "1s" })).is_err());
}

#[test]
fn settings_out_of_range_stop_start_up_with_their_name() {
    let error = |json| {
        settings(json)
            .expect("well-formed")
            .validate()
            .map_err(|e| e.to_string())
            .expect_err("out of range")
    };
    assert!(
        error(serde_json::json!({ "reservation_ttl": "2h" })).contains("order.reservation_ttl")
    );
    assert!(
        error(serde_json::json!({ "watch": { "max_total": 0 } })).contains("order.watch.max_total")
    );
}

#[test]
fn the_old_watch_poll_setting_is_still_accepted_and_ignored() {
    let read = settings(serde_json::json!({ "watch_poll": "200ms" })).expect("accepted");
    assert!(read.validate().is_ok());
    assert!(settings(serde_json::json!({ "watch": { "poll": "1s" } })).is_err());
}
