//! A Redis server of the test's own, for tests that stop it: the machine's shared server is
//! never touched.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A `redis-server` on a free port in a temporary directory; killed when dropped.
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
        let dir = tempfile::tempdir().expect("a temporary directory");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        let redis = Self {
            child: Some(child),
            port,
            _dir: dir,
        };
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
        redis
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
