//! Mutual TLS over real loopback sockets, with CAs and leaves generated on the fly by rcgen.

use std::io;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::{CertificateError, ClientConfig, ProtocolVersion, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

const HUB_A: &str = "hub-a.bunker.invalid";
const HUB_B: &str = "hub-b.bunker.invalid";
const ALPN: &[u8] = b"bunkeros-hub/1";

/// A site CA: what trustd is on a real appliance.
struct SiteCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    root: PinnedRoot,
}

/// A leaf issued by a [`SiteCa`], as PEM (for `openssl`) and as an [`Identity`].
struct Leaf {
    cert_pem: String,
    key_pem: String,
    identity: Identity,
}

impl SiteCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let root = PinnedRoot::from_pem(issuer.pem().as_bytes()).expect("pin CA");
        Self { issuer, root }
    }

    fn leaf(&self, dns_name: &str) -> Leaf {
        let mut params = CertificateParams::new(vec![dns_name.to_owned()]).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, dns_name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        let identity = Identity::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).expect("id");
        Leaf {
            cert_pem,
            key_pem,
            identity,
        }
    }
}

/// What the server side of a connection saw.
#[derive(Debug)]
struct ServerSaw {
    peer_leaf: Vec<u8>,
    version: Option<ProtocolVersion>,
    alpn: Option<Vec<u8>>,
    peer: Option<String>,
}

/// Accepts one TLS connection on loopback, exchanges ping/pong, reports what it saw.
async fn one_server(
    config: ServerConfig,
    peers: PeerRoots,
) -> (SocketAddr, tokio::task::JoinHandle<io::Result<ServerSaw>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let mut ping = [0u8; 4];
        tls.read_exact(&mut ping).await?;
        tls.write_all(b"pong").await?;
        tls.shutdown().await?;
        let (_, conn) = tls.get_ref();
        Ok(ServerSaw {
            peer_leaf: conn.peer_certificates().expect("client chain")[0].to_vec(),
            version: conn.protocol_version(),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            peer: peer_root_of(conn, &peers).map(str::to_owned),
        })
    });
    (addr, task)
}

/// Connects, sends ping, expects pong; returns the server leaf, version and ALPN it saw.
async fn client(
    addr: SocketAddr,
    config: ClientConfig,
    server_name: &'static str,
) -> io::Result<(Vec<u8>, Option<ProtocolVersion>, Option<Vec<u8>>)> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name).expect("server name");
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    tls.write_all(b"ping").await?;
    let mut pong = [0u8; 4];
    tls.read_exact(&mut pong).await?;
    assert_eq!(&pong, b"pong");
    let (_, conn) = tls.get_ref();
    Ok((
        conn.peer_certificates().expect("server chain")[0].to_vec(),
        conn.protocol_version(),
        conn.alpn_protocol().map(<[u8]>::to_vec),
    ))
}

/// The rustls error inside an I/O error from tokio-rustls.
fn rustls_error(err: &io::Error) -> &rustls::Error {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("not a TLS error: {err:?}"))
}

#[tokio::test]
async fn mutual_tls_succeeds_and_each_side_sees_the_other() {
    let (site_a, site_b, site_c) = (SiteCa::new("A"), SiteCa::new("B"), SiteCa::new("C"));
    let (hub_a, hub_b) = (site_a.leaf(HUB_A), site_b.leaf(HUB_B));
    let mut peers = PeerRoots::new();
    peers.insert("site-b", site_b.root.clone()).expect("pin B");
    peers.insert("site-c", site_c.root.clone()).expect("pin C");

    let mut server_cfg = server_config(&hub_a.identity, &peers.roots()).expect("server");
    server_cfg.alpn_protocols = vec![ALPN.to_vec()];
    let mut client_cfg = client_config(&hub_b.identity, &site_a.root).expect("client");
    client_cfg.alpn_protocols = vec![ALPN.to_vec()];

    let (addr, server) = one_server(server_cfg, peers).await;
    let (server_leaf, version, alpn) = client(addr, client_cfg, HUB_A).await.expect("client");
    let saw = server.await.expect("server task").expect("server");

    assert_eq!(
        server_leaf,
        hub_a.identity.leaf().to_vec(),
        "client sees hub A"
    );
    assert_eq!(
        saw.peer_leaf,
        hub_b.identity.leaf().to_vec(),
        "server sees hub B"
    );
    assert_eq!(version, Some(ProtocolVersion::TLSv1_3));
    assert_eq!(saw.version, Some(ProtocolVersion::TLSv1_3));
    assert_eq!(alpn.as_deref(), Some(ALPN));
    assert_eq!(saw.alpn.as_deref(), Some(ALPN));
    assert_eq!(
        saw.peer.as_deref(),
        Some("site-b"),
        "attributed to its pinned root"
    );
}

