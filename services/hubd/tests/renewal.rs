//! Live renewal of a hub certificate from a real trustd (its CA key in a software TPM): the hub
//! takes a new key and certificate while it runs, and nothing it carries notices.
//!
//! ```text
//!   paris-1 (FR, PEM) ──── geneva-1 (CH, trustd) ──── lisbon-1 (PT, PEM, started later)
//! ```
//!
//! Geneva reaches Paris's `echo`, Paris reaches Geneva's `echo-ch`. Shown, after SIGHUP
//! (`systemctl reload hubd`, the same path as the scheduled renewal two thirds into the
//! certificate's life):
//!
//! - the certificate is renewed: a new serial in Hub1 `Status`, on the endpoint (a probe's
//!   handshake sees it), `hubd_certificate_renewals_total{result="ok"}` counts it;
//! - the link to Paris stays up (neither side counts a new link) and a session streaming through
//!   it goes on without a failover;
//! - new sessions work both ways: Paris checks Geneva's receipt against the chain of Geneva's
//!   re-originated advertisement;
//! - Lisbon, started afterwards, links up against the new certificate;
//! - with trustd stopped, renewal fails, is retried after the backoff and counted, Status says
//!   why, and the hub keeps running with its links and sessions.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appliance::dbus::Bus;
use appliance::dbus::contracts::Hub1Proxy;
use appliance::testtrustd::Trustd;
use common::network::echo_service;
use common::{CONVERGE, Hub, Site, free_tcp};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use x509_parser::prelude::{FromDer, X509Certificate};

