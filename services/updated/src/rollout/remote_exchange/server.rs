//! The coordinator's side: serves its directory exchange to the hubs, each hub known by the
//! root its client certificate chains to.

use std::convert::Infallible;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use appliance::tls::{PeerRoots, PinnedRoot, peer_root_of};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::{EXCHANGE_TIMEOUT, ExchangeCertificate, hub_uri};
use crate::rollout::exchange::{
    DirectoryExchange, ExchangeError, MAX_DOCUMENT_BYTES, parse_report,
};
use crate::rollout::plan::is_name;

/// Hubs connected at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;

/// Reads `<dir>/<hub>.pem`: one pinned root per hub (the root of the hub's site), named by the
/// file's stem. A file that is not one root certificate, a stem that is not a hub id, or the
/// same root under two names is refused with the file's name.
pub fn load_hub_roots(dir: &Path) -> Result<PeerRoots, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "pem"))
        .collect();
    paths.sort();
    let mut roots = PeerRoots::new();
    for path in paths {
        let hub = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .filter(|stem| is_name(stem))
            .ok_or_else(|| format!("{}: the file name is not <hub id>.pem", path.display()))?
            .to_owned();
        let pem = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let root = PinnedRoot::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .insert(hub, root)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "{}: no <hub id>.pem in it; pin the root of every hub the rollouts reach",
            dir.display()
        ));
    }
    Ok(roots)
}

/// A bound exchange listener.
pub struct ExchangeServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    certificate: Arc<ExchangeCertificate>,
    hub_roots: PeerRoots,
    exchange: DirectoryExchange,
}

