use tonic::Status;

use super::*;

/// The (field, description) pairs of an INVALID_ARGUMENT, in order.
fn violations(error: ApiError) -> Vec<(String, String)> {
    let ApiError::InvalidArgument { violations, .. } = error else {
        panic!("not INVALID_ARGUMENT: {error:?}");
    };
    violations
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(field, description)| ((*field).to_owned(), (*description).to_owned()))
        .collect()
}

const USER: &str = "0190A0B1-0000-7000-8000-000000000001";

#[test]
fn a_registration_with_every_field_wrong_reports_every_violation() {
    let error = NewAccount::try_from(pb::RegisterRequest {
        email: "not an email".into(),
        password: "short".into(),
    })
    .expect_err("both fields are wrong");
    assert_eq!(
        violations(error),
        pairs(&[
            ("email", "is not an email address"),
            ("password", "must be at least 8 characters"),
        ])
    );
}

#[test]
fn a_registration_may_not_use_its_email_as_password() {
    let error = NewAccount::try_from(pb::RegisterRequest {
        email: "ada@example.com".into(),
        password: "Ada@Example.com".into(),
    })
    .expect_err("the password is the email");
    assert_eq!(
        violations(error),
        pairs(&[("password", "must not be the email address")])
    );
}

#[test]
fn a_valid_registration_holds_the_normalised_email() {
    let account = NewAccount::try_from(pb::RegisterRequest {
        email: " Ada@Example.com ".into(),
        password: "correct horse 7".into(),
    })
    .expect("valid");
    assert_eq!(account.email.as_str(), "ada@example.com");
    assert_eq!(account.password.expose(), "correct horse 7");
}

#[test]
fn a_login_with_every_field_wrong_reports_the_password_first() {
    let error = Credentials::try_from(pb::LoginRequest {
        email: String::new(),
        password: String::new(),
    })
    .expect_err("both fields are wrong");
    assert_eq!(
        violations(error),
        pairs(&[("password", "is required"), ("email", "is required")])
    );
}

#[test]
fn a_login_takes_an_old_short_password_as_presented() {
    let credentials = Credentials::try_from(pb::LoginRequest {
        email: "ada@example.com".into(),
        password: "short".into(),
    })
    .expect("an old password signs in as it was made");
    assert_eq!(credentials.password.into_inner(), "short");
}

#[test]
fn an_empty_refresh_token_is_required_on_refresh_and_on_logout() {
    let refresh = RefreshToken::try_from(pb::RefreshRequest {
        refresh_token: String::new(),
    })
    .expect_err("empty");
    assert_eq!(
        violations(refresh),
        pairs(&[("refresh_token", "is required")])
    );
    let logout = RefreshToken::try_from(pb::LogoutRequest {
        refresh_token: String::new(),
    })
    .expect_err("empty");
    assert_eq!(
        violations(logout),
        pairs(&[("refresh_token", "is required")])
    );
    let token = RefreshToken::try_from(pb::LogoutRequest {
        refresh_token: "abc".into(),
    })
    .expect("present");
    assert_eq!(token.expose(), "abc");
    assert_eq!(format!("{token:?}"), "RefreshToken(..)", "never printed");
}

#[test]
fn a_service_token_request_with_every_field_empty_reports_every_violation() {
    let error = ClientCredentials::try_from(pb::IssueServiceTokenRequest::default())
        .expect_err("both fields are empty");
    assert_eq!(
        violations(error),
        pairs(&[
            ("client_id", "is required"),
            ("client_secret", "is required")
        ])
    );
    let credentials = ClientCredentials::try_from(pb::IssueServiceTokenRequest {
        client_id: "order".into(),
        client_secret: "s3cret".into(),
    })
    .expect("both present");
    assert_eq!(credentials.client_id, "order");
    assert_eq!(credentials.secret(), "s3cret");
    assert!(
        !format!("{credentials:?}").contains("s3cret"),
        "never printed"
    );
}

#[test]
fn a_role_change_with_every_field_wrong_reports_every_violation() {
    let error = RoleChange::try_from(pb::SetUserRolesRequest {
        user_id: "nobody".into(),
        roles: vec![pb::Role::Admin as i32, pb::Role::Unspecified as i32, 99],
    })
    .expect_err("the id and two roles are wrong");
    assert_eq!(
        violations(error),
        pairs(&[
            ("user_id", "must be a UUID"),
            ("roles[1]", "must be a known role"),
            ("roles[2]", "must be a known role"),
        ])
    );
}

#[test]
fn a_role_change_holds_the_canonical_id_and_the_roles_as_asked() {
    let change = RoleChange::try_from(pb::SetUserRolesRequest {
        user_id: USER.into(),
        roles: vec![pb::Role::Admin as i32, pb::Role::Admin as i32],
    })
    .expect("valid");
    assert_eq!(
        change,
        RoleChange {
            user_id: USER.to_lowercase(),
            roles: vec![Role::Admin, Role::Admin],
        }
    );
}

#[test]
fn a_session_to_revoke_must_be_a_uuid() {
    let error = SessionToRevoke::try_from(pb::RevokeSessionRequest {
        session_id: "nope".into(),
    })
    .expect_err("not a UUID");
    let status = Status::from(error);
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "invalid session_id: must be a UUID");
    let session = SessionToRevoke::try_from(pb::RevokeSessionRequest {
        session_id: USER.into(),
    })
    .expect("a UUID");
    assert_eq!(session.session_id, USER.to_lowercase());
}
