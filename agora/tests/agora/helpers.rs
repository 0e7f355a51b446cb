//! What several areas share: the binary under test, the services it runs and free ports.

/// The `agora` binary cargo built for these tests.
pub(crate) const AGORA: &str = env!("CARGO_BIN_EXE_agora");

/// Every service, by the name `agora serve` takes.
pub(crate) const SERVICES: [&str; 5] = ["auth", "user", "product", "inventory", "order"];

/// A loopback port free at the time of the call, for a child process to bind.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
