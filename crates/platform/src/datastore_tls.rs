//! TLS to the datastores: PostgreSQL (`sslmode` and `sslrootcert` in the database URL) and
//! Redis (`rediss://`), both over rustls.
//!
//! One setting, `datastore_tls.ca_file`, names a PEM bundle of the CAs a deployment trusts for
//! its datastores. For Redis it is the whole trust of every `rediss://` connection. For
//! PostgreSQL it fills in what a URL leaves out: `sslrootcert` (sqlx trusts it beside the
//! bundled roots) and `sslmode=verify-full`, because a deployment that names its CA means the
//! servers to be verified. Without it, the bundled Mozilla roots (webpki-roots) are trusted,
//! which suits managed servers with public certificates.
//!
//! A refused connection says why when it can: a plaintext attempt at a server that accepts only
//! TLS, or a certificate the client does not trust.

use std::{
    path::{Path, PathBuf},
    sync::Once,
};

use anyhow::Context as _;
use rustls::pki_types::{CertificateDer, pem::PemObject as _};
use serde::Deserialize;

/// How services verify their datastores' certificates (`[datastore_tls]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatastoreTls {
    /// A PEM bundle of the CAs that sign the datastores' certificates: the only roots of
    /// `rediss://`, and the default `sslrootcert` (with `sslmode=verify-full`) of PostgreSQL URLs.
    pub ca_file: Option<PathBuf>,
}

static CRYPTO: Once = Once::new();

/// redis' rustls client takes the process-wide crypto provider, which rustls cannot choose by
/// itself once more than one is compiled in; ring is the one sqlx uses. A provider installed
/// earlier (by another part of the process) is kept.
fn install_crypto_provider() {
    CRYPTO.call_once(|| {
        // Deprecated for lacking post-quantum key exchange, which only the aws-lc-rs provider
        // (a C build) offers; sqlx 0.8 uses ring for PostgreSQL anyway.
        #[allow(deprecated)]
        let ring = rustls::crypto::ring::default_provider();
        let _ = ring.install_default();
    });
}

impl DatastoreTls {
    /// `url` with this CA bundle as its `sslrootcert` and `sslmode=verify-full`, each only when
    /// the URL names none; other URLs (SQLite) and settings without a bundle leave it as it is.
    pub fn postgres_url(&self, url: &str) -> String {
        let Some(ca_file) = &self.ca_file else {
            return url.to_owned();
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return url.to_owned();
        }
        let query = url.split_once('?').map_or("", |(_, query)| query);
        let names = |keys: &[&str]| {
            query
                .split('&')
                .filter_map(|pair| pair.split('=').next())
                .any(|key| keys.contains(&key))
        };
        let mut added = Vec::new();
        if !names(&["sslrootcert", "ssl-root-cert", "ssl-ca"]) {
            added.push(format!("sslrootcert={}", percent_encode(ca_file)));
        }
        if !names(&["sslmode", "ssl-mode"]) {
            added.push("sslmode=verify-full".to_owned());
        }
        if added.is_empty() {
            return url.to_owned();
        }
        let separator = match url.split_once('?') {
            None => "?",
            Some((_, "")) => "",
            Some(_) => "&",
        };
        format!("{url}{separator}{}", added.join("&"))
    }

    /// A Redis client for `url`; a `rediss://` one trusts only the CA bundle when one is set.
    ///
    /// # Errors
    /// A malformed URL, or a CA bundle that cannot be read or holds no certificate.
    pub fn redis_client(&self, url: &str) -> anyhow::Result<redis::Client> {
        install_crypto_provider();
        match &self.ca_file {
            Some(ca_file) if url.starts_with("rediss://") => {
                let root_cert = read_ca_bundle(ca_file)?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                redis::Client::build_with_tls(url, certificates).context("parsing REDIS_URL")
            }
            _ => redis::Client::open(url).context("parsing REDIS_URL"),
        }
    }
}

/// The bundle's bytes, once it is known to hold at least one certificate.
fn read_ca_bundle(path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path).with_context(|| {
        format!(
            "reading datastore_tls.ca_file ({}), the CA bundle of the datastores",
            path.display()
        )
    })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("datastore_tls.ca_file ({}) is not PEM", path.display()))?;
    anyhow::ensure!(
        !certificates.is_empty(),
        "datastore_tls.ca_file ({}) holds no certificate",
        path.display()
    );
    Ok(pem)
}

