//! Fetching a release from an HTTPS mirror: tough's `Transport` over hyper's HTTP/1.1 client
//! and rustls (aws-lc-rs), trusting only the CA certificates the operator configured.
//!
//! Why not tough's own `http` feature: its `HttpTransport` builds its rustls configuration with
//! `rustls-platform-verifier`, so it trusts the system's roots and nothing else, with no way to
//! pass the site CA (a bunker's mirror has a certificate from the site's own CA, and the image's
//! root file system is read-only, so the site CA cannot be added to a system bundle); and its
//! timeout bounds a whole request, so a 1 GB root image over a slow link and a stalled server are
//! told apart only by one deadline. This transport bounds each wait instead: the TCP connect and
//! TLS handshake, the response headers, and every gap between body bytes.
//!
//! Retries: a failed connection, a timeout, a broken-off body or an HTTP 5xx is tried again
//! after a pause that doubles (up to `tries` attempts in all). A body that broke off after some
//! bytes is resumed with an HTTP range request when the mirror said it accepts ranges
//! (`Accept-Ranges: bytes`); tough hashes the whole target as it passes, so a resumed stream is
//! checked exactly like one that never broke. A certificate that is not trusted, a 4xx answer or
//! a mirror that ignores the range are not retried: trying again cannot change them.
//!
//! The metadata is signed, so TLS adds no authenticity TUF does not already give; it keeps the
//! transfer private and stops anyone on the path from feeding the appliance junk it would have to
//! download before refusing it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT_RANGES, CONTENT_RANGE, HOST, RANGE, USER_AGENT};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_rustls::TlsConnector;
use tough::{Transport, TransportError, TransportErrorKind};
use url::{Host, Url};

use crate::source::SourceError;

/// How many body chunks may wait between the connection and tough's reader.
const CHANNEL_CHUNKS: usize = 8;
/// The longest pause between two tries.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

/// How updated talks to a mirror: whom it trusts and how long it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorOptions {
    /// PEM files of the CA certificates a mirror's certificate must chain to (each file may
    /// hold several). The site CA's root (trustd's root certificate) is the expected one; the
    /// system's roots are trusted only if their bundle is listed here too.
    pub trust_anchors: Vec<PathBuf>,
    /// Longest wait for the TCP connection, and again for the TLS handshake.
    pub connect_timeout: Duration,
    /// Longest wait for the response headers, and for each next piece of the body.
    pub idle_timeout: Duration,
    /// Attempts per file before giving up (at least 1).
    pub tries: u32,
    /// Pause before the second attempt; it doubles for each further one (at most 30 s).
    pub retry_pause: Duration,
}

impl MirrorOptions {
    /// Options trusting `trust_anchors`, with the defaults: 10 s to connect, 30 s of silence,
    /// 4 tries, 1 s first pause.
    pub fn new(trust_anchors: Vec<PathBuf>) -> MirrorOptions {
        MirrorOptions {
            trust_anchors,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            tries: 4,
            retry_pause: Duration::from_secs(1),
        }
    }
}

/// Why a file could not be fetched from the mirror (after the retries, for transient failures).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorFailure {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error(
        "the mirror's certificate is not trusted (not issued by a configured CA, expired, or for another name): {0}"
    )]
    UntrustedCertificate(String),
    #[error("the TLS handshake failed: {0}")]
    Handshake(String),
    #[error("no progress for {} s while {phase}", after.as_secs_f64())]
    Timeout {
        phase: &'static str,
        after: Duration,
    },
    #[error("the mirror answered HTTP {0}")]
    Status(u16),
    #[error(
        "the transfer broke off and the mirror cannot resume it (it does not honour HTTP ranges)"
    )]
    NotResumable,
    #[error("the HTTP exchange failed: {0}")]
    Http(String),
}

