//! The start of a pool connection: `mining.configure` (BIP 310), `mining.subscribe` and
//! `mining.authorize` sent at once, then the pool's answers and first job read in whatever
//! order it sends them. A connection is offered to miners only once all of it is there.

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::directory::SanctionedPool;
use super::upstream::{UpstreamError, VERSION_ROLLING_MASK, write_line};
use crate::stratum::{
    ClientMessage, ClientRequest, ConfigureResult, Job, LineBuffer, MAX_LINE_LEN, MessageError,
    RequestId, ServerMessage, SubscribeResult, VersionRollingRequest,
};

/// The handshake's results, gathered before the connection is offered to miners.
/// `pending_lines` holds what the pool sent after them, for the relay to read first.
pub struct Handshake {
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
    pub version_mask: u32,
    pub difficulty: f64,
    pub first_job: Job,
    pub pending_lines: LineBuffer,
}

/// Sends the three requests and reads until every answer and a first job are in.
pub async fn handshake(
    stream: &mut TcpStream,
    pool: &SanctionedPool,
) -> Result<Handshake, UpstreamError> {
    let requests = [
        ClientRequest::Configure {
            extensions: vec!["version-rolling".into()],
            version_rolling: Some(VersionRollingRequest {
                mask: VERSION_ROLLING_MASK,
                min_bit_count: 2,
            }),
        },
        ClientRequest::Subscribe {
            user_agent: Some(concat!("bunkeros-minerd/", env!("CARGO_PKG_VERSION")).into()),
            session_id: None,
        },
        ClientRequest::Authorize {
            worker: pool.user.clone(),
            password: pool.password.clone(),
        },
    ];
    let mut out = String::new();
    for (i, request) in requests.into_iter().enumerate() {
        out.push_str(
            &ClientMessage {
                id: RequestId::Number(i as u64 + 1),
                request,
            }
            .encode(),
        );
    }
    write_line(stream, &out).await?;
    let mut lines = LineBuffer::new(MAX_LINE_LEN);
    let mut configured: Option<u32> = None;
    let mut subscribed: Option<SubscribeResult> = None;
    let mut authorized = false;
    let mut difficulty = 1.0;
    let mut job: Option<Job> = None;
    let mut buf = [0u8; 4096];
    loop {
        while let Some(line) = lines.next_line() {
            let message = match ServerMessage::parse(&line?) {
                Ok(message) => message,
                // mining.ping, client.show_message and the like: nothing to do yet.
                Err(MessageError::UnknownMethod(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            match message {
                ServerMessage::Response { id, outcome } => match (id, outcome) {
                    (Some(RequestId::Number(1)), Ok(v)) => {
                        configured = Some(
                            ConfigureResult::from_json(&v)?
                                .version_rolling_mask
                                .unwrap_or(0),
                        )
                    }
                    // A pool without BIP 310 refuses configure: no version rolling.
                    (Some(RequestId::Number(1)), Err(_)) => configured = Some(0),
                    (Some(RequestId::Number(2)), Ok(v)) => {
                        subscribed = Some(SubscribeResult::from_json(&v)?)
                    }
                    (Some(RequestId::Number(3)), Ok(Value::Bool(true))) => authorized = true,
                    (Some(RequestId::Number(n @ (2 | 3))), outcome) => {
                        return Err(UpstreamError::Refused {
                            what: if n == 2 {
                                "the subscription"
                            } else {
                                "the pool user"
                            },
                            reason: format!("{outcome:?}"),
                        });
                    }
                    _ => {}
                },
                ServerMessage::SetDifficulty(d) => difficulty = d,
                ServerMessage::SetVersionMask(m) => configured = Some(m),
                ServerMessage::Notify(n) => {
                    job = Some(Job::new(n).map_err(|e| UpstreamError::Refused {
                        what: "a job",
                        reason: e.to_string(),
                    })?)
                }
                ServerMessage::SetExtranonce {
                    extranonce1,
                    extranonce2_size,
                } => {
                    if let Some(s) = subscribed.as_mut() {
                        s.extranonce1 = extranonce1;
                        s.extranonce2_size = extranonce2_size;
                    }
                }
            }
        }
        if let (Some(mask), Some(sub), true, Some(first_job)) =
            (configured, subscribed.as_ref(), authorized, job.as_ref())
        {
            return Ok(Handshake {
                extranonce1: sub.extranonce1.clone(),
                extranonce2_size: sub.extranonce2_size,
                version_mask: mask & VERSION_ROLLING_MASK,
                difficulty,
                first_job: first_job.clone(),
                pending_lines: lines,
            });
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(UpstreamError::Closed);
        }
        lines.extend(&buf[..n]);
    }
}
