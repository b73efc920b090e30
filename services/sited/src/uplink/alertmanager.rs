//! Alertmanager's API v2 over HTTPS with mutual TLS: `POST /api/v2/alerts` to deliver,
//! `GET /api/v2/alerts` to read back what it holds (tests, diagnostics).
//!
//! One connection per request: requests are rare (a batch per delivery round, the firing set
//! once a minute), and a fresh connection after an outage never finds a half-dead one.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::notification::Alert;
use super::settings::Endpoint;

/// The most of an answer read (an error message, or the alerts a test reads back).
const MAX_ANSWER: usize = 16 << 20;
/// The most of an error answer quoted in a status line.
const MAX_QUOTED: usize = 200;

/// Why a request did not get through.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {authority} failed: {source}")]
    Tls {
        authority: String,
        source: std::io::Error,
    },
    #[error("HTTP exchange with {authority} failed: {source}")]
    Http {
        authority: String,
        source: hyper::Error,
    },
    #[error("{authority} did not answer within {timeout:?}")]
    Timeout {
        authority: String,
        timeout: Duration,
    },
    /// Alertmanager refused the request as malformed: retrying the same alerts cannot help.
    #[error("Alertmanager refused the alerts as invalid (400): {0}")]
    Refused(String),
    /// Any other answer than success (the wrong URL, a proxy in the way, Alertmanager ill).
    #[error("Alertmanager answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("Alertmanager's answer is not the expected JSON: {0}")]
    Answer(String),
}

/// A client of one Alertmanager.
#[derive(Clone)]
pub struct AlertmanagerClient {
    endpoint: Endpoint,
    tls: Arc<ClientConfig>,
    timeout: Duration,
}

impl AlertmanagerClient {
    /// `tls` is usually [`appliance::tls::client_config`] (the site's identity, the pinned
    /// control-centre CA); `timeout` bounds connecting and each request.
    pub fn new(endpoint: Endpoint, tls: Arc<ClientConfig>, timeout: Duration) -> Self {
        Self {
            endpoint,
            tls,
            timeout,
        }
    }

    /// Delivers `alerts`, in order, in one request.
    pub async fn post_alerts(&self, alerts: &[Alert]) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(alerts).expect("alerts always encode as JSON");
        let (status, answer) = self.request(Method::POST, body).await?;
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::BAD_REQUEST => Err(DeliveryError::Refused(quote(&answer))),
            status => Err(DeliveryError::Status {
                status,
                body: quote(&answer),
            }),
        }
    }

    /// The alerts Alertmanager holds now (active, silenced or inhibited; resolved ones are
    /// not listed), as its JSON objects.
    pub async fn alerts(&self) -> Result<Vec<serde_json::Value>, DeliveryError> {
        let (status, answer) = self.request(Method::GET, Vec::new()).await?;
        if !status.is_success() {
            return Err(DeliveryError::Status {
                status,
                body: quote(&answer),
            });
        }
        serde_json::from_slice(&answer).map_err(|e| DeliveryError::Answer(e.to_string()))
    }

    async fn request(
        &self,
        method: Method,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), DeliveryError> {
        let authority = self.endpoint.authority.clone();
        tokio::time::timeout(self.timeout, self.exchange(method, body))
            .await
            .map_err(|_| DeliveryError::Timeout {
                authority,
                timeout: self.timeout,
            })?
    }

    async fn exchange(
        &self,
        method: Method,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), DeliveryError> {
        let endpoint = &self.endpoint;
        let authority = || endpoint.authority.clone();
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|source| DeliveryError::Connect {
                authority: authority(),
                source,
            })?;
        let tls = TlsConnector::from(Arc::clone(&self.tls))
            .connect(endpoint.server_name.clone(), tcp)
            .await
            .map_err(|source| DeliveryError::Tls {
                authority: authority(),
                source,
            })?;
        let http = |source| DeliveryError::Http {
            authority: authority(),
            source,
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(http)?;
        let driver = tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(format!("{}/api/v2/alerts", endpoint.prefix))
            .header(HOST, &endpoint.authority)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("the request is well-formed");
        let result = async {
            let response = sender.send_request(request).await.map_err(http)?;
            let status = response.status();
            let answer = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| DeliveryError::Answer(e.to_string()))?
                .to_bytes();
            Ok((status, answer))
        }
        .await;
        drop(sender);
        driver.abort();
        result
    }
}

/// The start of an answer, as text for a status line.
fn quote(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    let text = text.trim();
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
