//! The loopback Prometheus endpoint every service exposes (`GET /metrics`, OpenMetrics text).
//!
//! Metrics are served on loopback only (trustd 9101 … updated 9105): a stock Prometheus on the
//! appliance scrapes them, and remote scraping goes through hubd's mutually authenticated links,
//! never through a plain-text listener on a network interface. [`MetricsEndpoint::bind`]
//! therefore refuses any address that is not loopback, so a config mistake cannot expose it.
//!
//! Services register their metrics in a [`prometheus_client::registry::Registry`] at startup and
//! then share it read-only behind an `Arc`: prometheus-client metrics are atomics updated through
//! their own handles, and encoding only borrows the registry, so no lock is needed.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::values::{LoopbackAddr, Port};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The content type of the OpenMetrics text format, which prometheus-client encodes.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A client that has not sent its request headers by then is dropped (slow or stuck scraper).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapers served at once: Prometheus opens one connection per scrape; a few suffice.
const MAX_CONNECTIONS: usize = 16;

/// Why the metrics endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// `0.0.0.0` or `::` would listen on every interface.
    #[error(
        "refusing to serve metrics on {addr}: that listens on every interface, and metrics are \
         loopback-only (remote scraping goes through hubd)"
    )]
    Unspecified {
        /// The refused address.
        addr: SocketAddr,
    },
    /// A concrete address that is not loopback.
    #[error(
        "refusing to serve metrics on {addr}: not a loopback address, and metrics are \
         loopback-only (remote scraping goes through hubd)"
    )]
    NotLoopback {
        /// The refused address.
        addr: SocketAddr,
    },
    /// The socket could not be bound (port in use, permission).
    #[error("cannot listen for metrics on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: io::Error,
    },
}

/// A bound, not yet serving, loopback metrics listener.
#[derive(Debug)]
pub struct MetricsEndpoint {
    listener: TcpListener,
    local_addr: SocketAddr,
    registry: Arc<Registry>,
}

impl MetricsEndpoint {
    /// Binds `addr`, which must be a loopback address (`127.0.0.0/8` or `::1`).
    ///
    /// Binding happens here, before `READY=1`, so a port clash stops startup with a clear error
    /// rather than leaving a service that reports ready but cannot be scraped.
    pub async fn bind(addr: SocketAddr, registry: Arc<Registry>) -> Result<Self, MetricsError> {
        if addr.ip().is_unspecified() {
            return Err(MetricsError::Unspecified { addr });
        }
        if !addr.ip().is_loopback() {
            return Err(MetricsError::NotLoopback { addr });
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| MetricsError::Bind { addr, source })?;
        Ok(Self {
            listener,
            local_addr,
            registry,
        })
    }

    /// The address actually bound (the port is chosen by the kernel when `addr` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves scrapes until `cancel` fires, then lets scrapes in flight finish (briefly).
    pub async fn serve(self, cancel: CancellationToken) {
        let registry = self.registry;
        crate::http::serve_listener(
            self.listener,
            MAX_CONNECTIONS,
            &cancel.clone(),
            "metrics endpoint",
            |stream| serve_connection(stream, Arc::clone(&registry), cancel.clone()),
        )
        .await;
    }
}

async fn serve_connection(stream: TcpStream, registry: Arc<Registry>, cancel: CancellationToken) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = respond(request.method(), request.uri().path(), &registry);
        async move { Ok::<_, Infallible>(response) }
    });
    crate::http::serve_connection(
        stream,
        service,
        HEADER_READ_TIMEOUT,
        &cancel,
        "metrics endpoint",
    )
    .await;
}

/// The whole HTTP surface: `GET /metrics`, 405 for other methods on it, 404 elsewhere.
fn respond(method: &Method, path: &str, registry: &Registry) -> Response<Full<Bytes>> {
    if path != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found; metrics are at /metrics\n",
        );
    }
    if method != Method::GET {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET is allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    let mut body = String::new();
    if let Err(e) = encode(&mut body, registry) {
        tracing::error!(error = %e, "metrics endpoint: encoding the registry failed");
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n");
    }
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
    );
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Registers `bunkeros_build_info{service="…",version="…"} 1`.
///
/// The usual Prometheus idiom (like `prometheus_build_info`): a constant 1 whose labels say which
/// build is running, so dashboards and `updated`'s rollout checks can see which version each
/// appliance actually runs. Register it on the root registry, not a prefixed sub-registry.
pub fn register_build_info(registry: &mut Registry, service: &str, version: &str) {
    let family = Family::<Vec<(String, String)>, Gauge>::default();
    family
        .get_or_create(&vec![
            ("service".to_owned(), service.to_owned()),
            ("version".to_owned(), version.to_owned()),
        ])
        .set(1);
    registry.register(
        "bunkeros_build_info",
        "Which BunkerOS service build is running (always 1)",
        family,
    );
}

