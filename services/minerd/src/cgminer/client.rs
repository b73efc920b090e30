//! The cgminer API client: one request per connection, as the firmware expects (it answers
//! one command, then a NUL, then closes). Every step runs under one overall deadline and the
//! reply under a size bound, so a hung, slow or flooding miner costs at most the deadline and
//! a bounded buffer, and never stalls a poll of the rest of the fleet.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::reply::{MAX_REPLY_BYTES, Reply, ReplyError, parse_reply_bounded};
use super::request::Request;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Bound on the TCP connect alone: a miner that does not answer SYN is down or rebooting.
    pub connect_timeout: Duration,
    /// Bound on the whole exchange (connect, write, read to the end).
    pub deadline: Duration,
    pub max_reply_bytes: usize,
}

impl Default for ClientConfig {
    /// pyasic waits 3 s to identify and 5 s per API call; a miner on the site LAN answers in
    /// milliseconds, so tighter bounds keep a poll cycle of 1,000 miners short.
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(1),
            deadline: Duration::from_secs(3),
            max_reply_bytes: MAX_REPLY_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{addr}: no connection within {after:?}")]
    ConnectTimeout { addr: SocketAddr, after: Duration },
    #[error("{addr}: connection refused")]
    Refused { addr: SocketAddr },
    #[error("{addr}: connect: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("{addr}: sending the request: {source}")]
    Write { addr: SocketAddr, source: io::Error },
    #[error("{addr}: reply not complete within {after:?} ({received} bytes received)")]
    ReadTimeout {
        addr: SocketAddr,
        after: Duration,
        received: usize,
    },
    #[error("{addr}: connection closed before any reply")]
    ClosedEarly { addr: SocketAddr },
    #[error("{addr}: reading the reply: {source}")]
    Read { addr: SocketAddr, source: io::Error },
    #[error("{addr}: reply larger than {limit} bytes")]
    TooLarge { addr: SocketAddr, limit: usize },
    #[error("{addr}: {source}")]
    Reply {
        addr: SocketAddr,
        #[source]
        source: ReplyError,
    },
}

/// Sends `request` to the miner at `addr` and parses its reply. Firmware refusals of a
/// command (access denied, invalid command) surface from [`Reply::section`], per command.
pub async fn query(
    addr: SocketAddr,
    request: &Request,
    config: &ClientConfig,
) -> Result<Reply, ClientError> {
    let bytes = exchange(addr, &request.to_json(), config).await?;
    parse_reply_bounded(&request.command_field(), &bytes, config.max_reply_bytes)
        .map_err(|source| ClientError::Reply { addr, source })
}

/// One raw round trip: the reply bytes up to (not including) the first NUL, or to EOF.
pub async fn exchange(
    addr: SocketAddr,
    request: &[u8],
    config: &ClientConfig,
) -> Result<Vec<u8>, ClientError> {
    let started = Instant::now();
    let deadline = started + config.deadline;
    let connect_deadline = deadline.min(started + config.connect_timeout);
    let mut stream = match timeout_at(connect_deadline, TcpStream::connect(addr)).await {
        Err(_) => {
            return Err(ClientError::ConnectTimeout {
                addr,
                after: connect_deadline - started,
            });
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            return Err(ClientError::Refused { addr });
        }
        Ok(Err(source)) => return Err(ClientError::Connect { addr, source }),
        Ok(Ok(s)) => s,
    };
    let read_timeout = |received| ClientError::ReadTimeout {
        addr,
        after: config.deadline,
        received,
    };
    match timeout_at(deadline, stream.write_all(request)).await {
        Err(_) => return Err(read_timeout(0)),
        Ok(Err(source)) => return Err(ClientError::Write { addr, source }),
        Ok(Ok(())) => {}
    }
    let mut reply = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let n = match timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return Err(read_timeout(reply.len())),
            Ok(Err(e)) if is_reset(&e) && reply.is_empty() => {
                return Err(ClientError::ClosedEarly { addr });
            }
            Ok(Err(source)) => return Err(ClientError::Read { addr, source }),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            break;
        }
        let data = &chunk[..n];
        // The NUL ends the reply even if the firmware keeps the socket open.
        let (data, ended) = match data.iter().position(|b| *b == 0) {
            Some(i) => (&data[..i], true),
            None => (data, false),
        };
        if reply.len() + data.len() > config.max_reply_bytes {
            return Err(ClientError::TooLarge {
                addr,
                limit: config.max_reply_bytes,
            });
        }
        reply.extend_from_slice(data);
        if ended {
            break;
        }
    }
    if reply.is_empty() {
        return Err(ClientError::ClosedEarly { addr });
    }
    Ok(reply)
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}