impl ExchangeServer {
    /// Binds `listen`; hubs are accepted when their certificate chains to one of `hub_roots`.
    pub async fn bind(
        listen: SocketAddr,
        certificate: Arc<ExchangeCertificate>,
        hub_roots: PeerRoots,
        exchange: DirectoryExchange,
    ) -> std::io::Result<ExchangeServer> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        Ok(ExchangeServer {
            listener,
            local_addr,
            shared: Arc::new(Shared {
                certificate,
                hub_roots,
                exchange,
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `cancel` fires.
    pub async fn serve(self, cancel: CancellationToken) {
        let shared = self.shared;
        appliance::http::serve_listener(
            self.listener,
            MAX_CONNECTIONS,
            &cancel.clone(),
            "rollout exchange",
            |stream| serve_connection(stream, Arc::clone(&shared), cancel.clone()),
        )
        .await;
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, cancel: CancellationToken) {
    let identity = match shared.certificate.identity() {
        Ok(identity) => identity,
        Err(why) => {
            tracing::warn!("rollout exchange: a hub connected, but {why}");
            return;
        }
    };
    let roots = shared.hub_roots.roots();
    let config = match appliance::tls::server_config(&identity, &roots) {
        Ok(mut config) => {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            config
        }
        Err(error) => {
            tracing::error!(%error, "rollout exchange: no TLS configuration");
            return;
        }
    };
    let accepted = tokio::time::timeout(
        EXCHANGE_TIMEOUT,
        TlsAcceptor::from(Arc::new(config)).accept(stream),
    )
    .await;
    let tls = match accepted {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::info!(%error, "rollout exchange: a peer was refused in the TLS handshake");
            return;
        }
        Err(_) => {
            tracing::info!("rollout exchange: a peer did not finish the TLS handshake in time");
            return;
        }
    };
    let Some(hub) = identified_hub(tls.get_ref().1, &shared.hub_roots) else {
        return;
    };
    let handler = service_fn(move |request: Request<Incoming>| {
        let shared = Arc::clone(&shared);
        let hub = hub.clone();
        async move { Ok::<_, Infallible>(handle(&shared, &hub, request).await) }
    });
    appliance::http::serve_connection(tls, handler, EXCHANGE_TIMEOUT, &cancel, "rollout exchange")
        .await;
}

/// The hub a client is: the one whose pinned root its chain leads to, provided its certificate
/// is that hub's `hub` certificate (`bunkeros:hub:<id>`), not a device's, a person's or a
/// service's from the same site (`Err`: why every request of the connection is refused).
fn identified_hub(
    connection: &rustls::ServerConnection,
    roots: &PeerRoots,
) -> Option<Result<String, String>> {
    let hub = peer_root_of(connection, roots)?;
    let leaf = connection.peer_certificates()?.first()?;
    let uri = hub_uri(hub);
    Some(if appliance::tls::names_uri(leaf.as_ref(), &uri) {
        Ok(hub.to_owned())
    } else {
        tracing::info!(%hub, "rollout exchange: a certificate of {hub}'s site that is not its hub certificate");
        Err(format!(
            "the certificate chains to {hub}'s root but is not its hub certificate ({uri})"
        ))
    })
}

/// One request from the hub its certificate proves (or the reason it proves none).
async fn handle(
    shared: &Shared,
    hub: &Result<String, String>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let hub = match hub {
        Ok(hub) => hub.as_str(),
        Err(sentence) => return plain(StatusCode::FORBIDDEN, sentence.clone().into_bytes()),
    };
    let segments: Vec<&str> = parts.uri.path().split('/').collect();
    let answer = match (&parts.method, segments.as_slice()) {
        (&Method::GET, ["", "v1", "rollout", "instructions", asked]) => {
            own_hub(hub, asked).and_then(|()| instructions(&shared.exchange, hub))
        }
        (&Method::GET, ["", "v1", "rollout", "plans", plan]) => plan_text(&shared.exchange, plan),
        (&Method::PUT, ["", "v1", "rollout", "plans", plan, "reports", asked]) => {
            match own_hub(hub, asked) {
                Ok(()) => {
                    let collected = tokio::time::timeout(
                        EXCHANGE_TIMEOUT,
                        Limited::new(body, MAX_DOCUMENT_BYTES).collect(),
                    )
                    .await;
                    match collected {
                        Ok(Ok(collected)) => {
                            store_report(&shared.exchange, plan, hub, &collected.to_bytes())
                        }
                        Ok(Err(_)) => Err((
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("a report is at most {MAX_DOCUMENT_BYTES} bytes"),
                        )),
                        Err(_) => Err((
                            StatusCode::REQUEST_TIMEOUT,
                            format!(
                                "the report did not arrive within {} s",
                                EXCHANGE_TIMEOUT.as_secs()
                            ),
                        )),
                    }
                }
                Err(refusal) => Err(refusal),
            }
        }
        (_, ["", "v1", "rollout", ..]) => Err((
            StatusCode::NOT_FOUND,
            "no such rollout document or method".to_owned(),
        )),
        _ => Err((
            StatusCode::NOT_FOUND,
            "not a rollout exchange path".to_owned(),
        )),
    };
    match answer {
        Ok((status, content_type, body)) => response(status, content_type, body),
        Err((status, sentence)) => {
            tracing::info!(%hub, path = parts.uri.path(), %status, "rollout exchange refused: {sentence}");
            plain(status, sentence.into_bytes())
        }
    }
}

fn plain(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    response(status, "text/plain; charset=utf-8", body)
}

fn response(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

type Answer = Result<(StatusCode, &'static str, Vec<u8>), (StatusCode, String)>;

fn own_hub(hub: &str, asked: &str) -> Result<(), (StatusCode, String)> {
    if hub == asked {
        return Ok(());
    }
    Err((
        StatusCode::FORBIDDEN,
        format!("the certificate is hub {hub}'s; it may not read or write hub {asked}'s documents"),
    ))
}

fn instructions(exchange: &DirectoryExchange, hub: &str) -> Answer {
    let found = exchange.instructions_for(hub).map_err(internal)?;
    let valid: Vec<_> = found
        .into_iter()
        .filter_map(|instruction| {
            instruction
                .map_err(|error| tracing::warn!(%error, "a stored instruction is not served"))
                .ok()
        })
        .collect();
    let body = serde_json::to_vec(&valid).expect("instructions always encode as JSON");
    Ok((StatusCode::OK, "application/json", body))
}

fn plan_text(exchange: &DirectoryExchange, plan: &str) -> Answer {
    match exchange.read_plan(plan) {
        Ok(Some(text)) => Ok((StatusCode::OK, "application/toml", text.into_bytes())),
        Ok(None) => Err((StatusCode::NOT_FOUND, format!("there is no plan {plan:?}"))),
        Err(ExchangeError::BadName(name)) => Err(bad_name(&name)),
        Err(error) => Err(internal(error)),
    }
}

fn store_report(exchange: &DirectoryExchange, plan: &str, hub: &str, body: &[u8]) -> Answer {
    match exchange.read_plan(plan) {
        Ok(Some(_)) => {}
        Ok(None) => return Err((StatusCode::NOT_FOUND, format!("there is no plan {plan:?}"))),
        Err(ExchangeError::BadName(name)) => return Err(bad_name(&name)),
        Err(error) => return Err(internal(error)),
    }
    let report = parse_report(body, plan, hub).map_err(|error| {
        let sentence = error.to_string();
        (
            StatusCode::BAD_REQUEST,
            sentence.trim_start_matches(": ").to_owned(),
        )
    })?;
    exchange.write_report(&report).map_err(internal)?;
    tracing::info!(%hub, %plan, outcome = ?report.outcome, "rollout report received");
    Ok((
        StatusCode::NO_CONTENT,
        "text/plain; charset=utf-8",
        Vec::new(),
    ))
}

fn bad_name(name: &str) -> (StatusCode, String) {
    (
        StatusCode::BAD_REQUEST,
        format!("{name:?} is not a plan or hub name"),
    )
}

fn internal(error: ExchangeError) -> (StatusCode, String) {
    tracing::error!(%error, "rollout exchange: the directory failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "the coordinator could not read or write its exchange".to_owned(),
    )
}
