//! TLS to the datastores, on a PostgreSQL and a Redis of the test's own that accept only TLS:
//! a service verifies them with the CA bundle of `datastore_tls.ca_file`, and a connection
//! without TLS, or one that meets a certificate from another CA, fails saying why.

// `pub` in `servers` is for this module, the widest reach those helpers have.
#![allow(unreachable_pub)]

mod servers;

use std::time::Duration;

use agora_contracts::agora::auth::v1::{self as pb, auth_service_client::AuthServiceClient};
use agora_platform::{
    cache::Cache,
    config::{Config, ServiceKind},
    datastore_tls::DatastoreTls,
    events::Bus,
    storage::Database,
};
use figment::Figment;
use servers::{Certificates, TlsPostgres, TlsRedis};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::transport::Channel;

/// Settings of a service on `postgres` and `redis`, trusting `ca_file` for both.
fn config(postgres: &str, redis_port: u16, ca_file: &std::path::Path) -> Config {
    let prefix = format!("test:{}:", uuid_like());
    Config::from_figment(Figment::new())
        .and_then(|c| c.with("services.auth.database_url", postgres))
        .and_then(|c| c.with("redis_url", format!("rediss://127.0.0.1:{redis_port}")))
        .and_then(|c| c.with("datastore_tls.ca_file", ca_file))
        .and_then(|c| c.with("auth.cache_prefix", &prefix))
        .and_then(|c| c.with("events.prefix", format!("{prefix}events:")))
        .and_then(|c| c.with("auth.max_concurrent_hashes", 2))
        .and_then(|c| c.with("log.filter", "warn"))
        .expect("test settings are valid")
}

/// Unique enough for key prefixes on a server of this test's own.
fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos())
}

async fn wait_until_serving(channel: &Channel) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = tonic_health::pb::health_client::HealthClient::new(channel.clone())
            .check(tonic_health::pb::HealthCheckRequest {
                service: "agora.auth.v1.AuthService".into(),
            })
            .await
            .map(|response| response.into_inner().status);
        if status.is_ok_and(|status| status == tonic_health::ServingStatus::Serving as i32) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "auth did not start serving"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_runs_on_a_tls_only_postgres_and_redis_verified_with_the_ca_bundle() {
    let certificates = Certificates::generate("Agora test datastore CA");
    let Some(postgres) = TlsPostgres::start(&certificates) else {
        return;
    };
    let Some(redis) = TlsRedis::start(&certificates).await else {
        return;
    };
    // No sslmode in the URL: the CA bundle makes it verify-full with the bundle as sslrootcert.
    let config = config(&postgres.url(""), redis.port(), &certificates.ca_file);
    assert!(
        config
            .settings
            .database_url(ServiceKind::Auth)
            .contains("sslmode=verify-full"),
        "a named CA means a verified server"
    );

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = config.clone();
    let server = tokio::spawn(async move {
        agora_auth::SERVICE
            .serve(&serving, listener, async {
                let _ = stopped.await;
            })
            .await
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid URL")
        .connect_lazy();
    wait_until_serving(&channel).await;

    // A registration writes the database and counts in Redis; a login reads both.
    let mut auth = AuthServiceClient::new(channel);
    auth.register(pb::RegisterRequest {
        email: "tls@agora.test".into(),
        password: "correct horse 7".into(),
    })
    .await
    .expect("registered over TLS");
    auth.login(pb::LoginRequest {
        email: "tls@agora.test".into(),
        password: "correct horse 7".into(),
    })
    .await
    .expect("signed in over TLS");

    // The relay publishes the registration to the bus, on the same TLS Redis.
    let bus = Bus::connect(&config.settings)
        .await
        .expect("the bus connects with the CA bundle");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while bus
        .events("auth")
        .await
        .expect("the stream reads")
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the registration was never published"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let _ = stop.send(());
    server.await.expect("joined").expect("auth stopped cleanly");
}

#[tokio::test]
async fn a_plaintext_connection_to_a_tls_only_postgres_fails_naming_sslmode() {
    let certificates = Certificates::generate("Agora test datastore CA");
    let Some(postgres) = TlsPostgres::start(&certificates) else {
        return;
    };

    let error = Database::connect(&postgres.url("sslmode=disable"))
        .await
        .expect_err("pg_hba.conf has hostssl lines only");

    let message = format!("{error:#}");
    assert!(
        message.contains("accepts only TLS connections") && message.contains("sslmode=verify-full"),
        "{message}"
    );
}

#[tokio::test]
async fn a_postgres_certificate_from_another_ca_is_refused() {
    let certificates = Certificates::generate("Agora test datastore CA");
    let Some(postgres) = TlsPostgres::start(&certificates) else {
        return;
    };
    let stranger = Certificates::generate("Another CA");
    let tls = DatastoreTls {
        ca_file: Some(stranger.ca_file.clone()),
    };

    let error = Database::connect(&tls.postgres_url(&postgres.url("")))
        .await
        .expect_err("signed by a CA the client does not trust");

    let message = format!("{error:#}");
    assert!(
        message.contains("TLS handshake failed") && message.contains("sslrootcert"),
        "{message}"
    );
}

#[tokio::test]
async fn a_plaintext_connection_to_a_tls_only_redis_fails_naming_rediss() {
    let certificates = Certificates::generate("Agora test datastore CA");
    let Some(redis) = TlsRedis::start(&certificates).await else {
        return;
    };

    let error = Cache::redis(&format!("redis://127.0.0.1:{}", redis.port()), "test:")
        .await
        .expect_err("the server speaks TLS only");

    let message = format!("{error:#}");
    assert!(message.contains("use a rediss:// URL"), "{message}");
}

#[tokio::test]
async fn a_redis_certificate_from_another_ca_is_refused_naming_the_setting() {
    let certificates = Certificates::generate("Agora test datastore CA");
    let Some(redis) = TlsRedis::start(&certificates).await else {
        return;
    };
    let stranger = Certificates::generate("Another CA");
    let config = config("sqlite::memory:", redis.port(), &stranger.ca_file);

    let error = Cache::from_settings(&config.settings, "test:")
        .await
        .expect_err("signed by a CA the client does not trust");

    let message = format!("{error:#}");
    assert!(
        message.contains("not trusted") && message.contains("datastore_tls.ca_file"),
        "{message}"
    );
}

#[tokio::test]
async fn without_a_ca_bundle_a_privately_signed_redis_is_refused() {
    let certificates = Certificates::generate("Agora test datastore CA");
    let Some(redis) = TlsRedis::start(&certificates).await else {
        return;
    };

    // The bundled public roots do not vouch for the test's CA: no silent trust in anything.
    let error = Cache::redis(&format!("rediss://127.0.0.1:{}", redis.port()), "test:")
        .await
        .expect_err("the certificate is not publicly trusted");

    assert!(format!("{error:#}").contains("not trusted"), "{error:#}");
}