impl MirrorFailure {
    /// Whether trying again may succeed.
    fn is_transient(&self) -> bool {
        match self {
            MirrorFailure::Connect(_)
            | MirrorFailure::Handshake(_)
            | MirrorFailure::Timeout { .. }
            | MirrorFailure::Http(_) => true,
            MirrorFailure::Status(status) => *status >= 500 || matches!(status, 408 | 429),
            MirrorFailure::UntrustedCertificate(_) | MirrorFailure::NotResumable => false,
        }
    }
}

/// The cause inside the `TransportError` tough sees; `verify` finds it again in tough's error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("fetching {url} failed after {tries} tries: {failure}")]
pub(crate) struct FetchFailed {
    pub(crate) url: String,
    pub(crate) tries: u32,
    pub(crate) failure: MirrorFailure,
}

/// tough's transport for `https://` URLs, trusting only the configured anchors.
#[derive(Clone)]
pub struct HttpsTransport {
    connector: TlsConnector,
    options: Arc<MirrorOptions>,
}

impl std::fmt::Debug for HttpsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsTransport")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl HttpsTransport {
    /// A transport trusting the CA certificates in `options.trust_anchors`; refuses an empty
    /// list (a mirror nobody vouches for) and files that hold no usable certificate.
    pub fn new(options: MirrorOptions) -> Result<HttpsTransport, SourceError> {
        if options.trust_anchors.is_empty() {
            return Err(SourceError::NoMirrorTrust);
        }
        let mut roots = RootCertStore::empty();
        for path in &options.trust_anchors {
            for certificate in read_anchors(path)? {
                roots
                    .add(certificate)
                    .map_err(|e| SourceError::MirrorTrust {
                        path: path.clone(),
                        detail: format!("a certificate is not usable as a trust anchor: {e}"),
                    })?;
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        // TLS 1.2 and 1.3 (rustls' safe defaults): a mirror is any web server, not a BunkerOS
        // listener, and rustls' TLS 1.2 offers only forward-secret AEAD suites.
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SourceError::MirrorTrust {
                path: options.trust_anchors[0].clone(),
                detail: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(HttpsTransport {
            connector: TlsConnector::from(Arc::new(config)),
            options: Arc::new(MirrorOptions {
                tries: options.tries.max(1),
                ..options
            }),
        })
    }

    /// Fetches `url` into `chunks` with retries; the last message is the error, if any.
    async fn fetch_into(self, url: Url, chunks: mpsc::Sender<Result<Bytes, TransportError>>) {
        let mut progress = Progress::default();
        let mut pause = self.options.retry_pause;
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(&url, &mut progress, &chunks).await {
                Ok(()) | Err(Stop::ReaderGone) => return,
                Err(Stop::NotFound(status)) => {
                    let error = TransportError::new_with_cause(
                        TransportErrorKind::FileNotFound,
                        url.as_str(),
                        format!("the mirror answered HTTP {status}"),
                    );
                    let _ = chunks.send(Err(error)).await;
                    return;
                }
                Err(Stop::Failed(failure)) => failure,
            };
            let resumable = progress.next_byte == 0 || progress.accepts_ranges;
            if !failure.is_transient() || attempt >= self.options.tries || !resumable {
                let failure = if failure.is_transient() && !resumable {
                    MirrorFailure::NotResumable
                } else {
                    failure
                };
                let cause = FetchFailed {
                    url: url.to_string(),
                    tries: attempt,
                    failure,
                };
                let error =
                    TransportError::new_with_cause(TransportErrorKind::Other, url.as_str(), cause);
                let _ = chunks.send(Err(error)).await;
                return;
            }
            tracing::warn!(%url, attempt, error = %failure, retry_in = ?pause, "mirror fetch failed, trying again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RETRY_PAUSE);
            attempt += 1;
        }
    }

    /// One request: streams the body from `progress.next_byte` on into `chunks`.
    async fn attempt(
        &self,
        url: &Url,
        progress: &mut Progress,
        chunks: &mpsc::Sender<Result<Bytes, TransportError>>,
    ) -> Result<(), Stop> {
        let (response, _connection) = self.request(url, progress.next_byte).await?;
        check_status(&response, progress.next_byte)?;
        if progress.next_byte == 0 {
            progress.accepts_ranges = response
                .headers()
                .get(ACCEPT_RANGES)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|value| value.contains("bytes"));
        }
        let mut body = response.into_body();
        loop {
            let frame = tokio::time::timeout(self.options.idle_timeout, body.frame())
                .await
                .map_err(|_| {
                    Stop::Failed(MirrorFailure::Timeout {
                        phase: "receiving the file",
                        after: self.options.idle_timeout,
                    })
                })?;
            let Some(frame) = frame else {
                return Ok(());
            };
            let frame = frame.map_err(|e| Stop::Failed(MirrorFailure::Http(e.to_string())))?;
            if let Ok(data) = frame.into_data()
                && !data.is_empty()
            {
                progress.next_byte += data.len() as u64;
                chunks.send(Ok(data)).await.map_err(|_| Stop::ReaderGone)?;
            }
        }
    }

    /// Connects, shakes hands and sends a GET for `url` (from byte `from` on), bounded by the
    /// timeouts. The connection is driven by a task that ends when the guard is dropped.
    async fn request(
        &self,
        url: &Url,
        from: u64,
    ) -> Result<(Response<Incoming>, AbortOnDrop), Stop> {
        let connect_timeout = self.options.connect_timeout;
        let (address, server_name) = endpoint(url)?;
        let tcp = tokio::time::timeout(connect_timeout, connect(&address))
            .await
            .map_err(|_| {
                Stop::Failed(MirrorFailure::Timeout {
                    phase: "connecting",
                    after: connect_timeout,
                })
            })?
            .map_err(|e| Stop::Failed(MirrorFailure::Connect(e.to_string())))?;
        let tls = tokio::time::timeout(connect_timeout, self.connector.connect(server_name, tcp))
            .await
            .map_err(|_| {
                Stop::Failed(MirrorFailure::Timeout {
                    phase: "in the TLS handshake",
                    after: connect_timeout,
                })
            })?
            .map_err(|e| Stop::Failed(handshake_failure(&e)))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| Stop::Failed(MirrorFailure::Http(e.to_string())))?;
        let connection = AbortOnDrop(tokio::spawn(connection).abort_handle());
        let mut request = Request::get(path_and_query(url))
            .header(HOST, host_header(url))
            .header(
                USER_AGENT,
                concat!("bunkeros-updated/", env!("CARGO_PKG_VERSION")),
            );
        if from > 0 {
            request = request.header(RANGE, format!("bytes={from}-"));
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| Stop::Failed(MirrorFailure::Http(e.to_string())))?;
        let idle_timeout = self.options.idle_timeout;
        let response = tokio::time::timeout(idle_timeout, sender.send_request(request))
            .await
            .map_err(|_| {
                Stop::Failed(MirrorFailure::Timeout {
                    phase: "waiting for the answer",
                    after: idle_timeout,
                })
            })?
            .map_err(|e| Stop::Failed(MirrorFailure::Http(e.to_string())))?;
        Ok((response, connection))
    }
}

