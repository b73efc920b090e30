//! A line-based control socket for the simulators (`poolsim`, `minersim`): a test or a person
//! writes one command per line to a Unix socket and reads one reply line, e.g.
//! `echo 'outage on' | socat - UNIX-CONNECT:/run/poolsim.sock`. What the commands mean is the
//! handler's business; this module only frames lines, bounds them and keeps replies one line.
//! [`send`] is the client side, for places without socat (the appliance: `sitesim --send`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use minerd::stratum::LineBuffer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// The longest command line; anything longer is answered with an error and the connection closed.
pub const MAX_COMMAND_LEN: usize = 4096;
/// A client that sends nothing for this long is disconnected.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`send`] waits for the connection and the reply: a simulator that does not answer
/// in this long is hung (the boot test under TCG answers within a second or two).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Answers one command line with one reply line (without the newline). Replies to bad
/// commands start with `error:`.
pub type Handler = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// A running control socket; dropping it stops serving and removes the socket file.
pub struct ControlServer {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl ControlServer {
    /// Listens on `path` (a stale socket file left by a killed simulator is replaced).
    pub fn bind(path: &Path, handler: Handler) -> std::io::Result<ControlServer> {
        if std::fs::symlink_metadata(path).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_socket()
        }) {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        let task = tokio::spawn(accept_loop(listener, handler));
        Ok(ControlServer {
            path: path.to_path_buf(),
            task,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept_loop(listener: UnixListener, handler: Handler) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, handler.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve(mut stream: UnixStream, handler: Handler) {
    let mut lines = LineBuffer::new(MAX_COMMAND_LEN);
    let mut buf = [0u8; 1024];
    loop {
        while let Some(line) = lines.next_line() {
            let (reply, close) = match line {
                Ok(line) => (answer(&handler, &line), false),
                Err(_) => (format!("error: line over {MAX_COMMAND_LEN} bytes"), true),
            };
            if stream
                .write_all(format!("{reply}\n").as_bytes())
                .await
                .is_err()
                || close
            {
                return;
            }
        }
        match tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => lines.extend(&buf[..n]),
            _ => return,
        }
    }
}

/// Why [`send`] got no reply line.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the command is empty or has a line break: one command per line")]
    BadCommand,
    #[error("connecting to {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} closed the connection without a reply")]
    NoReply { path: PathBuf },
    #[error("{path} gave no reply within {}s", SEND_TIMEOUT.as_secs())]
    TimedOut { path: PathBuf },
}

/// Sends one command line to the control socket at `path` and returns the reply line (without
/// its newline). Replies that start with `error:` are returned as they are: the simulator
/// refusing a command is an answer, not a failure to talk.
pub async fn send(path: &Path, command: &str) -> Result<String, SendError> {
    let command = command.trim();
    if command.is_empty() || command.contains(['\n', '\r']) {
        return Err(SendError::BadCommand);
    }
    tokio::time::timeout(SEND_TIMEOUT, exchange(path, command))
        .await
        .unwrap_or_else(|_| {
            Err(SendError::TimedOut {
                path: path.to_path_buf(),
            })
        })
}

async fn exchange(path: &Path, command: &str) -> Result<String, SendError> {
    use tokio::io::AsyncBufReadExt;
    let io = |source| SendError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(path)
        .await
        .map_err(|source| SendError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .await
        .map_err(io)?;
    let mut reply = String::new();
    let read = tokio::io::BufReader::new(stream)
        .take(MAX_REPLY_LEN)
        .read_line(&mut reply)
        .await
        .map_err(io)?;
    if read == 0 || !reply.ends_with('\n') {
        return Err(SendError::NoReply {
            path: path.to_path_buf(),
        });
    }
    Ok(reply.trim_end().to_string())
}

/// The longest reply [`send`] reads (`relays` and `read` replies are a few kB at most).
const MAX_REPLY_LEN: u64 = 1 << 20;

/// The handler's reply to one line, kept to one line whatever the handler returned.
fn answer(handler: &Handler, line: &[u8]) -> String {
    let Ok(command) = std::str::from_utf8(line) else {
        return "error: command is not UTF-8".to_string();
    };
    handler(command.trim()).replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};

    #[tokio::test]
    async fn one_reply_line_per_command_and_long_lines_refused() {
        let dir = std::env::temp_dir().join(format!("sim-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        let handler: Handler = Arc::new(|command: &str| match command {
            "ping" => "pong".to_string(),
            "two lines" => "a\nb".to_string(),
            other => format!("error: unknown command {other:?}"),
        });
        let server = ControlServer::bind(&path, handler).unwrap();
        let stream = UnixStream::connect(&path).await.unwrap();
        let (reader, mut writer) = stream.into_split();
        let mut reader = BufReader::new(reader).lines();
        writer.write_all(b"ping\nbogus\ntwo lines\n").await.unwrap();
        assert_eq!(reader.next_line().await.unwrap().unwrap(), "pong");
        assert!(
            reader
                .next_line()
                .await
                .unwrap()
                .unwrap()
                .starts_with("error:")
        );
        assert_eq!(reader.next_line().await.unwrap().unwrap(), "a b");
        writer
            .write_all(&[b'x'; MAX_COMMAND_LEN + 10])
            .await
            .unwrap();
        writer.write_all(b"\n").await.unwrap();
        assert!(
            reader
                .next_line()
                .await
                .unwrap()
                .unwrap()
                .starts_with("error: line over")
        );
        assert_eq!(reader.next_line().await.unwrap(), None, "connection closed");
        drop(server);
        assert!(!path.exists(), "socket file removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn send_gets_the_reply_line_or_says_why_there_is_none() {
        let dir = std::env::temp_dir().join(format!("sim-send-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        let handler: Handler = Arc::new(|command: &str| format!("error: no {command}"));
        let server = ControlServer::bind(&path, handler).unwrap();
        assert_eq!(
            send(&path, "  door 1 open \n").await.unwrap(),
            "error: no door 1 open"
        );
        assert!(matches!(
            send(&path, "a\nb").await,
            Err(SendError::BadCommand)
        ));
        drop(server);
        assert!(matches!(
            send(&path, "x").await,
            Err(SendError::Connect { .. })
        ));

        // A socket that takes the line and hangs up without answering.
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let mute = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf).await;
        });
        assert!(matches!(
            send(&path, "x").await,
            Err(SendError::NoReply { .. })
        ));
        mute.await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