#[tokio::test]
async fn a_client_certificate_from_a_foreign_ca_is_rejected() {
    let (site_a, site_b, foreign) = (SiteCa::new("A"), SiteCa::new("B"), SiteCa::new("X"));
    let server_cfg = server_config(
        &site_a.leaf(HUB_A).identity,
        std::slice::from_ref(&site_b.root),
    )
    .expect("srv");
    let intruder = foreign.leaf(HUB_B);
    let client_cfg = client_config(&intruder.identity, &site_a.root).expect("client");

    let (addr, server) = one_server(server_cfg, PeerRoots::new()).await;
    let client_result = client(addr, client_cfg, HUB_A).await;
    let err = server.await.expect("server task").expect_err("refused");
    assert!(
        matches!(
            rustls_error(&err),
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{err:?}"
    );
    assert!(client_result.is_err(), "the client learns it was refused");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_rejected() {
    let (site_a, site_b) = (SiteCa::new("A"), SiteCa::new("B"));
    let server_cfg = server_config(
        &site_a.leaf(HUB_A).identity,
        std::slice::from_ref(&site_b.root),
    )
    .expect("srv");
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        root_store(std::slice::from_ref(&site_a.root)).expect("roots"),
        provider(),
    )
    .build()
    .expect("verifier");
    let anonymous = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(TLS13_ONLY)
        .expect("TLS 1.3")
        .with_webpki_verifier(verifier)
        .with_no_client_auth();

    let (addr, server) = one_server(server_cfg, PeerRoots::new()).await;
    let client_result = client(addr, anonymous, HUB_A).await;
    let err = server.await.expect("server task").expect_err("refused");
    assert!(
        matches!(rustls_error(&err), rustls::Error::NoCertificatesPresented),
        "{err:?}"
    );
    assert!(client_result.is_err());
}

#[tokio::test]
async fn a_server_from_a_foreign_ca_is_rejected_by_the_client() {
    let (site_a, site_b, foreign) = (SiteCa::new("A"), SiteCa::new("B"), SiteCa::new("X"));
    let impostor = foreign.leaf(HUB_A);
    let server_cfg =
        server_config(&impostor.identity, std::slice::from_ref(&site_b.root)).expect("srv");
    let client_cfg = client_config(&site_b.leaf(HUB_B).identity, &site_a.root).expect("client");

    let (addr, server) = one_server(server_cfg, PeerRoots::new()).await;
    let err = client(addr, client_cfg, HUB_A).await.expect_err("refused");
    assert!(
        matches!(
            rustls_error(&err),
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{err:?}"
    );
    assert!(server.await.expect("server task").is_err());
}

#[tokio::test]
async fn a_server_certificate_for_another_name_is_rejected() {
    let (site_a, site_b) = (SiteCa::new("A"), SiteCa::new("B"));
    let server_cfg = server_config(
        &site_a.leaf(HUB_A).identity,
        std::slice::from_ref(&site_b.root),
    )
    .expect("srv");
    let client_cfg = client_config(&site_b.leaf(HUB_B).identity, &site_a.root).expect("client");

    let (addr, _server) = one_server(server_cfg, PeerRoots::new()).await;
    let err = client(addr, client_cfg, "hub-z.bunker.invalid")
        .await
        .expect_err("wrong name");
    assert!(
        matches!(
            rustls_error(&err),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
        ),
        "{err:?}"
    );
}

/// The versions listed in a ClientHello's `supported_versions` extension (type 43).
fn offered_versions(record: &[u8]) -> Vec<u16> {
    let u16_at = |b: &[u8], i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    assert_eq!(record[0], 22, "a handshake record");
    let hello = &record[5..];
    assert_eq!(hello[0], 1, "a ClientHello");
    // type(1) length(3) legacy_version(2) random(32), then session id, suites, compression.
    let mut at = 4 + 2 + 32;
    at += 1 + usize::from(hello[at]);
    at += 2 + usize::from(u16_at(hello, at));
    at += 1 + usize::from(hello[at]);
    let end = at + 2 + usize::from(u16_at(hello, at));
    at += 2;
    while at < end {
        let (kind, len) = (u16_at(hello, at), usize::from(u16_at(hello, at + 2)));
        let body = &hello[at + 4..at + 4 + len];
        if kind == 43 {
            return body[1..].chunks(2).map(|v| u16_at(v, 0)).collect();
        }
        at += 4 + len;
    }
    panic!("no supported_versions extension");
}

#[test]
fn the_client_offers_tls13_only() {
    let site = SiteCa::new("A");
    let config = client_config(&site.leaf(HUB_B).identity, &site.root).expect("client");
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from(HUB_A).expect("name"))
            .expect("client connection");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("ClientHello");
    assert_eq!(
        offered_versions(&hello),
        [0x0304],
        "TLS 1.3 and nothing else"
    );
}

/// Accepts one connection, completes the handshake and closes cleanly; reports the version.
async fn handshake_only_server(
    config: ServerConfig,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<io::Result<Option<ProtocolVersion>>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let version = tls.get_ref().1.protocol_version();
        // close_notify, so openssl sees a clean end rather than a truncated stream. It may
        // have closed first; that is not this test's concern.
        let _ = tls.shutdown().await;
        Ok(version)
    });
    (addr, task)
}