#[async_trait::async_trait]
impl Transport for HttpsTransport {
    /// Starts fetching `url` in a task and returns its chunks as they come; errors (including
    /// "not found", which tough needs to see as such when it looks for a newer root) arrive as
    /// the stream's last item.
    async fn fetch(&self, url: Url) -> Result<tough::TransportStream, TransportError> {
        if url.scheme() != "https" {
            return Err(TransportError::new(
                TransportErrorKind::UnsupportedUrlScheme,
                url,
            ));
        }
        let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
        let task = tokio::spawn(self.clone().fetch_into(url, sender));
        Ok(Box::pin(FetchStream {
            chunks: receiver,
            task: task.abort_handle(),
        }))
    }
}

/// How far one file's transfer got, across tries.
#[derive(Debug, Default)]
struct Progress {
    next_byte: u64,
    accepts_ranges: bool,
}

/// Why an attempt stopped early.
enum Stop {
    Failed(MirrorFailure),
    NotFound(u16),
    /// tough dropped the stream (it had enough, or refused the bytes): stop quietly.
    ReaderGone,
}

/// A fetch task's chunks as tough's stream; dropping it stops the task (and its connection).
struct FetchStream {
    chunks: mpsc::Receiver<Result<Bytes, TransportError>>,
    task: AbortHandle,
}

