//! Accounts: Register and Login, where passwords are checked and the login throttle and the
//! registration budget are spent.

use agora_contracts::agora::auth::v1 as pb;
use tonic::{Request, Response, Status};

use super::{AuthApi, address::client_address};
use crate::{
    device::Device,
    error::ServiceError,
    metrics::{Login, metrics},
    throttle::Attempt,
    wire::{Credentials, NewAccount},
};

/// Register: a new account with its first session, signed in at once on this device.
pub(super) async fn register(
    api: &AuthApi,
    request: Request<pb::RegisterRequest>,
) -> Result<Response<pb::RegisterResponse>, Status> {
    let address = client_address(&request, &api.settings.trusted_proxies);
    let account = NewAccount::try_from(request.into_inner())?;
    let (user_id, tokens) = open_account(api, account, address.as_deref()).await?;
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
    let credentials = Credentials::try_from(request.into_inner())?;
    let signed_in = sign_in(api, credentials, presented, address.as_deref()).await;
    metrics().login(match &signed_in {
        Ok(_) => Login::Succeeded,
        Err(ServiceError::Throttled(_)) => Login::Throttled,
        Err(_) => Login::Failed,
    });
    let (user_id, tokens) = signed_in?;
    let mut response = Response::new(pb::LoginResponse {
        user_id: user_id.clone(),
        tokens: Some(tokens),
    });
    api.devices.attach(response.metadata_mut(), &user_id);
    Ok(response)
}

/// Creates the account and its first session, within the registration budget of `address`:
/// the new user's id and tokens.
async fn open_account(
    api: &AuthApi,
    account: NewAccount,
    address: Option<&str>,
) -> Result<(String, pb::Tokens), ServiceError> {
    api.registrations.spend(address).await?;
    let hash = api
        .hasher
        .hash(account.password.expose().to_owned())
        .await?;
    let user_id = uuid::Uuid::now_v7().to_string();
    let session_id = uuid::Uuid::now_v7().to_string();
    let (refresh, record) = api.new_refresh();
    api.store
        .register(&user_id, &account.email, &hash, &[], &session_id, &record)
        .await?;
    tracing::info!(user_id, "registered");
    let tokens = api
        .tokens(&user_id, &session_id, &[], refresh, &record)
        .await?;
    Ok((user_id, tokens))
}

/// Opens a session when the password matches, within the login throttle of the `presented`
/// device or of an unknown one at `address`: the user's id and tokens.
async fn sign_in(
    api: &AuthApi,
    credentials: Credentials,
    presented: Option<Device>,
    address: Option<&str>,
) -> Result<(String, pb::Tokens), ServiceError> {
    let Credentials { email, password } = credentials;
    let account = api.store.account_by_email(&email).await?;
    // A device token counts only for the account it was issued to.
    let known = presented.filter(|d| account.as_ref().is_some_and(|a| a.id == d.user_id));
    let attempt = match &known {
        Some(device) => Attempt::KnownDevice(&device.nonce),
        None => Attempt::Unknown {
            email: &email,
            address,
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
        .await?;
    let Some(account) = account.filter(|_| matches) else {
        // The same answer whether the email exists or not.
        return Err(ServiceError::WrongCredentials);
    };
    api.throttle.succeeded(reservation).await;
    let session_id = uuid::Uuid::now_v7().to_string();
    let (refresh, record) = api.new_refresh();
    api.store
        .open_session(&account.id, &session_id, &record)
        .await?;
    let tokens = api
        .tokens(&account.id, &session_id, &account.roles, refresh, &record)
        .await?;
    Ok((account.id, tokens))
}