/// PEM files for `openssl s_client`, in a directory removed on drop.
struct OpensslClient {
    dir: tempfile::TempDir,
}

impl OpensslClient {
    fn new(leaf: &Leaf, ca: &SiteCa) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in [
            ("cert.pem", leaf.cert_pem.clone()),
            ("key.pem", leaf.key_pem.clone()),
            ("ca.pem", ca.issuer.pem()),
        ] {
            std::fs::write(dir.path().join(name), text).expect("write PEM");
        }
        Self { dir }
    }

    /// Connects to `addr` with the given version flag; `Err` carries openssl's output.
    fn connect(&self, addr: SocketAddr, version_flag: &str) -> Result<(), String> {
        let file = |name: &str| self.dir.path().join(name);
        let output = Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string(), version_flag])
            .args(["-servername", HUB_A, "-verify_return_error"])
            .arg("-CAfile")
            .arg(file("ca.pem"))
            .arg("-cert")
            .arg(file("cert.pem"))
            .arg("-key")
            .arg(file("key.pem"))
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn the_server_refuses_a_tls12_client_and_accepts_the_same_client_over_tls13() {
    if !openssl_available() {
        println!("note: openssl is not on PATH; skipped the TLS 1.2 refusal check");
        return;
    }
    let (site_a, site_b) = (SiteCa::new("A"), SiteCa::new("B"));
    let server_cfg = server_config(
        &site_a.leaf(HUB_A).identity,
        std::slice::from_ref(&site_b.root),
    )
    .expect("server");
    let openssl = Arc::new(OpensslClient::new(&site_b.leaf(HUB_B), &site_a));

    for (flag, accepted) in [("-tls1_3", true), ("-tls1_2", false)] {
        let (addr, server) = handshake_only_server(server_cfg.clone()).await;
        let client = Arc::clone(&openssl);
        let connected = tokio::task::spawn_blocking(move || client.connect(addr, flag))
            .await
            .expect("openssl task");
        let served = server.await.expect("server task");
        assert_eq!(
            connected.is_ok(),
            accepted,
            "openssl s_client {flag}: {connected:?}"
        );
        match served {
            Ok(version) => {
                assert!(accepted, "{flag} must be refused");
                assert_eq!(version, Some(ProtocolVersion::TLSv1_3));
            }
            Err(err) => {
                assert!(!accepted, "{flag} must be accepted: {err:?}");
                assert!(
                    matches!(rustls_error(&err), rustls::Error::PeerIncompatible(_)),
                    "{err:?}"
                );
            }
        }
    }
}

