//! One Modbus TCP connection to a bus's device, as the poller and the relays use it: connected
//! on demand with a deadline, every request under a deadline, and dropped after any transport
//! failure (a late answer would otherwise be taken for the next request's). Reconnecting after a
//! failed connect backs off exponentially, so a dead device is not hammered every poll.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_modbus::client::{Client, Context, tcp};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::{ExceptionCode, Request, Response, Slave};

use crate::sensor::LostReason;

/// Why a request got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No answer (or no connection) within the deadline.
    #[error("no answer within the deadline")]
    Timeout,
    /// The device could not be reached, or closed the connection.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The device answered with a Modbus exception.
    #[error("the device refused with exception {}", exception_name(*.0))]
    Refused(ExceptionCode),
    /// The answer was not Modbus, or not an answer to the request.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

impl Failure {
    /// How a sensor read through this request is reported lost.
    pub fn lost_reason(&self) -> LostReason {
        match self {
            Failure::Timeout => LostReason::Timeout,
            Failure::Unreachable(detail) => LostReason::Unreachable {
                detail: detail.clone(),
            },
            Failure::Refused(code) => LostReason::Refused {
                detail: exception_name(*code),
            },
            Failure::Malformed(detail) => LostReason::Malformed {
                detail: detail.clone(),
            },
        }
    }

    /// Whether trying again soon may succeed: the device was busy, or the connection failed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Failure::Refused(code) => {
                matches!(
                    code,
                    ExceptionCode::ServerDeviceBusy | ExceptionCode::Acknowledge
                )
            }
            _ => true,
        }
    }
}

/// The exception's name as the Modbus specification gives it, with its code:
/// `IllegalDataAddress (0x02)`.
pub fn exception_name(code: ExceptionCode) -> String {
    let name = match code {
        ExceptionCode::IllegalFunction => "IllegalFunction",
        ExceptionCode::IllegalDataAddress => "IllegalDataAddress",
        ExceptionCode::IllegalDataValue => "IllegalDataValue",
        ExceptionCode::ServerDeviceFailure => "ServerDeviceFailure",
        ExceptionCode::Acknowledge => "Acknowledge",
        ExceptionCode::ServerDeviceBusy => "ServerDeviceBusy",
        ExceptionCode::MemoryParityError => "MemoryParityError",
        ExceptionCode::GatewayPathUnavailable => "GatewayPathUnavailable",
        ExceptionCode::GatewayTargetDevice => "GatewayTargetDevice",
        ExceptionCode::Custom(_) => "Unknown",
    };
    format!("{name} (0x{:02X})", u8::from(code))
}

/// A connection to one device, made when needed.
pub(crate) struct Link {
    address: String,
    deadline: Duration,
    backoff_first: Duration,
    backoff_max: Duration,
    context: Option<Context>,
    /// After a failed connect: when to try again, how long the next wait is, and the failure
    /// to report until then.
    backoff: Option<(Instant, Duration, Failure)>,
}

impl Link {
    /// `backoff_first` is the wait after the first failed connect; it doubles up to
    /// `backoff_max` while connecting keeps failing.
    pub(crate) fn new(
        address: String,
        deadline: Duration,
        backoff_first: Duration,
        backoff_max: Duration,
    ) -> Link {
        Link {
            address,
            deadline,
            backoff_first,
            backoff_max: backoff_max.max(backoff_first),
            context: None,
            backoff: None,
        }
    }

    /// Whether a connection is up (after a failure: whether the device still answered).
    pub(crate) fn is_connected(&self) -> bool {
        self.context.is_some()
    }

    /// Sends `request` to `unit` and returns the device's answer (checked by tokio-modbus to
    /// answer this request: same transaction, unit and function).
    pub(crate) async fn call(
        &mut self,
        unit: u8,
        request: Request<'_>,
    ) -> Result<Response, Failure> {
        let mut context = match self.context.take() {
            Some(context) => context,
            None => self.connect().await?,
        };
        context.set_slave(Slave(unit));
        let answer = timeout(self.deadline, context.call(request)).await;
        let failure = match answer {
            Ok(Ok(answer)) => {
                // The device answered this request: the connection stays good.
                self.context = Some(context);
                return answer.map_err(Failure::Refused);
            }
            Ok(Err(tokio_modbus::Error::Protocol(error))) => Failure::Malformed(error.to_string()),
            Ok(Err(tokio_modbus::Error::Transport(error))) => transport_failure(&error),
            Err(_) => Failure::Timeout,
        };
        tracing::debug!(address = %self.address, %failure, "dropping the Modbus connection");
        Err(failure)
    }

    async fn connect(&mut self) -> Result<Context, Failure> {
        let now = Instant::now();
        if let Some((retry_at, _, failure)) = &self.backoff
            && now < *retry_at
        {
            return Err(failure.clone());
        }
        match timeout(self.deadline, TcpStream::connect(self.address.as_str())).await {
            Ok(Ok(stream)) => {
                // Requests are small and each waits for its answer: do not batch them.
                let _ = stream.set_nodelay(true);
                self.backoff = None;
                tracing::debug!(address = %self.address, "Modbus connection up");
                Ok(tcp::attach(stream))
            }
            Ok(Err(error)) => {
                Err(self.connect_failed(now, Failure::Unreachable(error.to_string())))
            }
            Err(_) => Err(self.connect_failed(now, Failure::Timeout)),
        }
    }

    fn connect_failed(&mut self, now: Instant, failure: Failure) -> Failure {
        let wait = match &self.backoff {
            Some((_, previous, _)) => (*previous * 2).min(self.backoff_max),
            None => self.backoff_first,
        };
        tracing::debug!(address = %self.address, %failure, ?wait, "Modbus connect failed");
        self.backoff = Some((now + wait, wait, failure.clone()));
        failure
    }
}

fn transport_failure(error: &io::Error) -> Failure {
    match error.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
            Failure::Malformed(error.to_string())
        }
        // tokio-modbus reports a connection closed by the device as the last OS error, which
        // is often no error at all.
        _ if error.raw_os_error() == Some(0) => {
            Failure::Unreachable("the device closed the connection".into())
        }
        _ => Failure::Unreachable(error.to_string()),
    }
}