impl Stream for FetchStream {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.chunks.poll_recv(cx)
    }
}

impl Drop for FetchStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The certificates in one PEM trust anchor file.
fn read_anchors(path: &Path) -> Result<Vec<CertificateDer<'static>>, SourceError> {
    let trust_error = |detail: String| SourceError::MirrorTrust {
        path: path.to_owned(),
        detail,
    };
    let pem = std::fs::read(path).map_err(|e| trust_error(e.to_string()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| trust_error(format!("not a PEM certificate file: {e}")))?;
    if certificates.is_empty() {
        return Err(trust_error("holds no PEM certificate".to_owned()));
    }
    Ok(certificates)
}

/// Where to connect and which name the certificate must carry.
fn endpoint(url: &Url) -> Result<(Address, ServerName<'static>), Stop> {
    let port = url.port_or_known_default().unwrap_or(443);
    let bad_url = || Stop::Failed(MirrorFailure::Http(format!("{url} has no usable host")));
    match url.host().ok_or_else(bad_url)? {
        Host::Domain(name) => {
            let server_name = ServerName::try_from(name.to_owned()).map_err(|_| bad_url())?;
            Ok((Address::Name(name.to_owned(), port), server_name))
        }
        Host::Ipv4(ip) => Ok((
            Address::Ip(SocketAddr::from((ip, port))),
            ServerName::IpAddress(std::net::IpAddr::from(ip).into()),
        )),
        Host::Ipv6(ip) => Ok((
            Address::Ip(SocketAddr::from((ip, port))),
            ServerName::IpAddress(std::net::IpAddr::from(ip).into()),
        )),
    }
}

enum Address {
    Name(String, u16),
    Ip(SocketAddr),
}

async fn connect(address: &Address) -> std::io::Result<TcpStream> {
    match address {
        Address::Name(name, port) => TcpStream::connect((name.as_str(), *port)).await,
        Address::Ip(address) => TcpStream::connect(address).await,
    }
}

/// A handshake error, told apart: an untrusted certificate will not get better by retrying.
fn handshake_failure(error: &std::io::Error) -> MirrorFailure {
    let tls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls_error {
        Some(
            e @ (rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA)),
        ) => MirrorFailure::UntrustedCertificate(e.to_string()),
        _ => MirrorFailure::Handshake(error.to_string()),
    }
}

fn check_status(response: &Response<Incoming>, from: u64) -> Result<(), Stop> {
    let status = response.status();
    match status {
        StatusCode::OK if from == 0 => Ok(()),
        StatusCode::PARTIAL_CONTENT if from > 0 => {
            let expected = format!("bytes {from}-");
            let resumed_here = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|value| value.starts_with(&expected));
            if resumed_here {
                Ok(())
            } else {
                Err(Stop::Failed(MirrorFailure::NotResumable))
            }
        }
        StatusCode::OK | StatusCode::PARTIAL_CONTENT => {
            Err(Stop::Failed(MirrorFailure::NotResumable))
        }
        StatusCode::NOT_FOUND | StatusCode::GONE | StatusCode::FORBIDDEN => {
            Err(Stop::NotFound(status.as_u16()))
        }
        other => Err(Stop::Failed(MirrorFailure::Status(other.as_u16()))),
    }
}

fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}