#[test]
fn the_fingerprint_matches_openssl() {
    let site = SiteCa::new("A");
    let shown = site.root.fingerprint().to_string();
    assert_eq!(shown.len(), 32 * 3 - 1);
    if !openssl_available() {
        println!("note: openssl is not on PATH; skipped the fingerprint cross-check");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, site.issuer.pem()).expect("write PEM");
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&pem)
        .output()
        .expect("run openssl");
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let from_openssl = text.trim().rsplit('=').next().expect("fingerprint");
    assert_eq!(shown, from_openssl);
}

#[test]
fn a_pinned_root_is_exactly_one_certificate() {
    let (a, b) = (SiteCa::new("A"), SiteCa::new("B"));
    let two = format!("{}{}", a.issuer.pem(), b.issuer.pem());
    assert!(matches!(
        PinnedRoot::from_pem(two.as_bytes()),
        Err(TlsError::RootCount(2))
    ));
    assert!(matches!(
        PinnedRoot::from_pem(b"no PEM here"),
        Err(TlsError::RootCount(0))
    ));
    let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n";
    assert!(matches!(
        PinnedRoot::from_pem(broken.as_bytes()),
        Err(TlsError::Pem { .. })
    ));
}

#[test]
fn an_identity_refuses_a_key_that_is_not_the_certificates() {
    let site = SiteCa::new("A");
    let (mine, other) = (site.leaf(HUB_A), site.leaf(HUB_B));
    let err = Identity::from_pem(mine.cert_pem.as_bytes(), other.key_pem.as_bytes())
        .expect_err("mismatched key");
    assert!(matches!(err, TlsError::KeyMismatch), "{err:?}");
    assert!(matches!(
        Identity::from_pem(b"", mine.key_pem.as_bytes()),
        Err(TlsError::EmptyChain)
    ));
    assert!(matches!(
        Identity::from_pem(mine.cert_pem.as_bytes(), b"not a key"),
        Err(TlsError::Pem { .. })
    ));
    // A plugged-in key (what a TPM key would be) goes through the same check.
    let key = Arc::clone(other.identity.key());
    assert!(matches!(
        Identity::new(mine.identity.chain().to_vec(), key),
        Err(TlsError::KeyMismatch)
    ));
}

#[test]
fn an_identity_never_prints_its_key() {
    let site = SiteCa::new("A");
    let leaf = site.leaf(HUB_A);
    let shown = format!("{:?}", leaf.identity);
    assert!(
        shown.starts_with("Identity { chain_len: 1, key_algorithm: ECDSA"),
        "{shown}"
    );
    let key_body: String = leaf
        .key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!shown.contains(&key_body[..16]));
}

#[test]
fn peer_roots_attribute_a_chain_to_exactly_one_peer() {
    let (site_a, site_b, foreign) = (SiteCa::new("A"), SiteCa::new("B"), SiteCa::new("X"));
    let mut peers = PeerRoots::new();
    peers.insert("site-a", site_a.root.clone()).expect("pin A");
    peers.insert("site-b", site_b.root.clone()).expect("pin B");
    assert_eq!(peers.len(), 2);

    let chain_b = site_b.leaf(HUB_B).identity.chain().to_vec();
    assert_eq!(peers.root_of(&chain_b), Some("site-b"));
    assert_eq!(peers.root_of(foreign.leaf(HUB_B).identity.chain()), None);
    assert_eq!(peers.root_of(&[]), None);

    let err = peers
        .insert("site-b-again", site_b.root.clone())
        .expect_err("one root, one peer");
    assert!(matches!(err, TlsError::DuplicateRoot { ref existing, .. } if existing == "site-b"));
    // Re-pinning the same peer (root rotation) is allowed.
    peers
        .insert("site-b", foreign.root.clone())
        .expect("rotate B");
    assert_eq!(peers.root_of(&chain_b), None);
    assert_eq!(peers.remove("site-b"), Some(foreign.root.clone()));
    assert!(peers.get("site-b").is_none());
}

#[test]
fn a_server_needs_client_roots() {
    let site = SiteCa::new("A");
    assert!(matches!(
        server_config(&site.leaf(HUB_A).identity, &[]),
        Err(TlsError::NoClientRoots)
    ));
}
