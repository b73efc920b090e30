//! One miner's connection to the test pool. `PoolSession` is the protocol without I/O (a line or
//! a pool event in, lines to send out); `serve` moves bytes between it and the socket.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use minerd::stratum::{
    ClientMessage, ClientRequest, ConfigureResult, Job, LineBuffer, MAX_LINE_LEN, MessageError,
    NtimeWindow, RequestId, ServerMessage, Session, StratumError, StratumErrorCode, Submit,
    SubscribeResult,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::stats::RejectReason;
use super::{PoolEvent, Shared};

/// A miner that does not read what it is sent for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Worker names one connection may authorize (proxies put many on one connection; a client
/// authorizing names without end would grow the pool's per-worker counts without end).
const MAX_WORKERS_PER_CONNECTION: usize = 256;

pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    mut events: broadcast::Receiver<PoolEvent>,
    shared: Arc<Shared>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let mut session = PoolSession::new(shared.clone());
    let mut lines = LineBuffer::new(MAX_LINE_LEN);
    let mut buf = vec![0u8; 4096];
    tracing::debug!(%peer, "miner connected");
    'connection: loop {
        let out = tokio::select! {
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => break 'connection,
                    Ok(n) => n,
                };
                lines.extend(&buf[..n]);
                let mut out = Vec::new();
                while let Some(line) = lines.next_line() {
                    let Ok(line) = line else {
                        shared.stats().oversized_lines += 1;
                        tracing::info!(%peer, "line over {MAX_LINE_LEN} bytes: closing");
                        break 'connection;
                    };
                    if !shared.is_silent() {
                        out.extend(session.handle_line(&line));
                    }
                }
                out
            }
            event = events.recv() => match event {
                Ok(PoolEvent::Drop) | Err(RecvError::Closed) => break 'connection,
                Ok(_) | Err(RecvError::Lagged(_)) if shared.is_silent() => Vec::new(),
                Ok(event) => session.handle_event(event),
                // Fell behind the broadcast: the newest job is all that matters.
                Err(RecvError::Lagged(_)) => session.handle_event(PoolEvent::Job(shared.current_job())),
            },
        };
        if !out.is_empty() && send(&mut writer, &out).await.is_err() {
            break;
        }
    }
    shared.stats().connections -= 1;
    tracing::debug!(%peer, "miner disconnected");
}

