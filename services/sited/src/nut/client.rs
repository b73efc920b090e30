//! A reading client of one upsd: one TCP connection kept open between polls, `LIST VAR <ups>`
//! per poll under a deadline, and reconnection with backoff when the connection breaks. Any
//! failure drops the connection (a half-read reply would desynchronise the next one), so the
//! next poll starts clean.
//!
//! Reads need no login; when credentials are configured the client sends `USERNAME` and
//! `PASSWORD` after connecting (upsd then counts it among the UPS's clients, which some sites
//! want to see in `upsc -c`).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::protocol::{self, Line, ListVarReply, NutError, Progress, ProtocolError, VarList};
use crate::sensor::LostReason;

/// Wait after the first failed connection; doubles per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between connection attempts, so a restarted upsd is seen within seconds.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// `USERNAME` and `PASSWORD` for upsd (`upsd.users`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Why one poll got no variables.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to upsd at {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("not reconnecting to upsd at {address} for another {wait:?} (backoff)")]
    BackingOff { address: String, wait: Duration },
    #[error("the connection to upsd broke: {0}")]
    Io(#[from] std::io::Error),
    #[error("upsd closed the connection")]
    Closed,
    #[error("upsd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("upsd answered: {0}")]
    Server(NutError),
    #[error("upsd's reply is malformed: {0}")]
    Protocol(#[from] ProtocolError),
}

impl ClientError {
    /// What the UPS's sensors are lost for.
    pub fn lost_reason(&self) -> LostReason {
        match self {
            ClientError::Timeout(_) => LostReason::Timeout,
            ClientError::Connect { .. }
            | ClientError::BackingOff { .. }
            | ClientError::Io(_)
            | ClientError::Closed => LostReason::Unreachable {
                detail: self.to_string(),
            },
            ClientError::Server(error) if error.is_stale() => LostReason::Stale,
            ClientError::Server(error) => LostReason::Refused {
                detail: error.to_string(),
            },
            ClientError::Protocol(error) => LostReason::Malformed {
                detail: error.to_string(),
            },
        }
    }
}

/// A client of one upsd.
#[derive(Debug)]
pub struct NutClient {
    address: String,
    credentials: Option<Credentials>,
    deadline: Duration,
    connection: Option<BufReader<TcpStream>>,
    /// Consecutive failed connection attempts, and when the next one may start.
    failures: u32,
    next_attempt: Option<Instant>,
}

impl NutClient {
    /// `address` is `HOST:PORT`; `deadline` bounds each poll, connecting included.
    pub fn new(
        address: impl Into<String>,
        credentials: Option<Credentials>,
        deadline: Duration,
    ) -> NutClient {
        NutClient {
            address: address.into(),
            credentials,
            deadline,
            connection: None,
            failures: 0,
            next_attempt: None,
        }
    }

    /// Whether a connection is open (for tests and status).
    pub fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// `LIST VAR <ups>`: every variable upsd holds for the UPS.
    pub async fn list_vars(&mut self, ups: &str) -> Result<VarList, ClientError> {
        let deadline = self.deadline;
        let result = tokio::time::timeout(deadline, self.list_vars_unbounded(ups))
            .await
            .unwrap_or(Err(ClientError::Timeout(deadline)));
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    async fn list_vars_unbounded(&mut self, ups: &str) -> Result<VarList, ClientError> {
        if self.connection.is_none() {
            self.connect().await?;
        }
        let connection = self.connection.as_mut().ok_or(ClientError::Closed)?;
        send(connection, &format!("LIST VAR {}\n", protocol::quote(ups))).await?;
        let mut reply = ListVarReply::new(ups);
        let mut line = Vec::new();
        loop {
            read_line(connection, &mut line).await?;
            match reply.feed(&line)? {
                Progress::More => {}
                Progress::Done(vars) => return Ok(vars),
                Progress::Refused(error) => return Err(ClientError::Server(error)),
            }
        }
    }

    /// Opens the connection (and logs in), unless the backoff after earlier failures says wait.
    async fn connect(&mut self) -> Result<(), ClientError> {
        let now = Instant::now();
        if let Some(at) = self.next_attempt.filter(|&at| at > now) {
            return Err(ClientError::BackingOff {
                address: self.address.clone(),
                wait: at - now,
            });
        }
        match TcpStream::connect(&self.address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let mut connection = BufReader::new(stream);
                if let Some(credentials) = &self.credentials {
                    login(&mut connection, credentials).await?;
                }
                self.failures = 0;
                self.next_attempt = None;
                self.connection = Some(connection);
                tracing::debug!(address = %self.address, "connected to upsd");
                Ok(())
            }
            Err(source) => {
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << self.failures.min(8))
                    .min(MAX_BACKOFF);
                self.failures = self.failures.saturating_add(1);
                self.next_attempt = Some(now + backoff);
                Err(ClientError::Connect {
                    address: self.address.clone(),
                    source,
                })
            }
        }
    }
}

async fn login(
    connection: &mut BufReader<TcpStream>,
    credentials: &Credentials,
) -> Result<(), ClientError> {
    let mut line = Vec::new();
    for command in [
        format!("USERNAME {}\n", protocol::quote(&credentials.username)),
        format!("PASSWORD {}\n", protocol::quote(&credentials.password)),
    ] {
        send(connection, &command).await?;
        read_line(connection, &mut line).await?;
        match protocol::parse_line(&line)? {
            Line::Ok => {}
            Line::Err(error) => return Err(ClientError::Server(error)),
            _ => {
                return Err(ClientError::Protocol(ProtocolError::Unexpected {
                    expected: "`OK` or `ERR`".into(),
                    got: "another reply".into(),
                }));
            }
        }
    }
    Ok(())
}

async fn send(connection: &mut BufReader<TcpStream>, command: &str) -> std::io::Result<()> {
    connection.get_mut().write_all(command.as_bytes()).await
}

/// Reads one line into `line` (newline removed), refusing lines longer than upsd sends.
async fn read_line(
    connection: &mut BufReader<TcpStream>,
    line: &mut Vec<u8>,
) -> Result<(), ClientError> {
    line.clear();
    loop {
        let buffer = connection.fill_buf().await?;
        if buffer.is_empty() {
            return Err(ClientError::Closed);
        }
        let (taken, complete) = match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => (end + 1, true),
            None => (buffer.len(), false),
        };
        let content = if complete { taken - 1 } else { taken };
        if line.len() + content > protocol::MAX_LINE_BYTES {
            return Err(ProtocolError::LineTooLong.into());
        }
        line.extend_from_slice(&buffer[..content]);
        connection.consume(taken);
        if complete {
            return Ok(());
        }
    }
}
