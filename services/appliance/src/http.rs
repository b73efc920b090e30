//! Serving one HTTP/1.1 connection with hyper, the same way for every BunkerOS listener: headers
//! must arrive within a deadline (a slow client cannot hold a connection open), and a stop lets
//! the request in flight finish before the connection closes.

use std::error::Error as StdError;
use std::pin::pin;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

/// Serves `service` on `io` until the client closes or `cancel` fires (then gracefully).
/// `listener` names the listener in the debug log line of a connection that ended with an error.
pub async fn serve_connection<I, S>(
    io: I,
    service: S,
    header_read_timeout: Duration,
    cancel: &CancellationToken,
    listener: &str,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming>,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as Body>::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let mut connection = pin!(builder.serve_connection(TokioIo::new(io), service));
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "{listener}: connection ended with an error");
    }
}
