//! A PostgreSQL and a Redis of the test's own that accept only TLS, with certificates from a CA
//! made for the test. The machine's shared servers are never touched. Both are stopped when
//! dropped.
//!
//! Missing `initdb`/`pg_ctl` or `redis-server` fails the test under `CI=true` and skips it,
//! loudly, otherwise.

use std::{
    net::TcpListener,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A CA's certificate, and a server certificate for `127.0.0.1` and `localhost` it signed; PEM
/// files in a temporary directory.
pub struct Certificates {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Certificates {
    /// A new CA named `ca_name`, and a server certificate it signed.
    pub fn generate(ca_name: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, ca_name);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("a CA key"))
            .expect("the CA certificate");
        let server_key = KeyPair::generate().expect("a server key");
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server parameters")
            .signed_by(&server_key, &ca)
            .expect("the server certificate");
        let certificates = Self {
            ca_file: dir.path().join("ca.pem"),
            cert_file: dir.path().join("server.pem"),
            key_file: dir.path().join("server.key"),
            _dir: dir,
        };
        std::fs::write(&certificates.ca_file, ca.pem()).expect("CA written");
        std::fs::write(&certificates.cert_file, server.pem()).expect("certificate written");
        std::fs::write(&certificates.key_file, server_key.serialize_pem()).expect("key written");
        certificates
    }
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Fails under CI, otherwise says loudly that the test is skipped.
fn missing(what: &str) {
    assert!(!ci(), "CI=true and {what} is not installed");
    eprintln!("SKIPPED: {what} is not installed; set CI=true to make this a failure");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

async fn wait_for_port(port: u16, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A PostgreSQL cluster whose `pg_hba.conf` has `hostssl` lines only, on a free port.
pub struct TlsPostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// PostgreSQL refuses to run as root; a root test runs it as the `postgres` user.
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

impl TlsPostgres {
    /// Starts a cluster serving `certificates`' server certificate; `None` (skip) when
    /// PostgreSQL is not installed outside CI.
    pub fn start(certificates: &Certificates) -> Option<Self> {
        let Some(bin) = postgres_bin() else {
            missing("PostgreSQL (initdb and pg_ctl, /usr/lib/postgresql/*/bin)");
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = dir.path().join("data");
        let as_postgres = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let port = free_port();
        let cert = dir.path().join("server.pem");
        let key = dir.path().join("server.key");
        std::fs::copy(&certificates.cert_file, &cert).expect("certificate copied");
        std::fs::copy(&certificates.key_file, &key).expect("key copied");
        set_mode(&key, 0o600);
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()));
        }
        let server = Self {
            bin,
            data,
            port,
            as_postgres,
            _dir: dir,
        };
        run(server
            .command("initdb")
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&server.data));
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{dir}'\n\
             ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\nfsync = off\n",
            dir = server._dir.path().display(),
            cert = cert.display(),
            key = key.display(),
        );
        append(&server.data.join("postgresql.conf"), &conf);
        // TLS or nothing: no `host` or `local` line.
        std::fs::write(
            server.data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("pg_hba.conf written");
        run(server
            .command("pg_ctl")
            .args(["-w", "-t", "30", "-l"])
            .arg(server._dir.path().join("log"))
            .arg("-D")
            .arg(&server.data)
            .arg("start"));
        Some(server)
    }

    /// A URL of its `postgres` database with `query` (`sslmode=...`, or empty).
    pub fn url(&self, query: &str) -> String {
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres{query}",
            self.port
        )
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`, else the directory of the
/// `initdb` on `PATH`.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}

/// A `redis-server` that listens with TLS only (`--port 0`) on a free port.
pub struct TlsRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    /// Starts it with `certificates`' server certificate; `None` (skip) when `redis-server` is
    /// not installed outside CI.
    pub async fn start(certificates: &Certificates) -> Option<Self> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let spawned = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(&certificates.cert_file)
            .arg("--tls-key-file")
            .arg(&certificates.key_file)
            .arg("--tls-ca-cert-file")
            .arg(&certificates.ca_file)
            .args(["--tls-auth-clients", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = spawned else {
            missing("redis-server");
            return None;
        };
        let redis = Self {
            child,
            port,
            _dir: dir,
        };
        wait_for_port(port, "the TLS redis-server").await;
        Some(redis)
    }

    /// Its TLS port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?} could not run: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn append(file: &Path, text: &str) {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(file)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("configuration appended");
}

fn set_mode(file: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
