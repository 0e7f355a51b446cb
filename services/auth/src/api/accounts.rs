//! Accounts: Register and Login, where passwords are checked and the login throttle and the
//! registration budget are spent.

use agora_contracts::agora::auth::v1 as pb;
use agora_platform::error::{ApiError, FieldViolations};
use tonic::{Request, Response, Status};

use super::{AuthApi, address::client_address};
use crate::{
    domain::{Email, Password, PresentedPassword},
    throttle::Attempt,
};

/// Register: a new account with its first session, signed in at once on this device.
pub(super) async fn register(
    api: &AuthApi,
    request: Request<pb::RegisterRequest>,
) -> Result<Response<pb::RegisterResponse>, Status> {
    let address = client_address(&request, &api.settings.trusted_proxies);
    let request = request.into_inner();
    let mut violations = FieldViolations::default();
    let email = violations.take("email", Email::parse(&request.email));
    let password = violations.take(
        "password",
        Password::parse(&request.password, email.as_ref()),
    );
    violations.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::internal(anyhow::anyhow!("parsed fields missing")).into());
    };
    api.registrations.spend(address.as_deref()).await?;
    let hash = api
        .hasher
        .hash(password.expose().to_owned())
        .await
        .map_err(ApiError::from)?;
    let user_id = uuid::Uuid::now_v7().to_string();
    let session_id = uuid::Uuid::now_v7().to_string();
    let (refresh, record) = api.new_refresh();
    api.store
        .register(&user_id, &email, &hash, &[], &session_id, &record)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(user_id, "registered");
    let tokens = api
        .tokens(&user_id, &session_id, &[], refresh, &record)
        .await?;
    // The device that registered is the account's first known device.
    let mut response = Response::new(pb::RegisterResponse {
        user_id: user_id.clone(),
        tokens: Some(tokens),
    });
    api.devices.attach(response.metadata_mut(), &user_id);
    Ok(response)
}

/// Login: a new session for the right email and password, within the login throttle.
pub(super) async fn login(
    api: &AuthApi,
    request: Request<pb::LoginRequest>,
) -> Result<Response<pb::LoginResponse>, Status> {
    let address = client_address(&request, &api.settings.trusted_proxies);
    let presented = api.devices.presented(&request);
    let request = request.into_inner();
    let mut violations = FieldViolations::default();
    // Bounded before anything else: no lookup, no throttle count, no hash of megabytes.
    let password = violations.take("password", PresentedPassword::parse(request.password));
    let email = violations.take("email", Email::parse(&request.email));
    violations.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::internal(anyhow::anyhow!("parsed fields missing")).into());
    };
    let account = api
        .store
        .account_by_email(&email)
        .await
        .map_err(ApiError::from)?;
    // A device token counts only for the account it was issued to.
    let known = presented.filter(|d| account.as_ref().is_some_and(|a| a.id == d.user_id));
    let attempt = match &known {
        Some(device) => Attempt::KnownDevice(&device.nonce),
        None => Attempt::Unknown {
            email: &email,
            address: address.as_deref(),
        },
    };
    // Counted as a failure until the password matches.
    let reservation = api.throttle.admit(attempt).await?;
    let matches = api
        .hasher
        .verify(
            password.into_inner(),
            account.as_ref().map(|a| a.password_hash.clone()),
        )
        .await
        .map_err(ApiError::from)?;
    let Some(account) = account.filter(|_| matches) else {
        // The same answer whether the email exists or not.
        return Err(ApiError::Unauthenticated("wrong email or password".into()).into());
    };
    api.throttle.succeeded(reservation).await;
    let session_id = uuid::Uuid::now_v7().to_string();
    let (refresh, record) = api.new_refresh();
    api.store
        .open_session(&account.id, &session_id, &record)
        .await
        .map_err(ApiError::from)?;
    let tokens = api
        .tokens(&account.id, &session_id, &account.roles, refresh, &record)
        .await?;
    let mut response = Response::new(pb::LoginResponse {
        user_id: account.id.clone(),
        tokens: Some(tokens),
    });
    api.devices.attach(response.metadata_mut(), &account.id);
    Ok(response)
}
