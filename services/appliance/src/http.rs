//! Serving HTTP/1.1 with hyper, the same way for every BunkerOS listener: at most a bounded
//! number of connections at once ([`serve_listener`]), headers within a deadline so a slow client
//! cannot hold a connection open ([`serve_connection`]), and on stop the requests in flight finish
//! (briefly) before the connections close.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long a stop waits for connections in flight before cutting them off.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections on `listener` until `cancel` fires, handing each to `connection` as its
/// own task, at most `max_connections` at once (further clients wait in the kernel's backlog).
/// On stop, connections in flight get a few seconds to finish, then are cut off. `name` names
/// the listener in log lines.
pub async fn serve_listener<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    cancel: &CancellationToken,
    name: &str,
    mut connection: F,
) where
    F: FnMut(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            () = cancel.cancelled() => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let served = connection(stream);
                    connections.spawn(async move {
                        served.await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "{name}: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("{name}: cutting off connections still running at stop");
        connections.abort_all();
    }
}

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
