//! A hub's side: reads its instructions and the plans from the coordinator, writes its
//! reports there; every call is one short mutual-TLS connection through hubd's listener.

use std::net::SocketAddr;
use std::sync::Arc;

use appliance::tls::PinnedRoot;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{EXCHANGE_TIMEOUT, ExchangeCertificate, instructions_path, plan_path, report_path};
use crate::rollout::exchange::{ExchangeError, MAX_DOCUMENT_BYTES, parse_instructions};
use crate::rollout::messages::{Instruction, Report};
use crate::rollout::plan::MAX_PLAN_BYTES;

/// Why a call to the coordinator did not go through.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("no certificate to present to the coordinator: {0}")]
    NoCertificate(String),
    #[error("cannot reach the coordinator's exchange at {address}: {detail}")]
    Unreachable { address: SocketAddr, detail: String },
    #[error("the coordinator's exchange did not answer within {} s", EXCHANGE_TIMEOUT.as_secs())]
    Timeout,
    #[error("the coordinator refused {path} (HTTP {status}): {sentence}")]
    Refused {
        path: String,
        status: u16,
        sentence: String,
    },
    #[error("the coordinator's answer to {path}: {detail}")]
    BadAnswer { path: String, detail: String },
    #[error(transparent)]
    Document(#[from] ExchangeError),
}

/// The coordinator's exchange, as one hub reaches it.
#[derive(Debug, Clone)]
pub struct CoordinatorExchange {
    hub: String,
    address: SocketAddr,
    server_name: ServerName<'static>,
    root: PinnedRoot,
    certificate: Arc<ExchangeCertificate>,
}

impl CoordinatorExchange {
    /// `hub` is this hub; `address` is hubd's local listener for the coordinator's exchange;
    /// the coordinator's certificate must chain to `root` and name `server_name`.
    pub fn new(
        hub: impl Into<String>,
        address: SocketAddr,
        server_name: ServerName<'static>,
        root: PinnedRoot,
        certificate: Arc<ExchangeCertificate>,
    ) -> CoordinatorExchange {
        CoordinatorExchange {
            hub: hub.into(),
            address,
            server_name,
            root,
            certificate,
        }
    }

    /// This hub's instructions, across the coordinator's plans.
    pub async fn instructions(
        &self,
    ) -> Result<Vec<Result<Instruction, ExchangeError>>, RemoteError> {
        let path = instructions_path(&self.hub);
        let body = self
            .call(Method::GET, &path, None, MAX_DOCUMENT_BYTES * 16)
            .await?
            .ok_or_else(|| RemoteError::BadAnswer {
                path: path.clone(),
                detail: "no instructions list".to_owned(),
            })?;
        parse_instructions(&body, &self.hub).map_err(|error| RemoteError::BadAnswer {
            path,
            detail: error.to_string(),
        })
    }

    /// The plan's text, `None` when the coordinator has no such plan.
    pub async fn plan(&self, plan_id: &str) -> Result<Option<String>, RemoteError> {
        let path = plan_path(plan_id);
        let Some(body) = self.call(Method::GET, &path, None, MAX_PLAN_BYTES).await? else {
            return Ok(None);
        };
        String::from_utf8(body)
            .map(Some)
            .map_err(|_| RemoteError::BadAnswer {
                path,
                detail: "the plan is not UTF-8 text".to_owned(),
            })
    }

    /// Writes this hub's report into the coordinator's exchange.
    pub async fn write_report(&self, report: &Report) -> Result<(), RemoteError> {
        let path = report_path(&report.plan_id, &report.hub);
        let body = serde_json::to_vec(report).expect("reports always encode as JSON");
        self.call(Method::PUT, &path, Some(body), MAX_DOCUMENT_BYTES)
            .await?
            .map(|_| ())
            .ok_or(RemoteError::Refused {
                path,
                status: 404,
                sentence: "the coordinator has no such plan".to_owned(),
            })
    }

    /// One request on its own connection; `None` for 404 (no such plan), the body for 2xx,
    /// else an error with the coordinator's sentence.
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        let exchange = async {
            let unreachable = |detail: String| RemoteError::Unreachable {
                address: self.address,
                detail,
            };
            let identity = self
                .certificate
                .identity()
                .map_err(RemoteError::NoCertificate)?;
            let mut config = appliance::tls::client_config(&identity, &self.root)
                .map_err(|e| unreachable(e.to_string()))?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let tcp = TcpStream::connect(self.address)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let tls = TlsConnector::from(Arc::new(config))
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| unreachable(format!("TLS: {e}")))?;
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let connection = tokio::spawn(connection);
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header(HOST, self.server_name.to_str().into_owned())
                .header(
                    USER_AGENT,
                    concat!("bunkeros-updated/", env!("CARGO_PKG_VERSION")),
                )
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|_| ExchangeError::BadName(path.to_owned()))?;
            let answer = async {
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| unreachable(e.to_string()))?;
                let status = response.status();
                let bytes = Limited::new(response.into_body(), limit)
                    .collect()
                    .await
                    .map_err(|e| RemoteError::BadAnswer {
                        path: path.to_owned(),
                        detail: format!("unreadable or larger than {limit} bytes: {e}"),
                    })?
                    .to_bytes()
                    .to_vec();
                Ok(match status {
                    s if s.is_success() => Some(bytes),
                    StatusCode::NOT_FOUND => None,
                    s => {
                        return Err(RemoteError::Refused {
                            path: path.to_owned(),
                            status: s.as_u16(),
                            sentence: String::from_utf8_lossy(&bytes).into_owned(),
                        });
                    }
                })
            }
            .await;
            connection.abort();
            answer
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
            .await
            .map_err(|_| RemoteError::Timeout)?
    }
}
