use tonic::Code;
use tonic_types::StatusExt;

use super::*;

/// The code, message and ErrorInfo reason `error` is answered with.
fn answer(error: ServiceError) -> (Code, String, Option<String>) {
    let status = Status::from(error);
    let reason = status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone());
    (status.code(), status.message().to_owned(), reason)
}

#[test]
fn refusals_are_answered_with_their_code_message_and_reason() {
    let cases = [
        (
            ServiceError::Store(StoreError::EmailTaken),
            Code::AlreadyExists,
            "an account with this email exists already",
            Some("EMAIL_TAKEN"),
        ),
        (
            ServiceError::WrongCredentials,
            Code::Unauthenticated,
            "wrong email or password",
            None,
        ),
        (
            ServiceError::UnknownClient,
            Code::Unauthenticated,
            "unknown client or wrong secret",
            None,
        ),
        (
            ServiceError::RefreshReused,
            Code::Unauthenticated,
            "this refresh token was already used; the session has been revoked",
            None,
        ),
        (
            ServiceError::RefreshInvalid,
            Code::Unauthenticated,
            "invalid or expired refresh token",
            None,
        ),
        (
            ServiceError::KeysFromConfiguration,
            Code::FailedPrecondition,
            "the signing key comes from configuration; rotate it there",
            Some("KEYS_FROM_CONFIGURATION"),
        ),
    ];
    for (error, code, message, reason) in cases {
        assert_eq!(
            answer(error),
            (code, message.to_owned(), reason.map(str::to_owned))
        );
    }
}

#[test]
fn a_missing_resource_is_named_in_its_resource_info() {
    let status = Status::from(ServiceError::NotFound {
        resource: "session",
        id: "0190a0b1-0000-7000-8000-000000000001".into(),
    });
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "session not found");
    let details = status.get_error_details();
    let info = details.resource_info().expect("ResourceInfo");
    assert_eq!(info.resource_type, "session");
    assert_eq!(info.resource_name, "0190a0b1-0000-7000-8000-000000000001");
}

#[test]
fn throttled_attempts_say_which_budget_and_when_to_retry() {
    for (throttled, reason, message) in [
        (
            Throttled::Logins {
                retry_after: Duration::from_secs(30),
            },
            "LOGIN_THROTTLED",
            "too many failed sign-in attempts; try again later",
        ),
        (
            Throttled::Registrations {
                retry_after: Duration::from_secs(30),
            },
            "REGISTRATIONS_THROTTLED",
            "too many registrations from this address; try again later",
        ),
    ] {
        let status = Status::from(ServiceError::from(throttled));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), message);
        let details = status.get_error_details();
        assert_eq!(
            details.error_info().map(|i| i.reason.as_str()),
            Some(reason)
        );
        assert_eq!(
            details.retry_info().and_then(|r| r.retry_delay),
            Some(Duration::from_secs(30))
        );
    }
}

#[test]
fn internal_failures_hide_their_cause() {
    let error = anyhow::anyhow!("key file /etc/agora/key.pem unreadable");
    let status = Status::from(ServiceError::Keys(error));
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(status.message(), "internal error");
    assert!(!format!("{:?}", status.details()).contains("key.pem"));
}

#[test]
fn roles_cross_the_wire_each_once_and_unknown_ones_are_none() {
    assert_eq!(role(pb::Role::Admin as i32), Some(Role::Admin));
    assert_eq!(role(pb::Role::Unspecified as i32), None);
    assert_eq!(role(99), None);
    assert_eq!(
        roles(vec![Role::Admin, Role::Admin]),
        [pb::Role::Admin as i32]
    );
}
