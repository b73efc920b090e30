//! Releases from an HTTPS mirror, end to end: a real HTTPS server on 127.0.0.1 (a test CA's
//! certificate, rustls, hyper) serves a repository written with the release keys, and updated
//! verifies and streams it through `verify_update_from` exactly as from a directory; a tampered
//! target, a stalled server, a broken-off transfer and a certificate from another CA each end as
//! the issue asks: refused, a bounded timeout, resumed, refused.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{ACCEPT_RANGES, CONTENT_RANGE, RANGE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jiff::{SignedDuration, Timestamp};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use updated::repository::{generate_signing_key, write_release, write_root};
use updated::{
    MirrorFailure, MirrorOptions, ReleaseFacts, ReleaseKeys, ReleaseSource, ReleaseSpec,
    RoleSigners, RootSpec, RunningImage, SourceError, UpdateRefused, VerifiedUpdate,
    verify_update_from,
};

const PROFILE: &str = "qemu-x86_64";
const ARTEFACTS: [&str; 3] = ["bunkeros.uki.efi", "root.squashfs", "root.verity"];
/// Far longer than any bounded failure here takes (a hang would run into it, not pass).
const HANG_BOUND: Duration = Duration::from_secs(30);

/// What the test server does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Serves the files, honouring `Range: bytes=N-`.
    Genuine,
    /// Serves every target with one byte changed.
    TamperTargets,
    /// Accepts connections and never answers.
    StallEverything,
    /// Serves metadata; sends the headers and half of a target, then nothing more.
    StallTargets,
    /// The first request for a target breaks off after half of it; later ones resume.
    BreakTargetsOnce,
    /// The first request for each file answers 503; later ones succeed.
    Unavailable503Once,
}

/// A test CA: its certificate (PEM on disk, for `MirrorOptions`) and its issuer.
struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    pem_path: PathBuf,
}

impl TestCa {
    fn new(dir: &Path, name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} site CA"));
        let issuer =
            rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let pem_path = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&pem_path, issuer.pem()).unwrap();
        TestCa { issuer, pem_path }
    }

    /// A TLS server configuration for `127.0.0.1` with a certificate issued by this CA.
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        let chain: Vec<CertificateDer<'static>> = vec![certificate.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }

    fn options(&self) -> MirrorOptions {
        MirrorOptions {
            trust_anchors: vec![self.pem_path.clone()],
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(1),
            tries: 2,
            retry_pause: Duration::from_millis(50),
        }
    }
}

