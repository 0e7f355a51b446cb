//! What the user service's tests share: a mesh of auth and user, clients, and waiting for a
//! profile to be created from its registration event.

// `pub` is for the test modules of this binary, the widest reach these helpers have.
#![allow(unreachable_pub)]

use std::time::Duration;

use agora_contracts::agora::user::v1::{self as pb, user_service_client::UserServiceClient};
use agora_platform::config::ServiceKind;
#[allow(unused_imports)] // Not every test binary that shares this module reads statuses.
pub use agora_testkit::assertions::violated_fields;
use agora_testkit::{TestBackend, TestMesh, authed, email, eventually};
use tonic::{Code, Status, transport::Channel};

/// How long a registration may take to become a profile.
pub const PROFILE_DEADLINE: Duration = Duration::from_secs(10);

/// Auth and the user service on `backend`; `None` when the backend is unavailable outside CI.
pub async fn start(backend: TestBackend) -> Option<TestMesh> {
    let mut mesh = TestMesh::start(backend).await?;
    spawn_user(&mut mesh, &[]).await;
    Some(mesh)
}

/// Adds the user service, with extra settings, to `mesh`.
pub async fn spawn_user(mesh: &mut TestMesh, tweak: &[(&str, serde_json::Value)]) {
    mesh.spawn_with(
        ServiceKind::User,
        tweak,
        |config, listener, shutdown| async move {
            agora_user::SERVICE.serve(&config, listener, shutdown).await
        },
    )
    .await;
}

/// A client of the user service.
pub fn users(mesh: &TestMesh) -> UserServiceClient<Channel> {
    UserServiceClient::new(mesh.channel(ServiceKind::User))
}

/// The caller's profile, once its registration has been consumed.
pub async fn wait_for_profile(mesh: &TestMesh, token: &str) -> pb::Profile {
    let client = users(mesh);
    eventually("the profile is created", PROFILE_DEADLINE, || {
        let mut client = client.clone();
        async move {
            match client
                .get_my_profile(authed(pb::GetMyProfileRequest {}, token))
                .await
            {
                Ok(response) => response.into_inner().profile,
                Err(status) if status.code() == Code::NotFound => None,
                Err(status) => panic!("GetMyProfile failed: {status:?}"),
            }
        }
    })
    .await
}

/// A registered account whose profile exists: its id, access token and email.
pub struct Member {
    pub id: String,
    pub token: String,
    pub email: String,
}

/// Registers an account through auth and waits until its profile exists.
pub async fn member(mesh: &TestMesh, name: &str) -> Member {
    let email = email(name);
    let (id, token) = mesh.register(&email).await;
    let profile = wait_for_profile(mesh, &token).await;
    assert_eq!(profile.user_id, id);
    Member { id, token, email }
}

/// The caller's profile now.
pub async fn my_profile(mesh: &TestMesh, token: &str) -> pb::Profile {
    users(mesh)
        .get_my_profile(authed(pb::GetMyProfileRequest {}, token))
        .await
        .expect("GetMyProfile succeeds")
        .into_inner()
        .profile
        .expect("a profile")
}

/// Sends UpdateMyProfile.
pub async fn update(
    mesh: &TestMesh,
    token: &str,
    profile: pb::Profile,
    paths: &[&str],
) -> Result<pb::Profile, Status> {
    let update_mask = (!paths.is_empty()).then(|| prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    });
    let response = users(mesh)
        .update_my_profile(authed(
            pb::UpdateMyProfileRequest {
                profile: Some(profile),
                update_mask,
            },
            token,
        ))
        .await?;
    Ok(response.into_inner().profile.expect("a profile"))
}

/// A valid address.
pub fn address(label: &str, city: &str, country_code: &str) -> pb::Address {
    pb::Address {
        label: label.into(),
        recipient: "Ada Lovelace".into(),
        line1: "Main Street 1".into(),
        line2: String::new(),
        city: city.into(),
        region: String::new(),
        postal_code: "10117".into(),
        country_code: country_code.into(),
    }
}
