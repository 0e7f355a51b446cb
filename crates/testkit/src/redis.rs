//! A Redis server of the test's own, for tests that stop it: the machine's shared server is
//! never touched.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A `redis-server` on a free port in a temporary directory; killed when dropped.
#[derive(Debug)]
pub struct PrivateRedis {
    child: Option<Child>,
    port: u16,
    /// Holds the working directory until the server is gone.
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    /// Starts `redis-server` (from `PATH`) and waits until it answers.
    ///
    /// # Panics
    /// When `redis-server` is missing or does not answer within 10 s.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Self {
            child: None,
            port,
            _dir: tempfile::tempdir().expect("a temporary directory"),
        };
        redis.launch().await;
        redis
    }

    /// Kills the server and starts it again on the same port, empty (it keeps nothing on
    /// disk): a restart without persistence.
    ///
    /// # Panics
    /// When it does not answer again within 10 s.
    pub async fn restart_empty(&mut self) {
        self.stop();
        self.launch().await;
    }

    async fn launch(&mut self) {
        let port = self.port;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self._dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the private redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server and waits until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
