//! Until its store is ready, a service says NOT_SERVING and answers its methods with UNAVAILABLE;
//! when the store cannot be opened, it stops with an error instead of serving half a service.

use std::time::Duration;

use agora_contracts::agora::auth::v1 as pb;
use agora_platform::config::Config;
use figment::Figment;
use tokio::net::TcpListener;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_database_hangs_is_not_serving_and_then_fails() {
    // A "database" that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let silent_addr = silent.local_addr().expect("bound");
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });

    let config = Config::from_figment(Figment::new())
        .and_then(|c| {
            c.with(
                "services.auth.database_url",
                format!("postgres://postgres@{silent_addr}/agora"),
            )
        })
        .expect("valid settings");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("bound");
    let server = tokio::spawn(async move {
        agora_auth::SERVICE
            .serve(&config, listener, std::future::pending())
            .await
    });

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid URL")
        .connect_lazy();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "agora.auth.v1.AuthService".into(),
        })
        .await
        .expect("health answers while starting")
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::ServingStatus::NotServing as i32
    );

    let call = pb::auth_service_client::AuthServiceClient::new(channel)
        .get_jwks(pb::GetJwksRequest {})
        .await
        .expect_err("not ready");
    assert_eq!(call.code(), Code::Unavailable);

    let result = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("start-up gives up")
        .expect("joined");
    let error = result.expect_err("no database, no service");
    assert!(
        format!("{error:#}").contains("connecting to the Postgres database"),
        "{error:#}"
    );
    hold.abort();
}
