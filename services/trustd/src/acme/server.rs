//! The HTTPS listener: TLS 1.3 (rustls, aws-lc-rs) and HTTP/1.1 (hyper) in front of
//! [`AcmeService`].
//!
//! This is the one BunkerOS network listener that does not demand a client certificate: ACME
//! clients are authenticated per request by their account key's JWS signature (RFC 8555 §6.2),
//! and a device asking for its first certificate has no certificate to present. The server's
//! own certificate is issued by the site CA (profile `service`), so clients trust it through
//! the site root like every other site service.
//!
//! Each connection is bounded: a TLS handshake and request headers must arrive within
//! [`HANDSHAKE_TIMEOUT`], bodies are cut at [`MAX_JWS_BYTES`], and at most
//! [`MAX_CONNECTIONS`] connections are served at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use appliance::state::StateDir;
use appliance::tls::Identity;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use rustls::ServerConfig;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::backend::AcmeBackend;
use super::config::{AcmeConfig, ConfigError};
use super::jws::MAX_JWS_BYTES;
use super::problem::Problem;
use super::service::{AcmeResponse, AcmeService};
use super::store::{AcmeStore, StoreError};
use crate::ca::DnsName;

/// Time allowed for the TLS handshake, and for request headers.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 512;

/// Why the ACME server could not start.
#[derive(Debug, thiserror::Error)]
pub enum AcmeServerError {
    /// The configuration is refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The accounts could not be loaded.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address could not be bound.
    #[error("cannot listen for ACME on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// rustls refused the TLS configuration.
    #[error("cannot build the ACME TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// A bound ACME listener, ready to serve.
pub struct AcmeServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    acceptor: TlsAcceptor,
    service: Arc<AcmeService>,
}

impl std::fmt::Debug for AcmeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl AcmeServer {
    /// Binds `config.listen`, loads the accounts from `state`, and prepares TLS with
    /// `identity` (the server certificate the site CA issued, e.g. for `acme.<site>`).
    /// Profiles are chosen for names under `site`; `backend` issues and revokes.
    pub async fn bind(
        config: AcmeConfig,
        site: &DnsName,
        identity: &Identity,
        backend: Arc<dyn AcmeBackend>,
        state: StateDir,
    ) -> Result<Self, AcmeServerError> {
        config.validate()?;
        let store = AcmeStore::open(state, config.limits.max_nonces)?;
        let addr = config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AcmeServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| AcmeServerError::Bind { addr, source })?;
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("https://{local_addr}"));
        let acceptor = TlsAcceptor::from(Arc::new(tls_config(identity)?));
        let service = AcmeService::new(config, base_url, site, store, backend)?;
        Ok(Self {
            listener,
            local_addr,
            acceptor,
            service,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The directory URL clients are configured with.
    pub fn directory_url(&self) -> String {
        self.service.directory_url()
    }

    /// The protocol engine (status, tests).
    pub fn service(&self) -> &Arc<AcmeService> {
        &self.service
    }

    /// Serves until `cancel` fires, then lets requests in flight finish (briefly).
    pub async fn serve(self, cancel: CancellationToken) {
        tracing::info!(directory = %self.directory_url(), "ACME server listening");
        let (acceptor, service) = (self.acceptor, self.service);
        appliance::http::serve_listener(
            self.listener,
            MAX_CONNECTIONS,
            &cancel.clone(),
            "ACME",
            |stream| {
                serve_connection(
                    stream,
                    acceptor.clone(),
                    Arc::clone(&service),
                    cancel.clone(),
                )
            },
        )
        .await;
    }
}

/// TLS 1.3 only, no client certificates (see the module documentation), HTTP/1.1 by ALPN.
fn tls_config(identity: &Identity) -> Result<ServerConfig, rustls::Error> {
    let certified = CertifiedKey::new(identity.chain().to_vec(), Arc::clone(identity.key()));
    let mut config = ServerConfig::builder_with_provider(appliance::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

async fn serve_connection(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    service: Arc<AcmeService>,
    cancel: CancellationToken,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "ACME: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("ACME: TLS handshake timed out");
            return;
        }
    };
    let handler = service_fn(move |request: Request<Incoming>| {
        let service = Arc::clone(&service);
        async move { Ok::<_, Infallible>(handle(&service, request).await) }
    });
    appliance::http::serve_connection(tls, handler, HANDSHAKE_TIMEOUT, &cancel, "ACME").await;
}

/// Reads the request (body bounded) and turns the engine's answer into a hyper response.
async fn handle(service: &Arc<AcmeService>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let content_type = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let response = match Limited::new(body, MAX_JWS_BYTES).collect().await {
        Ok(collected) => {
            let body = collected.to_bytes();
            service
                .handle(
                    &parts.method,
                    parts.uri.path(),
                    content_type.as_deref(),
                    &body,
                )
                .await
        }
        Err(_) => service.problem_response(
            &Problem::malformed(format!(
                "the request body is unreadable or larger than {MAX_JWS_BYTES} bytes"
            ))
            .with_status(413),
            true,
        ),
    };
    to_hyper(response)
}

fn to_hyper(response: AcmeResponse) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(*name, value);
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "ACME: cannot build a response");
            let mut fallback = Response::new(Full::new(Bytes::new()));
            *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}
