//! Inventory over mTLS, on real sockets: which clients the server lets in, what a SERVICE-only
//! method wants in `certificate` mode, and certificates rotated on disk without a restart.
//! Each test makes its own CAs and certificates, and runs inventory on SQLite in a temporary
//! directory (no shared database or Redis).

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use agora_contracts::agora::inventory::v1::{
    self as pb, inventory_service_client::InventoryServiceClient,
};
use agora_platform::config::{Config, ServiceKind};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, date_time_ymd,
};
use tonic::{
    Code, Status,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

/// A certificate authority of the test.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key.
#[derive(Clone)]
struct Leaf {
    cert: String,
    key: String,
    der: Vec<u8>,
}

/// When a certificate is valid.
enum Validity {
    Now,
    Expired,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("a CA certificate");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `localhost` naming `spiffe_id`, for servers and clients alike.
    fn issue(&self, spiffe_id: &str, serial: u64, validity: Validity) -> Leaf {
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, spiffe_id);
        params
            .subject_alt_names
            .push(SanType::URI(spiffe_id.try_into().expect("an IA5 URI")));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.serial_number = Some(serial.into());
        let (not_before, not_after) = match validity {
            Validity::Now => (date_time_ymd(2020, 1, 1), date_time_ymd(2100, 1, 1)),
            Validity::Expired => (date_time_ymd(2020, 1, 1), date_time_ymd(2021, 1, 1)),
        };
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.issuer).expect("a certificate");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

const INVENTORY: &str = "spiffe://agora/service/inventory";
const ORDER: &str = "spiffe://agora/service/order";
const GATEWAY: &str = "spiffe://agora/edge/gateway";

/// Writes `leaf` and the CA where the `mtls` settings of `prefix` point.
fn write_files(dir: &Path, prefix: &str, leaf: &Leaf, ca: &Ca) {
    // Written beside and renamed, as the kubelet swaps a Secret's files.
    let write = |name: &str, contents: &str| {
        let staged = dir.join(format!(".{prefix}.{name}.new"));
        std::fs::write(&staged, contents).expect("written");
        std::fs::rename(&staged, dir.join(format!("{prefix}.{name}"))).expect("renamed");
    };
    write("key", &leaf.key);
    write("crt", &leaf.cert);
    write("ca", &ca.pem);
}

/// The `mtls` settings of files written by [`write_files`].
fn mtls_config(dir: &Path, prefix: &str, mode: &str) -> Config {
    let path = |name: &str| dir.join(format!("{prefix}.{name}")).display().to_string();
    Config::from_figment(Default::default())
        .expect("defaults are valid")
        .with("mtls.enabled", true)
        .and_then(|c| c.with("mtls.cert_file", path("crt")))
        .and_then(|c| c.with("mtls.key_file", path("key")))
        .and_then(|c| c.with("mtls.ca_file", path("ca")))
        .and_then(|c| c.with("mtls.reload_interval", "50ms"))
        .and_then(|c| c.with("mtls.service_access", mode))
        .expect("valid settings")
}

/// Inventory serving over mTLS with `server`'s certificate, SERVICE methods as `mode` says.
async fn spawn_inventory(dir: &Path, server: &Leaf, ca: &Ca, mode: &str) -> SocketAddr {
    spawn_inventory_with(dir, server, ca, mtls_config(dir, "server", mode)).await
}

/// [`spawn_inventory`] with more settings in `config` (its `mtls` files are `server`'s).
async fn spawn_inventory_with(dir: &Path, server: &Leaf, ca: &Ca, config: Config) -> SocketAddr {
    write_files(dir, "server", server, ca);
    let config = config
        .with("data_dir", dir.join("data").display().to_string())
        .and_then(|c| c.with("events.prefix", format!("mtls-{}:", uuid::Uuid::now_v7())))
        // No auth service: certificates are the credentials here.
        .and_then(|c| c.with("services.auth.url", "http://127.0.0.1:1"))
        .expect("valid settings");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        if let Err(error) = agora_inventory::SERVICE
            .serve(&config, listener, std::future::pending())
            .await
        {
            panic!("inventory stopped: {error:#}");
        }
    });
    addr
}

/// A client with tonic's own TLS: the server checked against `ca` as `localhost`, presenting
/// `identity` when given.
fn client(addr: SocketAddr, ca: &Ca, identity: Option<&Leaf>) -> InventoryServiceClient<Channel> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.pem))
        .domain_name("localhost");
    if let Some(leaf) = identity {
        tls = tls.identity(Identity::from_pem(&leaf.cert, &leaf.key));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .expect("a valid URL")
        .tls_config(tls)
        .expect("a valid TLS config")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    InventoryServiceClient::new(channel)
}