const OK: &str = "hubd_certificate_renewals_total{result=\"ok\"}";
const FAILED: &str = "hubd_certificate_renewals_total{result=\"failed\"}";

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_renews_its_certificate_without_dropping_links_or_sessions() {
    let (paris_site, lisbon_site) = (Site::new("paris"), Site::new("lisbon"));
    let mut geneva = Hub::new("geneva-1", "CH", &Site::new("unused")).await;
    let mut paris = Hub::new("paris-1", "FR", &paris_site).await;
    let mut lisbon = Hub::new("lisbon-1", "PT", &lisbon_site).await;
    let (mut trustd, geneva_root) = Trustd::start(geneva.bus.address(), "").await;
    geneva.certificate_from_trustd();
    geneva.peer_with_grant(
        &paris,
        "FR",
        &paris_site.root_pem,
        "services = [\"echo-ch\"]",
    );
    geneva.peer_with(&lisbon, "PT", &lisbon_site.root_pem, false);
    paris.peer_with_grant(&geneva, "CH", &geneva_root, "services = [\"echo\"]");
    lisbon.peer_with(&geneva, "CH", &geneva_root, false);
    let (to_paris, to_geneva) = (free_tcp(), free_tcp());
    paris.configure(&format!(
        "[[service]]\nname = \"echo\"\npublish = \"{}\"\n\
         [[service]]\nname = \"echo-ch\"\nhub = \"geneva-1\"\nlisten = \"{to_geneva}\"\n",
        echo_service().await
    ));
    geneva.configure(&format!(
        "[[service]]\nname = \"echo-ch\"\npublish = \"{}\"\n\
         [[service]]\nname = \"echo\"\nhub = \"paris-1\"\nlisten = \"{to_paris}\"\n",
        echo_service().await
    ));
    geneva.start();
    paris.start();
    // Geneva is ready once trustd has issued its first certificate (it asks every 10 s until
    // then; a loaded machine's swtpm can make that slow).
    let deadline = Instant::now() + Duration::from_secs(120);
    while geneva
        .metric("hubd_certificate_not_after_seconds")
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "geneva has no certificate from trustd after 2 minutes:\n{}",
            geneva.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for hub in [&geneva, &paris] {
        hub.wait_for("hubd_links_up", "the geneva-paris link up", |n| n >= 1.0)
            .await;
    }
    assert_eq!(geneva.metric(OK), Some(0.0));
    assert_eq!(geneva.metric(FAILED), Some(0.0));
    let first_serial = serial_in_status(&geneva).await;
    let first_leaf = presented_leaf(geneva.link_address).await;
    assert_eq!(
        serial_of(&first_leaf),
        first_serial,
        "the endpoint presents it"
    );
    let first_not_after = geneva.metric("hubd_certificate_not_after_seconds").unwrap();
    assert!(first_not_after > unix_now() + 86_400.0, "{first_not_after}");

    // A session streams through the link the whole time.
    let stream = connect(to_paris, &geneva).await;
    let streaming = Streaming::start(stream);
    streaming.advances().await;
    let links_at = |hub: &Hub| hub.metric("hubd_links_established_total").unwrap();
    let (geneva_links, paris_links) = (links_at(&geneva), links_at(&paris));
    let sessions = geneva.metric("hubd_sessions_started_total").unwrap();
    let paris_accepted = paris.metric("hubd_advertisements_accepted_total").unwrap();

    // Renew now.
    hangup(&geneva);
    geneva
        .wait_for(OK, "the certificate renewed", |n| n == 1.0)
        .await;
    let second_serial = serial_in_status(&geneva).await;
    assert_ne!(second_serial, first_serial);
    let second_leaf = presented_leaf(geneva.link_address).await;
    assert_ne!(second_leaf, first_leaf);
    assert_eq!(
        serial_of(&second_leaf),
        second_serial,
        "new handshakes see the new certificate"
    );
    assert!(geneva.metric("hubd_certificate_not_after_seconds").unwrap() >= first_not_after);
    assert!(geneva.log().contains("renewed the hub identity"));
    // Paris gets Geneva's advertisement with the new chain.
    paris
        .wait_for(
            "hubd_advertisements_accepted_total",
            "paris accepts geneva's re-originated advertisement",
            |n| n > paris_accepted,
        )
        .await;

    // Nothing that was up noticed.
    streaming.advances().await;
    assert_eq!(links_at(&geneva), geneva_links, "no new link at geneva");
    assert_eq!(links_at(&paris), paris_links, "no new link at paris");
    assert_eq!(paris.metric("hubd_links_up"), Some(1.0));
    assert_eq!(
        geneva.metric("hubd_sessions_started_total"),
        Some(sessions),
        "no new session"
    );
    assert_eq!(geneva.metric("hubd_session_failovers_total"), Some(0.0));

    // New sessions, both ways: Geneva presents its new certificate end to end, and Paris checks
    // Geneva's receipt against the new chain it now holds.
    drop(connect(to_paris, &geneva).await);
    drop(connect(to_geneva, &paris).await);
    assert_eq!(
        paris.metric("hubd_circuit_open_failures_total{reason=\"receipts\"}"),
        None,
        "{}",
        paris.log()
    );

    // A hub that links up now sees the new certificate (and would refuse a wrong one).
    lisbon.start();
    lisbon
        .wait_for("hubd_links_up", "lisbon links to geneva", |n| n == 1.0)
        .await;
    geneva
        .wait_for("hubd_links_up", "geneva has both links", |n| n == 2.0)
        .await;
    assert_eq!(links_at(&paris), paris_links);

    // trustd gone: renewal fails, is retried after the backoff (5 s ± 25 %) and counted; the
    // hub keeps its certificate, its links and its session.
    trustd.stop();
    hangup(&geneva);
    geneva
        .wait_for(FAILED, "renewal failed and retried", |n| n >= 2.0)
        .await;
    assert_eq!(geneva.metric(OK), Some(1.0));
    assert!(
        geneva.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "geneva keeps running"
    );
    let status = status_of(&geneva).await;
    let error = status["certificate"]["renewal_error"].as_str().unwrap();
    assert!(error.contains("trustd"), "{error}");
    assert_eq!(serial_in_status(&geneva).await, second_serial);
    assert_eq!(
        serial_of(&presented_leaf(geneva.link_address).await),
        second_serial
    );
    let log = geneva.log();
    assert!(
        log.matches("cannot renew the hub identity").count() >= 2,
        "a warning each attempt:\n{log}"
    );
    assert!(log.contains("asking again in"), "{log}");
    assert!(
        log.contains("transit offered; certificate renewal failing: "),
        "the status line says so:\n{log}"
    );
    // (Links and sessions are only required to be there: nothing changed at Geneva, so a link
    // lost meanwhile to a machine overloaded by parallel tests is not the renewal's doing.)
    streaming.advances().await;
    geneva
        .wait_for("hubd_links_up", "geneva keeps both links", |n| n == 2.0)
        .await;

    let mut stream = streaming.stop().await;
    stream.shutdown().await.unwrap();
    assert_eq!(geneva.stop(), Some(0));
    assert_eq!(paris.stop(), Some(0));
    assert_eq!(lisbon.stop(), Some(0));
}

