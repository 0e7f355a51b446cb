//! Past the concurrency limit, calls are shed at once with UNAVAILABLE (clients retry those)
//! instead of queueing into timeouts; calls within the limit are served.

use crate::common::{TestAuth, email};
use agora_contracts::agora::auth::v1 as pb;
use agora_platform::testing::TestBackend;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_concurrency_limit_are_shed_with_unavailable() {
    let tweak = [("server.concurrency_limit", serde_json::json!(1))];
    let Some(auth) = TestAuth::spawn_with(TestBackend::Embedded, &tweak).await else {
        return;
    };
    // Each registration hashes a password for several milliseconds; ten at once exceed a
    // limit of one.
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let mut client = auth.client();
            tokio::spawn(async move {
                client
                    .register(pb::RegisterRequest {
                        email: email(&format!("burst{i}")),
                        password: "correct horse 7".into(),
                    })
                    .await
                    .map(|_| ())
                    .map_err(|status| status.code())
            })
        })
        .collect();
    let mut served = 0;
    let mut shed = 0;
    for call in calls {
        match call.await.expect("joined") {
            Ok(()) => served += 1,
            Err(Code::Unavailable) => shed += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(served >= 1, "calls within the limit are served");
    assert!(shed >= 1, "calls past the limit are shed ({served} served)");
}