/// Reserves a unit of a product inventory has never heard of.
async fn reserve(client: &mut InventoryServiceClient<Channel>) -> Status {
    let request = pb::ReserveRequest {
        order_id: uuid::Uuid::now_v7().to_string(),
        lines: vec![pb::ReservationLine {
            product_id: uuid::Uuid::now_v7().to_string(),
            quantity: 1,
        }],
        ttl: None,
    };
    match client.reserve(request).await {
        Ok(_) => Status::ok("reserved"),
        Err(status) => status,
    }
}

/// Whether the call reached the service's handler (its answer is about the unknown product).
fn reached_the_handler(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Ok | Code::NotFound | Code::FailedPrecondition | Code::InvalidArgument
    )
}

/// Waits until a call with `identity` reaches inventory's handler (it has started).
async fn until_serving(addr: SocketAddr, ca: &Ca, identity: &Leaf) {
    let mut client = client(addr, ca, Some(identity));
    for _ in 0..200 {
        let status = reserve(&mut client).await;
        if reached_the_handler(&status) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("inventory never served a valid client");
}

#[tokio::test]
async fn clients_without_a_certificate_from_another_ca_or_expired_are_refused() {
    let dir = tempfile::tempdir().expect("a directory");
    let ca = Ca::new("agora test CA");
    let server = ca.issue(INVENTORY, 1, Validity::Now);
    let order = ca.issue(ORDER, 2, Validity::Now);
    let addr = spawn_inventory(dir.path(), &server, &ca, "certificate").await;
    until_serving(addr, &ca, &order).await;

    let stranger = Ca::new("someone else's CA").issue(ORDER, 3, Validity::Now);
    let expired = ca.issue(ORDER, 4, Validity::Expired);
    // The server's TLS alert reaches the client as the cause of a transport error.
    for (who, identity, alert) in [
        ("no certificate", None, "CertificateRequired"),
        ("another CA's certificate", Some(&stranger), "UnknownCA"),
        (
            "an expired certificate",
            Some(&expired),
            "CertificateExpired",
        ),
    ] {
        let status = reserve(&mut client(addr, &ca, identity)).await;
        assert!(
            !reached_the_handler(&status),
            "{who} was let in: {status:?}"
        );
        assert!(
            format!("{status:?}").contains(alert),
            "{who}: expected the alert {alert}: {status:?}"
        );
    }

    let status = reserve(&mut client(addr, &ca, Some(&order))).await;
    assert!(reached_the_handler(&status), "{status:?}");
}

#[tokio::test]
async fn a_service_only_method_wants_a_service_certificate_in_certificate_mode() {
    let dir = tempfile::tempdir().expect("a directory");
    let ca = Ca::new("agora test CA");
    let server = ca.issue(INVENTORY, 1, Validity::Now);
    let order = ca.issue(ORDER, 2, Validity::Now);
    let addr = spawn_inventory(dir.path(), &server, &ca, "certificate").await;
    until_serving(addr, &ca, &order).await;

    let edge = ca.issue(GATEWAY, 3, Validity::Now);
    let status = reserve(&mut client(addr, &ca, Some(&edge))).await;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    let status = reserve(&mut client(addr, &ca, Some(&order))).await;
    assert!(reached_the_handler(&status), "{status:?}");
}

#[tokio::test]
async fn in_token_mode_a_service_certificate_alone_is_not_enough() {
    let dir = tempfile::tempdir().expect("a directory");
    let ca = Ca::new("agora test CA");
    let server = ca.issue(INVENTORY, 1, Validity::Now);
    let order = ca.issue(ORDER, 2, Validity::Now);
    let addr = spawn_inventory(dir.path(), &server, &ca, "token").await;
    let mut client = client(addr, &ca, Some(&order));
    let mut status = reserve(&mut client).await;
    for _ in 0..200 {
        if status.code() != Code::Unavailable {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = reserve(&mut client).await;
    }
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

/// The certificate the server at `addr` presents to a new connection.
async fn presented_certificate(addr: SocketAddr, ca: &Ca, identity: &Leaf) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject as _};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).expect("a PEM CA"))
        .expect("a CA");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        #[allow(deprecated)]
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![CertificateDer::from_pem_slice(identity.cert.as_bytes()).expect("a PEM cert")],
        PrivateKeyDer::from_pem_slice(identity.key.as_bytes()).expect("a PEM key"),
    )
    .expect("a client config");
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connected");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("a name"), tcp)
        .await
        .expect("a TLS session");
    tls.get_ref().1.peer_certificates().expect("the server's")[0].to_vec()
}