/// Sends SIGHUP to `hub`'s daemon.
fn hangup(hub: &Hub) {
    let pid = hub.child.as_ref().expect("running").id();
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

async fn status_of(hub: &Hub) -> serde_json::Value {
    let bus = Bus::Address(hub.bus.address().to_owned());
    let connection = appliance::dbus::connect(&bus).await.unwrap();
    let hub1 = Hub1Proxy::new(&connection).await.unwrap();
    serde_json::from_str(&hub1.status().await.unwrap()).unwrap()
}

/// The serial of the certificate `hub` says it uses (Hub1 `Status`: `trustd (serial …)`),
/// as hex without leading zeros.
async fn serial_in_status(hub: &Hub) -> String {
    let status = status_of(hub).await;
    let source = status["certificate"]["source"].as_str().unwrap().to_owned();
    let serial = source
        .strip_prefix("trustd (serial ")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not from trustd: {source}"));
    serial.trim_start_matches('0').to_lowercase()
}

/// The serial of a DER certificate, as hex without leading zeros.
fn serial_of(der: &[u8]) -> String {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let hex: String = cert
        .raw_serial()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    hex.trim_start_matches('0').to_owned()
}

/// The hub certificate a link handshake with `address` is shown (the probe has no certificate
/// of its own, so the hub then refuses it: nothing else changes there).
async fn presented_leaf(address: SocketAddr) -> Vec<u8> {
    let provider = appliance::tls::provider();
    let seen = Arc::new(Mutex::new(None));
    let verifier = Capture {
        seen: Arc::clone(&seen),
        provider: Arc::clone(&provider),
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"bunkeros-hub/1".to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let connecting = endpoint.connect_with(config, address, "geneva-1").unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), connecting).await;
    endpoint.close(0u32.into(), b"probe done");
    let leaf = seen.lock().unwrap().take();
    leaf.expect("the hub presented a certificate")
}

/// Notes the server's certificate and accepts it (the probe only looks).
#[derive(Debug)]
struct Capture {
    seen: Arc<Mutex<Option<Vec<u8>>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A session through `listen` at `hub`, retried while the control plane settles: its first
/// bytes echoed.
async fn connect(listen: SocketAddr, hub: &Hub) -> TcpStream {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let mut answer = [0u8; 4];
        // A refused session is reset at once; an accepted one echoes.
        let echoed = tokio::time::timeout(Duration::from_secs(10), async {
            let mut stream = TcpStream::connect(listen).await?;
            stream.write_all(b"ping").await?;
            stream.read_exact(&mut answer).await?;
            Ok::<_, std::io::Error>(stream)
        })
        .await;
        let error = match echoed {
            Ok(Ok(stream)) if &answer == b"ping" => return stream,
            Ok(Ok(_)) => "echoed other bytes".to_owned(),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no echo within 10 s".to_owned(),
        };
        assert!(
            Instant::now() < deadline,
            "no session through {listen} within {CONVERGE:?} ({error}); {}:\n{}",
            hub.id,
            hub.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Echo round trips on one session, one after another, until stopped; any failure ends it.
struct Streaming {
    rounds: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<TcpStream, String>>,
}

impl Streaming {
    fn start(mut stream: TcpStream) -> Self {
        let rounds = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (rounds, stop) = (Arc::clone(&rounds), Arc::clone(&stop));
            async move {
                let mut answer = vec![0u8; 16 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    let round = rounds.load(Ordering::Relaxed);
                    let payload = vec![(round % 251) as u8; answer.len()];
                    let trip = async {
                        stream.write_all(&payload).await?;
                        stream.read_exact(&mut answer).await
                    };
                    match tokio::time::timeout(Duration::from_secs(10), trip).await {
                        Ok(Ok(_)) if answer == payload => {}
                        Ok(Ok(_)) => return Err(format!("round {round}: echoed other bytes")),
                        Ok(Err(error)) => return Err(format!("round {round}: {error}")),
                        Err(_) => return Err(format!("round {round}: no echo within 10 s")),
                    }
                    rounds.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(stream)
            }
        });
        Self { rounds, stop, task }
    }

    /// Waits for 20 more round trips; panics if the session broke.
    async fn advances(&self) {
        let from = self.rounds.load(Ordering::Relaxed);
        let deadline = Instant::now() + CONVERGE;
        while self.rounds.load(Ordering::Relaxed) < from + 20 {
            assert!(!self.task.is_finished(), "the session broke");
            assert!(Instant::now() < deadline, "the session stalled");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) -> TcpStream {
        self.stop.store(true, Ordering::Relaxed);
        self.task
            .await
            .unwrap()
            .unwrap_or_else(|error| panic!("the session broke: {error}"))
    }
}
