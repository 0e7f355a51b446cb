//! Profiles come from auth's `UserRegistered` events: exactly once, never overwriting later
//! changes, caught up after a restart; a profile not created yet is NOT_FOUND; poison events go
//! to the dead-letter stream and other event types are ignored.

use std::time::Duration;

use crate::common::{member, my_profile, spawn_user, start, update, users, wait_for_profile};
use agora_contracts::agora::{
    events::v1::{EventEnvelope, UserRegistered},
    user::v1 as pb,
};
use agora_platform::{config::ServiceKind, events::Bus};
use agora_testkit::{
    PrivateRedis, TestBackend, TestMesh, authed, email, eventually, on_both_backends,
};
use prost::{Message as _, Name as _};
use sqlx::Row as _;
use tonic::Code;

on_both_backends!(
    a_redelivered_registration_creates_one_profile_and_keeps_later_changes,
    a_profile_not_created_yet_is_not_found_until_its_registration_arrives,
    registrations_made_while_the_service_is_down_are_applied_after_a_restart,
    poison_events_are_dead_lettered_and_other_event_types_ignored,
    registrations_keep_becoming_profiles_after_redis_restarts_empty,
);

/// The registration event auth published for `user_id`.
async fn registration_of(mesh: &TestMesh, user_id: &str) -> EventEnvelope {
    let bus = mesh.bus().await;
    eventually(
        "auth publishes the registration",
        Duration::from_secs(10),
        || {
            let bus = bus.clone();
            async move {
                bus.events("auth")
                    .await
                    .expect("the auth stream reads")
                    .into_iter()
                    .find(|event| event.aggregate_id == user_id)
            }
        },
    )
    .await
}

/// A registration event for an account auth never saw, to follow others through the stream.
fn made_up_registration(user_id: &str, email: &str) -> EventEnvelope {
    let event = UserRegistered {
        user_id: user_id.into(),
        email: email.into(),
        register_time: Some(std::time::SystemTime::now().into()),
    };
    EventEnvelope {
        id: uuid::Uuid::now_v7().to_string(),
        r#type: UserRegistered::full_name(),
        occur_time: Some(std::time::SystemTime::now().into()),
        producer: "auth".into(),
        aggregate_id: user_id.into(),
        traceparent: String::new(),
        payload: Some(prost_types::Any {
            type_url: UserRegistered::type_url(),
            value: event.encode_to_vec(),
        }),
    }
}

/// Publishes a made-up registration and waits until the user service applied it: since one
/// consumer handles the stream in order, everything published before it was handled too.
async fn publish_and_wait_for_a_sentinel(mesh: &TestMesh, bus: &Bus) {
    let sentinel = uuid::Uuid::now_v7().to_string();
    bus.publish(&made_up_registration(&sentinel, &email("sentinel")))
        .await
        .expect("published");
    let admin = mesh.admin_token().await;
    let client = users(mesh);
    eventually("the sentinel is applied", Duration::from_secs(10), || {
        let (mut client, admin, sentinel) = (client.clone(), admin.clone(), sentinel.clone());
        async move {
            client
                .get_user(authed(pb::GetUserRequest { user_id: sentinel }, &admin))
                .await
                .ok()
        }
    })
    .await;
}

async fn a_redelivered_registration_creates_one_profile_and_keeps_later_changes(
    backend: TestBackend,
) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let ada = member(&mesh, "ada").await;
    let changed = update(
        &mesh,
        &ada.token,
        pb::Profile {
            display_name: "Ada".into(),
            ..pb::Profile::default()
        },
        &[],
    )
    .await
    .expect("ada names herself");

    let original = registration_of(&mesh, &ada.id).await;
    let bus = mesh.bus().await;
    // The same event again (a relay that crashed before marking it sent), and a second event
    // for the same account with another id and email (a confused producer).
    bus.publish(&original).await.expect("published");
    let mut forged = made_up_registration(&ada.id, "mallory@example.com");
    forged.aggregate_id = ada.id.clone();
    bus.publish(&forged).await.expect("published");
    publish_and_wait_for_a_sentinel(&mesh, &bus).await;

    assert_eq!(
        my_profile(&mesh, &ada.token).await,
        changed,
        "nothing was overwritten"
    );
    let db = mesh.database(ServiceKind::User).await;
    let profiles = sqlx::query("SELECT COUNT(*) AS n FROM profiles WHERE user_id = $1")
        .bind(&ada.id)
        .fetch_one(db.pool())
        .await
        .expect("counted")
        .try_get::<i64, _>("n")
        .expect("a count");
    assert_eq!(profiles, 1);
    let remembered = sqlx::query("SELECT COUNT(*) AS n FROM processed_events WHERE event_id = $1")
        .bind(&original.id)
        .fetch_one(db.pool())
        .await
        .expect("counted")
        .try_get::<i64, _>("n")
        .expect("a count");
    assert_eq!(remembered, 1, "the event id is remembered once");
    assert!(
        bus.dead_letters("auth").await.expect("read").is_empty(),
        "duplicates are not failures"
    );
}

