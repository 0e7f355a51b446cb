//! One running service of a [`TestMesh`](super::TestMesh): its address, channel, database and
//! task, and how it stops.

use std::{net::SocketAddr, time::Duration};

use crate::{ServeFn, Shutdown};
use agora_platform::{
    config::{Config, ServiceKind},
    testing::TestStore,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

pub(super) struct Running {
    pub(super) addr: SocketAddr,
    pub(super) channel: Channel,
    /// The service's own database; dropped (and, on PostgreSQL, deleted) with the mesh.
    pub(super) store: TestStore,
    pub(super) config: Config,
    pub(super) serve: ServeFn,
    pub(super) stop: Option<oneshot::Sender<()>>,
    pub(super) task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    pub(super) fn launch(&mut self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown: Shutdown = Box::pin(async move {
            let _ = stopped.await;
        });
        self.stop = Some(stop);
        self.task = Some(tokio::spawn((self.serve)(
            self.config.clone(),
            listener,
            shutdown,
        )));
    }

    pub(super) async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => panic!("the service failed: {error:#}"),
                Err(error) => panic!("the service task failed: {error}"),
            }
        }
    }

    pub(super) async fn wait_until_serving(&mut self, kind: ServiceKind) {
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        let mut health = HealthClient::new(self.channel.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(task) = self.task.take_if(|task| task.is_finished()) {
                match task.await {
                    Ok(Err(error)) => panic!("{} failed to start: {error:#}", kind.name()),
                    other => panic!("{} stopped while starting: {other:?}", kind.name()),
                }
            }
            let status = health
                .check(HealthCheckRequest {
                    service: kind.grpc_name().into(),
                })
                .await
                .map(|r| r.into_inner().status)
                .ok();
            if status == Some(tonic_health::ServingStatus::Serving as i32) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not become SERVING within 20 s",
                kind.name()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
