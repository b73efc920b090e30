//! The read-only HTTP listener: what relying parties fetch without being on the appliance.
//!
//! | path | body |
//! |---|---|
//! | `GET /crl` | the current CRL, DER (`application/pkix-crl`) |
//! | `GET /crl.pem` | the same, PEM |
//! | `GET /root.pem` | the root certificate relying parties pin |
//! | `GET /log/tree-head` | a signed tree head covering the transparency log (JSON) |
//! | `GET /log/proof?index=N` | a proof bundle for log entry N (JSON; `bunkerctl ca log verify`) |
//!
//! Plain HTTP on purpose, and an exception to "every network listener requires mutual TLS":
//! everything here is public by nature (a CRL must be fetchable by anyone who checks a
//! certificate, and the log exists so that anyone can audit it) and is signed by the CA key, so
//! TLS would add no trust, and relying parties that validate a certificate must be able to
//! fetch its CRL before they trust anything. Nothing here changes state; the only TPM work a
//! request can cause is signing a tree head over entries not yet covered, at most once per
//! issued certificate. The listener is on loopback unless the site configures an address.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::authority::{Authority, AuthorityError};

/// A client that has not sent its request headers by then is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;

/// What a request asks for, decided from the request line alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/crl`
    CrlDer,
    /// `/crl.pem`
    CrlPem,
    /// `/root.pem`
    RootPem,
    /// `/log/tree-head`
    TreeHead,
    /// `/log/proof?index=N`
    Proof(u64),
    /// A known path with a bad query.
    BadQuery(&'static str),
    /// A known path with a method other than GET.
    MethodNotAllowed,
    /// Anything else.
    NotFound,
}

/// Routes a request line.
pub fn route(method: &Method, path: &str, query: Option<&str>) -> Route {
    let known = matches!(
        path,
        "/crl" | "/crl.pem" | "/root.pem" | "/log/tree-head" | "/log/proof"
    );
    if !known {
        return Route::NotFound;
    }
    if method != Method::GET {
        return Route::MethodNotAllowed;
    }
    match path {
        "/crl" => Route::CrlDer,
        "/crl.pem" => Route::CrlPem,
        "/root.pem" => Route::RootPem,
        "/log/tree-head" => Route::TreeHead,
        _ => match query.and_then(|q| q.strip_prefix("index=")).map(str::parse) {
            Some(Ok(index)) => Route::Proof(index),
            _ => Route::BadQuery("give the log index as /log/proof?index=N\n"),
        },
    }
}

/// A bound, not yet serving, listener.
#[derive(Debug)]
pub struct PublicHttp {
    listener: TcpListener,
    local_addr: SocketAddr,
    authority: Arc<Authority>,
}

impl PublicHttp {
    /// Binds `addr` (before `READY=1`, so a port clash stops the start with a clear error).
    pub async fn bind(addr: SocketAddr, authority: Arc<Authority>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            authority,
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `cancel` fires, then lets requests in flight finish (briefly).
    pub async fn serve(self, cancel: CancellationToken) {
        let authority = self.authority;
        appliance::http::serve_listener(
            self.listener,
            MAX_CONNECTIONS,
            &cancel.clone(),
            "HTTP listener",
            |stream| serve_connection(stream, Arc::clone(&authority), cancel.clone()),
        )
        .await;
    }
}

async fn serve_connection(stream: TcpStream, authority: Arc<Authority>, cancel: CancellationToken) {
    let service = service_fn(move |request: Request<Incoming>| {
        let route = route(
            request.method(),
            request.uri().path(),
            request.uri().query(),
        );
        let authority = Arc::clone(&authority);
        async move {
            let response = tokio::task::spawn_blocking(move || respond(route, &authority))
                .await
                .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"));
            Ok::<_, Infallible>(response)
        }
    });
    appliance::http::serve_connection(
        stream,
        service,
        HEADER_READ_TIMEOUT,
        &cancel,
        "HTTP listener",
    )
    .await;
}

/// The response for `route` (blocking: may read the store or sign a tree head).
fn respond(route: Route, authority: &Authority) -> Response<Full<Bytes>> {
    match route {
        Route::CrlDer => match authority.crl_der() {
            Some(der) => body(der, "application/pkix-crl"),
            None => text(StatusCode::NOT_FOUND, "no CRL has been signed yet\n"),
        },
        Route::CrlPem => match authority.crl_pem() {
            Some(pem) => body(pem.into_bytes(), "application/x-pem-file"),
            None => text(StatusCode::NOT_FOUND, "no CRL has been signed yet\n"),
        },
        Route::RootPem => match authority.root_pem() {
            Some(pem) => body(pem.into_bytes(), "application/x-pem-file"),
            None => text(StatusCode::NOT_FOUND, "the CA has no certificate yet\n"),
        },
        Route::TreeHead => {
            let head = authority
                .signed_tree_head()
                .or_else(|error| authority.latest_tree_head()?.ok_or(error));
            match head {
                Ok(head) => json(head.to_json()),
                Err(error) => refusal(&error),
            }
        }
        Route::Proof(index) => {
            let size = match authority.status() {
                Ok(status) => status.log_size,
                Err(error) => return refusal(&error),
            };
            if index >= size {
                return text(
                    StatusCode::NOT_FOUND,
                    "there is no such entry in the transparency log\n",
                );
            }
            match authority.proof_bundle(Some(index), None) {
                Ok(bundle) => json(bundle.to_json()),
                Err(error) => refusal(&error),
            }
        }
        Route::BadQuery(message) => text(StatusCode::BAD_REQUEST, message),
        Route::MethodNotAllowed => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET is allowed\n");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET"));
            response
        }
        Route::NotFound => text(
            StatusCode::NOT_FOUND,
            "not found; trustd serves /crl, /crl.pem, /root.pem, /log/tree-head and /log/proof?index=N\n",
        ),
    }
}

fn refusal(error: &AuthorityError) -> Response<Full<Bytes>> {
    tracing::warn!(%error, "HTTP listener: request refused");
    let message = format!("{error}\n");
    let mut response = Response::new(Full::new(Bytes::from(message)));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn body(bytes: Vec<u8>, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn json(text: String) -> Response<Full<Bytes>> {
    body(text.into_bytes(), "application/json")
}

fn text(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(message.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_path_method_and_query() {
        let get = Method::GET;
        assert_eq!(route(&get, "/crl", None), Route::CrlDer);
        assert_eq!(route(&get, "/crl.pem", None), Route::CrlPem);
        assert_eq!(route(&get, "/root.pem", None), Route::RootPem);
        assert_eq!(route(&get, "/log/tree-head", None), Route::TreeHead);
        assert_eq!(
            route(&get, "/log/proof", Some("index=12")),
            Route::Proof(12)
        );
        assert!(matches!(
            route(&get, "/log/proof", Some("index=-1")),
            Route::BadQuery(_)
        ));
        assert!(matches!(
            route(&get, "/log/proof", None),
            Route::BadQuery(_)
        ));
        assert_eq!(route(&Method::POST, "/crl", None), Route::MethodNotAllowed);
        assert_eq!(route(&get, "/admin", None), Route::NotFound);
        assert_eq!(route(&Method::DELETE, "/admin", None), Route::NotFound);
    }
}