#[tokio::test]
async fn a_rotated_server_certificate_is_presented_without_a_restart() {
    let dir = tempfile::tempdir().expect("a directory");
    let ca = Ca::new("agora test CA");
    let first = ca.issue(INVENTORY, 10, Validity::Now);
    let order = ca.issue(ORDER, 2, Validity::Now);
    let addr = spawn_inventory(dir.path(), &first, &ca, "certificate").await;
    until_serving(addr, &ca, &order).await;
    assert_eq!(presented_certificate(addr, &ca, &order).await, first.der);

    let second = ca.issue(INVENTORY, 11, Validity::Now);
    write_files(dir.path(), "server", &second, &ca);
    let mut presented = Vec::new();
    for _ in 0..100 {
        presented = presented_certificate(addr, &ca, &order).await;
        if presented == second.der {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        presented, second.der,
        "the new certificate (serial 11) is presented"
    );
    let status = reserve(&mut client(addr, &ca, Some(&order))).await;
    assert!(reached_the_handler(&status), "{status:?}");
}

#[tokio::test]
async fn a_platform_channel_picks_up_its_rotated_certificate_without_a_restart() {
    let dir = tempfile::tempdir().expect("a directory");
    let ca = Ca::new("agora test CA");
    let server = ca.issue(INVENTORY, 1, Validity::Now);
    let order = ca.issue(ORDER, 2, Validity::Now);
    let addr = spawn_inventory(dir.path(), &server, &ca, "certificate").await;
    until_serving(addr, &ca, &order).await;

    // The caller starts with the edge's certificate, then is handed a service's.
    write_files(
        dir.path(),
        "caller",
        &ca.issue(GATEWAY, 3, Validity::Now),
        &ca,
    );
    let caller = mtls_config(dir.path(), "caller", "token")
        .with("services.inventory.url", format!("http://{addr}"))
        .expect("valid settings");
    let channel = agora_platform::client::service_channel(&caller.settings, ServiceKind::Inventory)
        .expect("a channel");
    let mut client = InventoryServiceClient::new(channel);
    let status = reserve(&mut client).await;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    write_files(dir.path(), "caller", &order, &ca);
    let mut status = reserve(&mut client).await;
    for _ in 0..100 {
        if reached_the_handler(&status) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = reserve(&mut client).await;
    }
    assert!(reached_the_handler(&status), "{status:?}");
}

#[tokio::test]
async fn a_platform_channel_refuses_a_server_naming_another_service() {
    let dir = tempfile::tempdir().expect("a directory");
    let ca = Ca::new("agora test CA");
    let impostor = ca.issue("spiffe://agora/service/product", 1, Validity::Now);
    let order = ca.issue(ORDER, 2, Validity::Now);
    let addr = spawn_inventory(dir.path(), &impostor, &ca, "certificate").await;
    until_serving(addr, &ca, &order).await;

    write_files(dir.path(), "caller", &order, &ca);
    let caller = mtls_config(dir.path(), "caller", "token")
        .with("services.inventory.url", format!("http://{addr}"))
        .expect("valid settings");
    let channel = agora_platform::client::service_channel(&caller.settings, ServiceKind::Inventory)
        .expect("a channel");
    let status = reserve(&mut InventoryServiceClient::new(channel)).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(!reached_the_handler(&status));
}

#[tokio::test]
async fn the_health_port_answers_probes_without_a_certificate_and_serves_nothing_else() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let dir = tempfile::tempdir().expect("a directory");
    let ca = Ca::new("agora test CA");
    let server = ca.issue(INVENTORY, 1, Validity::Now);
    let order = ca.issue(ORDER, 2, Validity::Now);
    let health_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = mtls_config(dir.path(), "server", "certificate")
        .with("mtls.health_port", health_port)
        .expect("valid settings");
    let addr = spawn_inventory_with(dir.path(), &server, &ca, config).await;
    until_serving(addr, &ca, &order).await;

    // A plaintext probe, as the kubelet's, with no certificate: health answers SERVING.
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{health_port}"))
        .expect("a valid URL")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    let status = HealthClient::new(plain.clone())
        .check(HealthCheckRequest {
            service: "agora.inventory.v1.InventoryService".into(),
        })
        .await
        .expect("the health port answers without a certificate")
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
    // The inventory's own methods are not there: only health is served in plaintext.
    let refused = reserve(&mut InventoryServiceClient::new(plain)).await;
    assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");
    // And the service port itself still wants a certificate.
    let status = reserve(&mut client(addr, &ca, None)).await;
    assert!(!reached_the_handler(&status), "{status:?}");
}