/// An HTTPS server on 127.0.0.1 (port 0) serving files below `root`.
struct TestMirror {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl TestMirror {
    async fn start(
        root: PathBuf,
        tls: Arc<rustls::ServerConfig>,
        behaviour: Behaviour,
    ) -> TestMirror {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let root = root.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    // a client that refuses our certificate ends the handshake: nothing to serve
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let root = root.clone();
                        let seen = seen.clone();
                        async move { Ok::<_, Infallible>(answer(&root, behaviour, &seen, request)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TestMirror { address, task }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/repo/", self.address.port())
    }
}

impl Drop for TestMirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

fn answer(
    root: &Path,
    behaviour: Behaviour,
    seen: &Mutex<HashSet<String>>,
    request: Request<Incoming>,
) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let first_time = seen.lock().unwrap().insert(path.clone());
    if behaviour == Behaviour::StallEverything {
        return stalled(Vec::new());
    }
    if behaviour == Behaviour::Unavailable503Once && first_time {
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    let Some(relative) = path.strip_prefix("/repo/").filter(|p| !p.contains("..")) else {
        return status(StatusCode::NOT_FOUND);
    };
    let Ok(mut bytes) = std::fs::read(root.join(relative)) else {
        return status(StatusCode::NOT_FOUND);
    };
    let is_target = relative.starts_with("targets/");
    let from = request
        .headers()
        .get(RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("bytes="))
        .and_then(|value| value.strip_suffix('-'))
        .and_then(|value| value.parse::<usize>().ok());
    if is_target && behaviour == Behaviour::TamperTargets {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
    }
    if is_target && behaviour == Behaviour::StallTargets {
        // half the target, then silence; a resumed request gets silence at once
        let Some(from) = from else {
            bytes.truncate(bytes.len() / 2);
            return stalled(bytes);
        };
        let mut response = stalled(Vec::new());
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let range = format!("bytes {from}-{}/{}", bytes.len() - 1, bytes.len());
        response
            .headers_mut()
            .insert(CONTENT_RANGE, range.parse().unwrap());
        return response;
    }
    if is_target && behaviour == Behaviour::BreakTargetsOnce && first_time {
        bytes.truncate(bytes.len() / 2);
        let broken = stream::iter([
            Ok(Frame::data(Bytes::from(bytes))),
            Err(std::io::Error::other("connection cut")),
        ]);
        return Response::builder()
            .header(ACCEPT_RANGES, "bytes")
            .body(BoxBody::new(StreamBody::new(broken)))
            .unwrap();
    }
    let response = Response::builder().header(ACCEPT_RANGES, "bytes");
    match from {
        Some(from) if from < bytes.len() => response
            .status(StatusCode::PARTIAL_CONTENT)
            .header(
                CONTENT_RANGE,
                format!("bytes {from}-{}/{}", bytes.len() - 1, bytes.len()),
            )
            .body(full(bytes[from..].to_vec()))
            .unwrap(),
        _ => response.body(full(bytes)).unwrap(),
    }
}

fn full(bytes: Vec<u8>) -> Body {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed()
}

fn status(status: StatusCode) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(full(Vec::new()))
        .unwrap()
}

/// Headers and `bytes`, then silence with the connection open.
fn stalled(bytes: Vec<u8>) -> Response<Body> {
    let frames = stream::iter([Ok(Frame::data(Bytes::from(bytes)))]).chain(stream::pending());
    Response::builder()
        .header(ACCEPT_RANGES, "bytes")
        .body(BoxBody::new(StreamBody::new(frames)))
        .unwrap()
}

/// A release repository of image 0.2.0, written with fresh release keys, and its root.json.
struct Release {
    dir: TempDir,
    repository: PathBuf,
    trusted_root: Vec<u8>,
}

fn one() -> NonZeroU64 {
    NonZeroU64::new(1).unwrap()
}

fn days_from_now(days: i64) -> Timestamp {
    Timestamp::now()
        .checked_add(SignedDuration::from_hours(24 * days))
        .unwrap()
}

fn artefact_bytes(name: &str) -> Vec<u8> {
    format!("{name} 0.2.0 ")
        .bytes()
        .cycle()
        .take(40_000 + name.len() * 1_000)
        .collect()
}

async fn release() -> Release {
    let dir = TempDir::new().unwrap();
    let key_dir = dir.path().join("keys");
    std::fs::create_dir(&key_dir).unwrap();
    let signers = |role: &str| {
        let path = key_dir.join(format!("{role}.pk8"));
        generate_signing_key(&path).unwrap();
        RoleSigners {
            key_files: vec![path],
            threshold: one(),
        }
    };
    let keys = ReleaseKeys {
        root: signers("root"),
        targets: signers("targets"),
        snapshot: signers("snapshot"),
        timestamp: signers("timestamp"),
    };
    let root_spec = RootSpec {
        version: one(),
        expires: days_from_now(365),
    };
    let root_json = write_root(&keys, root_spec, &dir.path().join("root"))
        .await
        .unwrap();
    let artefacts = dir.path().join("artefacts");
    std::fs::create_dir(&artefacts).unwrap();
    for name in ARTEFACTS {
        std::fs::write(artefacts.join(name), artefact_bytes(name)).unwrap();
    }
    let spec = ReleaseSpec {
        facts: ReleaseFacts {
            image_version: "0.2.0".parse().unwrap(),
            profile: PROFILE.to_owned(),
            roothash: "ab".repeat(32),
        },
        metadata_version: one(),
        targets_expires: days_from_now(90),
        snapshot_expires: days_from_now(30),
        timestamp_expires: days_from_now(7),
    };
    let repository = dir.path().join("repository");
    write_release(&root_json, &artefacts, &spec, &keys, &repository)
        .await
        .unwrap();
    let trusted_root = std::fs::read(&root_json).unwrap();
    Release {
        dir,
        repository,
        trusted_root,
    }
}

static STATES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Release {
    async fn verify_from(&self, source: &ReleaseSource) -> Result<VerifiedUpdate, UpdateRefused> {
        // a state directory per verification, kept as long as the release (tough's datastore)
        let state = self.dir.path().join(format!(
            "state-{}",
            STATES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir(&state).unwrap();
        let running = RunningImage {
            version: "0.1.0".parse().unwrap(),
            profile: PROFILE.to_owned(),
        };
        let verifying = verify_update_from(source, &self.trusted_root, &state, &running);
        tokio::time::timeout(HANG_BOUND, verifying)
            .await
            .expect("verification must end, not hang")
    }
}

async fn stream(update: &VerifiedUpdate, name: &str) -> Result<Vec<u8>, UpdateRefused> {
    let mut sink = Vec::new();
    let streaming = update.stream_target(name, &mut sink);
    let written = tokio::time::timeout(HANG_BOUND, streaming)
        .await
        .expect("streaming must end, not hang")?;
    assert_eq!(written, sink.len() as u64);
    Ok(sink)
}

async fn mirror_source(
    release: &Release,
    ca: &TestCa,
    behaviour: Behaviour,
) -> (TestMirror, ReleaseSource) {
    let mirror = TestMirror::start(release.repository.clone(), ca.server_config(), behaviour).await;
    let source = ReleaseSource::parse(&mirror.url(), &ca.options()).unwrap();
    (mirror, source)
}

fn mirror_failure(refusal: &UpdateRefused) -> &MirrorFailure {
    match refusal {
        UpdateRefused::Source(SourceError::Mirror { failure, .. }) => failure,
        other => panic!("not a mirror failure: {other}"),
    }
}

#[tokio::test]
async fn a_genuine_release_verifies_and_streams_from_the_mirror_as_from_a_directory() {
    let release = release().await;
    let ca = TestCa::new(release.dir.path(), "site");
    let (_mirror, source) = mirror_source(&release, &ca, Behaviour::Genuine).await;
    let from_mirror = release.verify_from(&source).await.unwrap();
    let directory = ReleaseSource::Directory(release.repository.clone());
    let from_directory = release.verify_from(&directory).await.unwrap();
    assert_eq!(from_mirror.facts(), from_directory.facts());
    assert_eq!(from_mirror.target_names(), from_directory.target_names());
    for name in ARTEFACTS {
        let bytes = stream(&from_mirror, name).await.unwrap();
        assert_eq!(bytes, artefact_bytes(name), "{name} from the mirror");
        assert_eq!(stream(&from_directory, name).await.unwrap(), bytes);
    }
}

#[tokio::test]
async fn a_tampered_target_from_the_mirror_is_refused() {
    let release = release().await;
    let ca = TestCa::new(release.dir.path(), "site");
    let (_mirror, source) = mirror_source(&release, &ca, Behaviour::TamperTargets).await;
    let update = release.verify_from(&source).await.unwrap();
    let refusal = stream(&update, "root.squashfs").await.unwrap_err();
    assert!(
        matches!(refusal, UpdateRefused::Tampered { .. }),
        "{refusal}"
    );
}

#[tokio::test]
async fn a_mirror_that_never_answers_is_a_timeout_not_a_hang() {
    let release = release().await;
    let ca = TestCa::new(release.dir.path(), "site");
    let (_mirror, source) = mirror_source(&release, &ca, Behaviour::StallEverything).await;
    let refusal = release.verify_from(&source).await.unwrap_err();
    assert!(
        matches!(mirror_failure(&refusal), MirrorFailure::Timeout { .. }),
        "{refusal}"
    );
}

#[tokio::test]
async fn a_mirror_that_stalls_mid_target_is_a_timeout_not_a_hang() {
    let release = release().await;
    let ca = TestCa::new(release.dir.path(), "site");
    let (_mirror, source) = mirror_source(&release, &ca, Behaviour::StallTargets).await;
    let update = release.verify_from(&source).await.unwrap();
    let refusal = stream(&update, "root.verity").await.unwrap_err();
    assert!(
        matches!(mirror_failure(&refusal), MirrorFailure::Timeout { .. }),
        "{refusal}"
    );
}

#[tokio::test]
async fn a_transfer_that_breaks_off_resumes_and_still_verifies() {
    let release = release().await;
    let ca = TestCa::new(release.dir.path(), "site");
    let (_mirror, source) = mirror_source(&release, &ca, Behaviour::BreakTargetsOnce).await;
    let update = release.verify_from(&source).await.unwrap();
    for name in ARTEFACTS {
        assert_eq!(stream(&update, name).await.unwrap(), artefact_bytes(name));
    }
}

#[tokio::test]
async fn a_mirror_answering_503_once_is_retried() {
    let release = release().await;
    let ca = TestCa::new(release.dir.path(), "site");
    let (_mirror, source) = mirror_source(&release, &ca, Behaviour::Unavailable503Once).await;
    let update = release.verify_from(&source).await.unwrap();
    assert_eq!(
        stream(&update, "bunkeros.uki.efi").await.unwrap(),
        artefact_bytes("bunkeros.uki.efi")
    );
}

#[tokio::test]
async fn a_mirror_whose_certificate_is_from_another_ca_is_refused() {
    let release = release().await;
    let site = TestCa::new(release.dir.path(), "site");
    let stranger = TestCa::new(release.dir.path(), "stranger");
    let mirror = TestMirror::start(
        release.repository.clone(),
        stranger.server_config(),
        Behaviour::Genuine,
    )
    .await;
    let source = ReleaseSource::parse(&mirror.url(), &site.options()).unwrap();
    let refusal = release.verify_from(&source).await.unwrap_err();
    assert!(
        matches!(
            mirror_failure(&refusal),
            MirrorFailure::UntrustedCertificate(_)
        ),
        "{refusal}"
    );
    assert!(refusal.to_string().contains("not trusted"), "{refusal}");
}

#[tokio::test]
async fn plain_http_mirrors_are_refused_before_any_connection() {
    let release = release().await;
    let ca = TestCa::new(release.dir.path(), "site");
    let error = ReleaseSource::parse("http://127.0.0.1:1/repo/", &ca.options()).unwrap_err();
    assert!(matches!(error, SourceError::PlainHttp(_)), "{error}");
}

#[tokio::test]
async fn a_directory_without_a_release_and_an_absent_medium_are_clear_errors() {
    let release = release().await;
    let empty = release.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let refusal = release
        .verify_from(&ReleaseSource::Directory(empty))
        .await
        .unwrap_err();
    assert!(
        matches!(
            refusal,
            UpdateRefused::Source(SourceError::NoRelease { .. })
        ),
        "{refusal}"
    );
    let unmounted = release.dir.path().join("update-medium");
    std::fs::create_dir(&unmounted).unwrap();
    let refusal = release
        .verify_from(&ReleaseSource::Removable(unmounted))
        .await
        .unwrap_err();
    assert!(
        matches!(
            refusal,
            UpdateRefused::Source(SourceError::NotMounted { .. })
        ),
        "{refusal}"
    );
}