/// `[metrics]` of a service's configuration: where its endpoint listens, `127.0.0.1:PORT` unless
/// the site says otherwise (loopback only: [`LoopbackAddr`] refuses anything else, with file:line).
/// `PORT` is the service's own (trustd 9101, hubd 9102, … updated 9105).
///
/// Serde's derives do not take const generics, hence the hand-written impls below: they read and
/// write exactly what `#[serde(deny_unknown_fields, default)]` on the struct would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSection<const PORT: u16> {
    /// Loopback address Prometheus scrapes.
    pub listen: LoopbackAddr,
}

/// The table as written in the file: every key optional, no other key allowed.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsTable {
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<LoopbackAddr>,
}

impl<'de, const PORT: u16> serde::Deserialize<'de> for MetricsSection<PORT> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let table = MetricsTable::deserialize(deserializer)?;
        Ok(Self {
            listen: table.listen.unwrap_or_else(|| Self::default().listen),
        })
    }
}

impl<const PORT: u16> serde::Serialize for MetricsSection<PORT> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let table = MetricsTable {
            listen: Some(self.listen),
        };
        table.serialize(serializer)
    }
}

impl<const PORT: u16> Default for MetricsSection<PORT> {
    fn default() -> Self {
        Self {
            listen: LoopbackAddr::localhost(Port::from_const(PORT)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_section_defaults_to_the_services_loopback_port() {
        #[derive(Debug, serde::Deserialize)]
        struct File {
            #[serde(default)]
            metrics: MetricsSection<9104>,
        }
        let parse = |text: &str| toml::from_str::<File>(text).map(|file| file.metrics.listen);
        let default = LoopbackAddr::localhost(Port::from_const(9104));
        assert_eq!(parse("").unwrap(), default);
        assert_eq!(parse("[metrics]\n").unwrap(), default);
        let moved = parse("[metrics]\nlisten = \"127.0.0.2:9200\"\n").unwrap();
        assert_eq!(moved.to_string(), "127.0.0.2:9200");
        let err = parse("[metrics]\nlisten = \"0.0.0.0:9104\"\n").unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        let err = parse("[metrics]\nport = 9104\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `port`"), "{err}");
        let written = toml::to_string(&MetricsSection::<9104>::default()).unwrap();
        assert_eq!(written, "listen = \"127.0.0.1:9104\"\n");
    }
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::task::JoinHandle;

    const PATIENCE: Duration = Duration::from_secs(20);

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A plain HTTP/1.1 exchange over a TCP stream, as a scraper would do it.
    async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("send");
        let mut raw = Vec::new();
        tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
            .await
            .expect("reply in time")
            .expect("read reply");
        let raw = String::from_utf8(raw).expect("utf-8 reply");
        let (head, body) = raw.split_once("\r\n\r\n").expect("header/body separator");
        let mut lines = head.split("\r\n");
        let status = lines.next().expect("status line");
        let status = status
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status:?}"));
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        Reply {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    struct Running {
        addr: SocketAddr,
        shares: Counter,
        cancel: CancellationToken,
        server: JoinHandle<()>,
    }

    async fn start() -> Running {
        let mut registry = Registry::default();
        let shares = Counter::default();
        registry.register(
            "bunkeros_test_shares",
            "Shares accepted by the pool",
            shares.clone(),
        );
        register_build_info(&mut registry, "minerd", "0.1.0");
        let endpoint = MetricsEndpoint::bind("127.0.0.1:0".parse().unwrap(), Arc::new(registry))
            .await
            .expect("bind loopback");
        let addr = endpoint.local_addr();
        assert!(addr.ip().is_loopback() && addr.port() != 0);
        let cancel = CancellationToken::new();
        let server = tokio::spawn(endpoint.serve(cancel.clone()));
        Running {
            addr,
            shares,
            cancel,
            server,
        }
    }

    #[tokio::test]
    async fn a_scrape_gets_the_registered_metrics_as_openmetrics_text() {
        let running = start().await;
        running.shares.inc_by(3);

        let reply = request(running.addr, "GET", "/metrics").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some(OPENMETRICS_CONTENT_TYPE));
        let lines: Vec<&str> = reply.body.lines().collect();
        assert!(
            lines.contains(&"# TYPE bunkeros_test_shares counter"),
            "{}",
            reply.body
        );
        assert!(
            lines.contains(&"bunkeros_test_shares_total 3"),
            "{}",
            reply.body
        );
        assert!(
            lines.contains(&r#"bunkeros_build_info{service="minerd",version="0.1.0"} 1"#),
            "{}",
            reply.body
        );
        assert_eq!(lines.last(), Some(&"# EOF"), "OpenMetrics ends with # EOF");

        // The counter is live: a second scrape sees the new value, no re-registration needed.
        running.shares.inc();
        let again = request(running.addr, "GET", "/metrics").await;
        assert!(
            again
                .body
                .lines()
                .any(|l| l == "bunkeros_test_shares_total 4")
        );

        promtool_check(&reply.body);
    }

    /// Cross-checks the body with Prometheus' own parser and linter when Debian's `prometheus`
    /// is installed.
    ///
    /// `promtool check metrics` reads the classic text format, not OpenMetrics: it parses our
    /// body, but sees each counter's `_total` sample as a family without HELP (OpenMetrics puts
    /// HELP/TYPE on the name without `_total`). That one finding is expected and allowed, for
    /// declared counters only; a parse error (exit 1) or any other finding fails the test.
    fn promtool_check(body: &str) {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                println!(
                    "note: promtool is not on PATH (Debian package prometheus); skipped its check"
                );
                return;
            }
            Err(e) => panic!("cannot run promtool: {e}"),
        };
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body.as_bytes())
            .expect("feed promtool");
        let output = child.wait_with_output().expect("promtool output");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let counters: Vec<&str> = body
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
            .collect();
        let expected_only = report.lines().filter(|l| !l.trim().is_empty()).all(|l| {
            counters
                .iter()
                .any(|c| l.trim() == format!("{c}_total no help text"))
        });
        match output.status.code() {
            Some(0) => {}
            Some(3) if expected_only => {}
            _ => panic!("promtool check metrics ({}): {report}", output.status),
        }
    }

    #[tokio::test]
    async fn other_paths_are_404() {
        let running = start().await;
        for path in ["/", "/metrics/", "/healthz"] {
            assert_eq!(
                request(running.addr, "GET", path).await.status,
                404,
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn other_methods_are_405_with_allow_get() {
        let running = start().await;
        for method in ["POST", "PUT", "DELETE"] {
            let reply = request(running.addr, method, "/metrics").await;
            assert_eq!(reply.status, 405, "{method}");
            assert_eq!(reply.header("allow"), Some("GET"));
        }
    }

    #[tokio::test]
    async fn every_interface_and_network_addresses_are_refused() {
        for addr in ["0.0.0.0:9103", "[::]:9103"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let err = MetricsEndpoint::bind(addr, Arc::default())
                .await
                .expect_err("refused");
            assert!(matches!(err, MetricsError::Unspecified { .. }), "{err:?}");
            assert!(err.to_string().contains("loopback-only"), "{err}");
        }
        for addr in ["192.0.2.10:9103", "10.0.0.1:0", "[2001:db8::1]:9103"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let err = MetricsEndpoint::bind(addr, Arc::default())
                .await
                .expect_err("refused");
            assert!(matches!(err, MetricsError::NotLoopback { .. }), "{err:?}");
            assert!(err.to_string().contains("not a loopback address"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_port_in_use_is_a_bind_error() {
        let running = start().await;
        let err = MetricsEndpoint::bind(running.addr, Arc::default())
            .await
            .expect_err("port in use");
        assert!(matches!(err, MetricsError::Bind { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn serving_stops_when_cancelled() {
        let running = start().await;
        assert_eq!(request(running.addr, "GET", "/metrics").await.status, 200);
        running.cancel.cancel();
        tokio::time::timeout(PATIENCE, running.server)
            .await
            .expect("serve returns after cancel")
            .expect("serve task");
        assert!(
            TcpStream::connect(running.addr).await.is_err(),
            "listener closed"
        );
    }
}
