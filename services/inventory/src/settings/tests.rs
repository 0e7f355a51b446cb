use super::*;

fn settings(json: serde_json::Value) -> Result<InventorySettings, serde_json::Error> {
    serde_json::from_value(json)
}

#[test]
fn the_default_settings_work_on_a_laptop() {
    let defaults = InventorySettings::default();
    assert!(defaults.validate().is_ok());
    assert_eq!(defaults.default_reservation_ttl, Duration::from_secs(900));
}

#[test]
fn durations_are_read_in_human_form_and_unknown_keys_are_refused() {
    let read = settings(serde_json::json!({
        "sweep_interval": "250ms",
        "default_reservation_ttl": "2s",
        "max_reservation_ttl": "10m",
    }))
    .expect("valid settings");
    assert_eq!(read.sweep_interval, Duration::from_millis(250));
    assert_eq!(read.default_reservation_ttl, Duration::from_secs(2));
    assert!(read.validate().is_ok());
    assert!(settings(serde_json::json!({ "sweep": "1s" })).is_err());
}

#[test]
fn settings_outside_the_contract_stop_start_up_with_their_name() {
    let error = |json| {
        settings(json)
            .expect("well-formed")
            .validate()
            .map_err(|e| e.to_string())
            .expect_err("out of range")
    };
    let too_long = error(serde_json::json!({ "max_reservation_ttl": "2h" }));
    assert!(
        too_long.contains("inventory.max_reservation_ttl"),
        "{too_long}"
    );
    let above_max = error(serde_json::json!({
        "default_reservation_ttl": "20m",
        "max_reservation_ttl": "10m",
    }));
    assert!(
        above_max.contains("inventory.default_reservation_ttl"),
        "{above_max}"
    );
    let no_pause = error(serde_json::json!({ "sweep_interval": "0s" }));
    assert!(no_pause.contains("inventory.sweep_interval"), "{no_pause}");
}
