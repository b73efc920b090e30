//! The cgminer API server of one miner: one request per connection, the reply followed by a
//! NUL, then the socket closed (pyasic reads until EOF). A reboot closes the listener, so
//! connections are refused until the firmware is back. Reply faults (hang, slow, malformed,
//! truncated, oversized) are applied here, on the wire.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::Miner;
use super::commands::{self, Effect};
use super::fault::{self, ReplyFault};
use super::firmware::{self, code};
use super::render::{Section, render_joined, render_section};
use super::request::{self, ApiRequest, MAX_REQUEST_BYTES, RequestError};
use super::{Privileged, unix_now};

/// A client that sends nothing gets the connection closed after this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Once a request has started, the rest must follow within this.
const COMPLETION_GRACE: Duration = Duration::from_secs(1);
/// A hung firmware holds a connection at most this long (the client gives up first).
const HANG_LIMIT: Duration = Duration::from_secs(600);

pub async fn serve(miner: Miner, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let mut listener = Some(listener);
    loop {
        let current = match listener.take() {
            Some(l) => l,
            None => match TcpListener::bind(miner.api_address()).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(miner = %miner.ip(), "API rebind after reboot failed: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        tokio::select! {
            _ = accept_until_reboot(&miner, &current) => {}
            _ = shutdown.changed() => return,
        }
        drop(current);
        let until = miner.state().rebooting_until;
        if let Some(until) = until {
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = shutdown.changed() => return,
            }
        }
        miner.finish_reboot();
        tracing::info!(miner = %miner.ip(), "back from reboot");
    }
}

/// Accepts connections until a reboot starts.
async fn accept_until_reboot(miner: &Miner, listener: &TcpListener) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(handle(miner.clone(), stream));
                }
                Err(e) => {
                    tracing::debug!(miner = %miner.ip(), "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = miner.reboot_notify().notified() => {
                if miner.state().rebooting() {
                    return;
                }
            }
        }
    }
}

/// Reads one request. Like cgminer's single `recv`, it does not wait long for the rest of a
/// request once bytes have come: an incomplete one is answered (as invalid), not waited on.
async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    let mut deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut chunk)).await;
        match read {
            Ok(Ok(0)) | Err(_) => return (!buf.is_empty()).then_some(buf),
            Ok(Ok(n)) => {
                if buf.is_empty() {
                    deadline = deadline.min(Instant::now() + COMPLETION_GRACE);
                }
                buf.extend_from_slice(&chunk[..n]);
                if request::is_complete(&buf) || buf.len() >= MAX_REQUEST_BYTES {
                    return Some(buf);
                }
            }
            Ok(Err(_)) => return None,
        }
    }
}

async fn handle(miner: Miner, mut stream: TcpStream) {
    let Some(bytes) = read_request(&mut stream).await else {
        return;
    };
    if miner.state().rebooting() {
        return;
    }
    let reply_fault = fault::reply_fault(&miner.faults());
    match reply_fault {
        Some(ReplyFault::Hang) => {
            hang(&mut stream).await;
            return;
        }
        Some(ReplyFault::Slow(delay)) => tokio::time::sleep(delay).await,
        _ => {}
    }
    let (reply, restart) = answer(&miner, &bytes);
    let mut wire = match reply_fault {
        Some(ReplyFault::Malformed) => fault::malform(&reply),
        Some(ReplyFault::Oversized) => fault::oversize(&reply),
        _ => reply,
    };
    if reply_fault == Some(ReplyFault::Truncated) {
        wire.truncate(wire.len() / 2);
    } else {
        wire.push(0);
    }
    if let Err(e) = stream.write_all(&wire).await {
        tracing::debug!(miner = %miner.ip(), "reply not sent: {e}");
    }
    let _ = stream.shutdown().await;
    if restart {
        miner.begin_reboot(miner.spec().restart_time);
    }
}

/// Holds the connection open without answering until the client gives up.
async fn hang(stream: &mut TcpStream) {
    let mut sink = [0u8; 256];
    let _ = tokio::time::timeout(HANG_LIMIT, async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// The reply bytes (without the NUL) and whether the miner restarts after sending them.
pub fn answer(miner: &Miner, bytes: &[u8]) -> (Vec<u8>, bool) {
    let description = firmware::description(miner.personality());
    let when = unix_now();
    let request = match request::parse(bytes) {
        Ok(r) if !r.commands.is_empty() => r,
        Ok(_) | Err(RequestError::Empty) | Err(RequestError::NoCommand) => {
            let s = Section::error(code::INVALID_COMMAND, "Invalid command");
            return (render_section(&s, description, when).into_bytes(), false);
        }
        Err(RequestError::BadJson(_)) => {
            let s = Section::error(23, "Invalid JSON");
            return (render_section(&s, description, when).into_bytes(), false);
        }
    };
    if request.is_joined() {
        return (answer_joined(miner, &request).into_bytes(), false);
    }
    let command = request.commands[0].as_str();
    if commands::is_privileged(command) {
        if miner.spec().privileged == Privileged::None {
            let s = access_denied(command);
            return (render_section(&s, description, when).into_bytes(), false);
        }
        match commands::run(miner, command, &request) {
            Some(Effect::Reply(s)) => {
                return (render_section(&s, description, when).into_bytes(), false);
            }
            Some(Effect::BareThenRestart(word)) => return (word.as_bytes().to_vec(), true),
            None => {}
        }
    } else if let Some(s) = (command == "logon")
        .then(|| commands::logon(miner))
        .flatten()
    {
        return (render_section(&s, description, when).into_bytes(), false);
    } else {
        let report = miner.report();
        if let Some(s) = firmware::read_command(&report, command) {
            let mut reply = render_section(&s, description, when);
            if command == "stats" && miner.personality().firmware() == super::Firmware::Bmminer {
                // Real bmminer ends a lone `stats` reply with a stray `|`.
                reply.push('|');
            }
            return (reply.into_bytes(), false);
        }
    }
    let s = Section::error(code::INVALID_COMMAND, "Invalid command");
    (render_section(&s, description, when).into_bytes(), false)
}

fn access_denied(command: &str) -> Section {
    Section::error(
        code::ACCESS_DENIED,
        format!("Access denied to '{command}' command"),
    )
}

/// A `+` join: one reply per command under its name. cgminer refuses commands that change the
/// miner inside a join (access denied) and marks unknown ones invalid, per command.
fn answer_joined(miner: &Miner, request: &ApiRequest) -> String {
    let description = firmware::description(miner.personality());
    let firmware_kind = miner.personality().firmware();
    let report = miner.report();
    let parts: Vec<(String, Section)> = request
        .commands
        .iter()
        .map(|command| {
            let section = if firmware::is_joinable(firmware_kind, command) {
                firmware::read_command(&report, command)
                    .unwrap_or_else(|| Section::error(code::INVALID_COMMAND, "Invalid command"))
            } else if commands::is_privileged(command) {
                access_denied(command)
            } else {
                Section::error(code::INVALID_COMMAND, "Invalid command")
            };
            (command.clone(), section)
        })
        .collect();
    render_joined(&parts, description, report.when_unix)
}