/// What a PostgreSQL connection error most likely means, when it is about TLS.
pub(crate) fn postgres_hint(error: &sqlx::Error) -> Option<&'static str> {
    match error {
        // PostgreSQL 12 and later end a refusal by pg_hba.conf with "no encryption" when the
        // client did not ask for TLS and only `hostssl` lines would have matched.
        sqlx::Error::Database(db) if db.message().contains("no encryption") => Some(
            "the server accepts only TLS connections: connect with sslmode=verify-full (and its \
             CA in sslrootcert or datastore_tls.ca_file)",
        ),
        sqlx::Error::Tls(tls) if tls.to_string().contains("does not support TLS") => Some(
            "the server does not offer TLS, but the URL's sslmode requires it: turn on ssl in \
             postgresql.conf",
        ),
        // A refused certificate comes back from the handshake as an I/O error around rustls'.
        sqlx::Error::Tls(_) => Some(HANDSHAKE_FAILED),
        sqlx::Error::Io(io)
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
        {
            Some(HANDSHAKE_FAILED)
        }
        _ => None,
    }
}

const HANDSHAKE_FAILED: &str = "the TLS handshake failed: the server's certificate must be \
    signed by a CA in sslrootcert (or datastore_tls.ca_file) and, with sslmode=verify-full, name \
    the URL's host";

/// What a failed first connection to Redis most likely means, when it may be about TLS.
pub(crate) fn redis_hint(client: &redis::Client, error: &redis::RedisError) -> &'static str {
    match client.get_connection_info().addr {
        redis::ConnectionAddr::TcpTls { .. } => {
            let message = error.to_string();
            if message.contains("certificate") || message.contains("Certificate") {
                "Redis's TLS certificate is not trusted: name the CA that signed it in \
                 datastore_tls.ca_file, and connect to a host the certificate names"
            } else {
                "a rediss:// URL needs a server that speaks TLS on that port"
            }
        }
        // A TLS-only server resets a plaintext connection; a stopped one refuses it. Both look
        // alike from here, so the hint is conditional.
        _ => {
            "if the server accepts only TLS, use a rediss:// URL (and its CA in \
             datastore_tls.ca_file)"
        }
    }
}

/// Escapes a path for a URL's query, where sqlx decodes `%XX` and reads `+` as a space.
fn percent_encode(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ca(path: &str) -> DatastoreTls {
        DatastoreTls {
            ca_file: Some(PathBuf::from(path)),
        }
    }

    #[test]
    fn a_postgres_url_without_tls_parameters_gets_the_ca_and_verify_full() {
        let url = with_ca("/etc/agora/ca.pem").postgres_url("postgres://agora@db:5432/auth");
        assert_eq!(
            url,
            "postgres://agora@db:5432/auth?sslrootcert=/etc/agora/ca.pem&sslmode=verify-full"
        );
    }

    #[test]
    fn what_the_url_names_wins_over_the_setting() {
        let tls = with_ca("/etc/agora/ca.pem");
        let url = "postgres://db/auth?sslmode=require&application_name=auth";
        assert_eq!(
            tls.postgres_url(url),
            format!("{url}&sslrootcert=/etc/agora/ca.pem")
        );
        let url = "postgresql://db/auth?sslrootcert=/other.pem&sslmode=verify-ca";
        assert_eq!(tls.postgres_url(url), url);
    }

    #[test]
    fn without_a_ca_bundle_or_for_sqlite_the_url_is_left_alone() {
        let url = "postgres://db/auth";
        assert_eq!(DatastoreTls::default().postgres_url(url), url);
        let url = "sqlite://.agora/auth.db?mode=rwc";
        assert_eq!(with_ca("/ca.pem").postgres_url(url), url);
    }

    #[test]
    fn a_ca_path_is_escaped_for_the_query() {
        let url = with_ca("/etc/my certs/ca+1&2.pem").postgres_url("postgres://db/auth?");
        assert_eq!(
            url,
            "postgres://db/auth?sslrootcert=/etc/my%20certs/ca%2B1%262.pem&sslmode=verify-full"
        );
    }

    #[test]
    fn a_missing_ca_bundle_names_the_setting() {
        let error = with_ca("/nonexistent/ca.pem")
            .redis_client("rediss://cache:6380")
            .expect_err("no such file");
        assert!(
            format!("{error:#}").contains("datastore_tls.ca_file"),
            "{error:#}"
        );
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "not a certificate\n").expect("written");
        let tls = DatastoreTls {
            ca_file: Some(file),
        };
        let error = tls
            .redis_client("rediss://cache:6380")
            .expect_err("no certificate");
        assert!(
            format!("{error:#}").contains("holds no certificate"),
            "{error:#}"
        );
    }
}