async fn send(writer: &mut OwnedWriteHalf, lines: &[String]) -> std::io::Result<()> {
    let bytes: String = lines.concat();
    match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(bytes.as_bytes())).await {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// The pool's side of one connection: the validation `Session` plus what it needs to answer.
pub(super) struct PoolSession {
    shared: Arc<Shared>,
    session: Session,
    extranonce1: Option<Vec<u8>>,
    extranonce_subscribed: bool,
    authorized: HashSet<String>,
    /// Jobs flow once the miner has subscribed and authorized.
    receiving_jobs: bool,
    /// The difficulty shares are validated at now, and one sent but not yet in force.
    difficulty: f64,
    pending_difficulty: Option<f64>,
    reissued_jobs: u64,
}

impl PoolSession {
    pub(super) fn new(shared: Arc<Shared>) -> PoolSession {
        PoolSession {
            shared,
            session: Session::new(NtimeWindow::default()),
            extranonce1: None,
            extranonce_subscribed: false,
            authorized: HashSet::new(),
            receiving_jobs: false,
            difficulty: 0.0,
            pending_difficulty: None,
            reissued_jobs: 0,
        }
    }

    pub(super) fn handle_line(&mut self, line: &[u8]) -> Vec<String> {
        match ClientMessage::parse(line) {
            Ok(message) => self.handle_request(message.id, message.request),
            Err(MessageError::UnknownMethod(method)) => {
                self.shared.stats().unknown_methods += 1;
                tracing::debug!(%method, "unknown method");
                vec![error_reply(
                    request_id_of(line),
                    StratumErrorCode::Other,
                    "Unknown method",
                )]
            }
            Err(e) => {
                self.shared.stats().malformed_lines += 1;
                tracing::debug!(error = %e, "malformed line");
                vec![error_reply(
                    request_id_of(line),
                    StratumErrorCode::Other,
                    "Malformed request",
                )]
            }
        }
    }

    fn handle_request(&mut self, id: RequestId, request: ClientRequest) -> Vec<String> {
        match request {
            ClientRequest::Configure {
                version_rolling, ..
            } => {
                // No bit in common: version rolling refused ("version-rolling": false).
                let granted = version_rolling
                    .map(|asked| asked.mask & self.shared.spec.version_mask)
                    .filter(|&mask| mask != 0);
                self.session.set_version_mask(granted.unwrap_or(0));
                let result = ConfigureResult {
                    version_rolling_mask: granted,
                };
                vec![ServerMessage::result(id, result.to_json()).encode()]
            }
            ClientRequest::Subscribe { .. } => self.subscribe(id),
            ClientRequest::ExtranonceSubscribe => {
                self.extranonce_subscribed = true;
                vec![ServerMessage::result(id, json!(true)).encode()]
            }
            ClientRequest::Authorize { worker, .. }
                if self.authorized.len() >= MAX_WORKERS_PER_CONNECTION
                    && !self.authorized.contains(&worker) =>
            {
                let message = "Too many workers on one connection";
                vec![error_reply(
                    Some(id),
                    StratumErrorCode::UnauthorizedWorker,
                    message,
                )]
            }
            ClientRequest::Authorize { worker, .. } => {
                self.session.authorize(&worker);
                self.shared.stats().authorized(&worker);
                self.authorized.insert(worker);
                let mut out = vec![ServerMessage::result(id, json!(true)).encode()];
                out.extend(self.start_jobs());
                out
            }
            ClientRequest::SuggestDifficulty(_) => {
                // The pool sets the difficulty; the suggestion is acknowledged and ignored.
                vec![ServerMessage::result(id, json!(true)).encode()]
            }
            ClientRequest::Submit(share) => vec![self.submit(id, &share)],
        }
    }

    fn subscribe(&mut self, id: RequestId) -> Vec<String> {
        let extranonce1 = self.shared.allocate_extranonce1();
        let size = self.shared.spec.extranonce2_size;
        self.session.subscribe(extranonce1.clone(), size);
        let subscription_id = hex::encode(&extranonce1);
        let result = SubscribeResult {
            subscriptions: vec![
                ("mining.set_difficulty".into(), subscription_id.clone()),
                ("mining.notify".into(), subscription_id),
            ],
            extranonce1: extranonce1.clone(),
            extranonce2_size: size,
        };
        self.extranonce1 = Some(extranonce1);
        let mut out = vec![ServerMessage::result(id, result.to_json()).encode()];
        out.extend(self.start_jobs());
        out
    }

    /// Once subscribed and authorized: the difficulty, then the current job.
    fn start_jobs(&mut self) -> Vec<String> {
        if self.receiving_jobs || self.extranonce1.is_none() || self.authorized.is_empty() {
            return Vec::new();
        }
        self.receiving_jobs = true;
        self.set_difficulty_now(self.shared.difficulty());
        let job = self.shared.current_job();
        self.session.add_job(job.clone());
        vec![
            ServerMessage::SetDifficulty(self.difficulty).encode(),
            ServerMessage::Notify(job.notify.clone()).encode(),
        ]
    }

    fn set_difficulty_now(&mut self, difficulty: f64) {
        if self.session.set_difficulty(difficulty) {
            self.difficulty = difficulty;
        }
    }

    fn submit(&mut self, id: RequestId, share: &Submit) -> String {
        match self.session.submit(share) {
            Ok(accepted) => {
                let rolled = share.version_bits.is_some_and(|bits| bits != 0);
                self.shared.stats().accepted(
                    &share.worker,
                    self.difficulty,
                    rolled,
                    accepted.is_block,
                );
                ServerMessage::result(id, json!(true)).encode()
            }
            Err(reject) => {
                let reason = RejectReason::of(&reject);
                let worker = self
                    .authorized
                    .contains(&share.worker)
                    .then_some(share.worker.as_str());
                self.shared.stats().rejected(worker, reason);
                tracing::debug!(worker = %share.worker, %reject, "share rejected");
                let message = match reason {
                    RejectReason::Stale => "Stale share".to_string(),
                    _ => reject.to_string(),
                };
                ServerMessage::Response {
                    id: Some(id),
                    outcome: Err(StratumError {
                        code: reject.code(),
                        message,
                    }),
                }
                .encode()
            }
        }
    }

    pub(super) fn handle_event(&mut self, event: PoolEvent) -> Vec<String> {
        if !self.receiving_jobs {
            return Vec::new();
        }
        match event {
            PoolEvent::Job(job) => {
                if let Some(difficulty) = self.pending_difficulty.take() {
                    self.set_difficulty_now(difficulty);
                }
                self.session.add_job(job.clone());
                vec![ServerMessage::Notify(job.notify.clone()).encode()]
            }
            PoolEvent::Difficulty(difficulty) => {
                self.pending_difficulty = Some(difficulty);
                vec![ServerMessage::SetDifficulty(difficulty).encode()]
            }
            PoolEvent::Reconnect => {
                vec![notification("client.reconnect", json!([]))]
            }
            PoolEvent::NewExtranonce if self.extranonce_subscribed => self.new_extranonce(),
            PoolEvent::NewExtranonce | PoolEvent::Drop => Vec::new(),
        }
    }

    /// A new extranonce1, then the current job again under a new id and clean, so shares the
    /// miner built with the old extranonce1 come back stale rather than low difficulty.
    fn new_extranonce(&mut self) -> Vec<String> {
        let extranonce1 = self.shared.allocate_extranonce1();
        let size = self.shared.spec.extranonce2_size;
        self.session.subscribe(extranonce1.clone(), size);
        self.extranonce1 = Some(extranonce1.clone());
        self.reissued_jobs += 1;
        let mut notify = self.shared.current_job().notify.clone();
        notify.job_id = format!("{}r{}", notify.job_id, self.reissued_jobs);
        notify.clean_jobs = true;
        let job = Arc::new(Job::new(notify).expect("the pool's own job has a valid nbits"));
        self.session.add_job(job.clone());
        vec![
            ServerMessage::SetExtranonce {
                extranonce1,
                extranonce2_size: size,
            }
            .encode(),
            ServerMessage::Notify(job.notify.clone()).encode(),
        ]
    }
}

/// The id of a request the parser refused, when the line is JSON with a readable id.
fn request_id_of(line: &[u8]) -> Option<RequestId> {
    match serde_json::from_slice::<Value>(line).ok()?.get("id")? {
        Value::Number(n) => n.as_u64().map(RequestId::Number),
        Value::String(s) => Some(RequestId::Text(s.clone())),
        _ => None,
    }
}

fn error_reply(id: Option<RequestId>, code: StratumErrorCode, message: &str) -> String {
    ServerMessage::Response {
        id,
        outcome: Err(StratumError {
            code,
            message: message.to_string(),
        }),
    }
    .encode()
}

/// A notification minerd's `ServerMessage` has no variant for (`client.reconnect`).
fn notification(method: &str, params: Value) -> String {
    let mut line = json!({"id": null, "method": method, "params": params}).to_string();
    line.push('\n');
    line
}