async fn a_profile_not_created_yet_is_not_found_until_its_registration_arrives(
    backend: TestBackend,
) {
    let Some(mut mesh) = TestMesh::start(backend).await else {
        return;
    };
    // The user service listens on a bus of its own, so auth's events reach it only when the
    // test forwards them.
    let detached = format!("{}detached:", mesh.prefix());
    spawn_user(&mut mesh, &[("events.prefix", detached.clone().into())]).await;
    let (id, token) = mesh.register(&email("early")).await;
    let original = registration_of(&mesh, &id).await;

    let mut client = users(&mesh);
    let status = client
        .get_my_profile(authed(pb::GetMyProfileRequest {}, &token))
        .await
        .expect_err("no profile yet");
    assert_eq!(status.code(), Code::NotFound);
    let status = update(
        &mesh,
        &token,
        pb::Profile {
            display_name: "Early".into(),
            ..pb::Profile::default()
        },
        &[],
    )
    .await
    .expect_err("no profile yet");
    assert_eq!(status.code(), Code::NotFound);

    let bus = match mesh.redis_url() {
        Some(url) => Bus::redis(&url, detached).await.expect("the test Redis"),
        None => Bus::memory(detached),
    };
    bus.publish(&original).await.expect("forwarded");
    let profile = wait_for_profile(&mesh, &token).await;
    assert_eq!(profile.user_id, id);
}

async fn registrations_made_while_the_service_is_down_are_applied_after_a_restart(
    backend: TestBackend,
) {
    let Some(mut mesh) = start(backend).await else {
        return;
    };
    let ada = member(&mesh, "ada").await;
    mesh.stop(ServiceKind::User).await;
    let (bob_id, bob_token) = mesh.register(&email("bob")).await;
    registration_of(&mesh, &bob_id).await;
    mesh.restart(ServiceKind::User).await;

    let bob = wait_for_profile(&mesh, &bob_token).await;
    assert_eq!(bob.user_id, bob_id);
    assert_eq!(my_profile(&mesh, &ada.token).await.user_id, ada.id, "kept");
}

async fn poison_events_are_dead_lettered_and_other_event_types_ignored(backend: TestBackend) {
    let Some(mesh) = start(backend).await else {
        return;
    };
    let bus = mesh.bus().await;
    let mut undecodable = made_up_registration(&uuid::Uuid::now_v7().to_string(), "x@y.example");
    if let Some(payload) = undecodable.payload.as_mut() {
        payload.value = vec![0xff, 0xff, 0xff];
    }
    let not_a_uuid = made_up_registration("not-a-uuid", "x@y.example");
    let mut other_type = made_up_registration(&uuid::Uuid::now_v7().to_string(), "z@y.example");
    other_type.r#type = "agora.events.v1.SomethingElse".into();
    for event in [&undecodable, &not_a_uuid, &other_type] {
        bus.publish(event).await.expect("published");
    }
    publish_and_wait_for_a_sentinel(&mesh, &bus).await;

    let dead: Vec<(String, String)> = bus
        .dead_letters("auth")
        .await
        .expect("read")
        .into_iter()
        .map(|letter| (letter.event_id, letter.group))
        .collect();
    assert_eq!(
        dead,
        [
            (undecodable.id.clone(), "user".to_owned()),
            (not_a_uuid.id.clone(), "user".to_owned())
        ]
    );
    let admin = mesh.admin_token().await;
    let status = users(&mesh)
        .get_user(authed(
            pb::GetUserRequest {
                user_id: other_type.aggregate_id.clone(),
            },
            &admin,
        ))
        .await
        .expect_err("an event of another type creates nothing");
    assert_eq!(status.code(), Code::NotFound);
}

async fn registrations_keep_becoming_profiles_after_redis_restarts_empty(backend: TestBackend) {
    // A Redis of this test's own: the shared one is never restarted.
    let mut redis = PrivateRedis::start().await;
    let Some(mut mesh) = TestMesh::start_on_redis(backend, redis.url()).await else {
        return;
    };
    spawn_user(&mut mesh, &[]).await;
    let before = member(&mesh, "before").await;

    redis.restart_empty().await;

    // Neither service restarts: the user service's consumer recreates its group, and the
    // registration made now still becomes a profile.
    let after = member(&mesh, "after").await;
    assert_ne!(after.id, before.id);
    assert_eq!(my_profile(&mesh, &before.token).await.user_id, before.id);
    let db = mesh.database(ServiceKind::User).await;
    for member in [&before, &after] {
        let profiles = sqlx::query("SELECT COUNT(*) AS n FROM profiles WHERE user_id = $1")
            .bind(&member.id)
            .fetch_one(db.pool())
            .await
            .expect("counted")
            .try_get::<i64, _>("n")
            .expect("a count");
        assert_eq!(
            profiles, 1,
            "a replayed registration makes no second profile"
        );
    }
}
