//! Logging: `tracing` to the journal when it is there, otherwise to stderr.
//!
//! On the appliance every service runs under systemd, and logging straight to journald keeps
//! the structured fields (`miner=`, `pool=`) searchable with `journalctl -o verbose`. In tests
//! and on a developer's machine there is no journal, and stderr is what a person reads.
//!
//! The level comes from `RUST_LOG` (the usual `tracing` convention, wins when set) or
//! `BUNKEROS_LOG` (what the image's unit drop-ins set), e.g. `BUNKEROS_LOG=debug` or
//! `BUNKEROS_LOG=info,appliance::tls=debug`; `info` otherwise.

use std::io::IsTerminal;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where journald listens for native-protocol log records.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// The BunkerOS variable for log filter directives; `RUST_LOG` takes precedence over it.
pub const LOG_ENV: &str = "BUNKEROS_LOG";
/// The filter used when neither variable is set (or the one that is set is not valid).
pub const DEFAULT_FILTER: &str = "info";

/// Where log records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// journald's native protocol, with fields kept as journal fields.
    Journald,
    /// Human-readable lines on stderr.
    Stderr,
}

/// Journald when `journal_socket` exists and is a socket, else stderr.
///
/// Takes the path so tests can point it at a socket of their own.
pub fn choose_backend(journal_socket: &Path) -> Backend {
    match std::fs::metadata(journal_socket) {
        Ok(metadata) if metadata.file_type().is_socket() => Backend::Journald,
        _ => Backend::Stderr,
    }
}

/// The filter to log with, and a warning to log once logging works if a variable was invalid.
#[derive(Debug)]
pub struct LogFilter {
    /// The filter directives in effect.
    pub filter: EnvFilter,
    /// Set when a variable held directives that do not parse; they were ignored.
    pub warning: Option<String>,
}

/// The filter from the values of `RUST_LOG` and `BUNKEROS_LOG` (given, not read, for tests).
///
/// An empty variable counts as unset. Invalid directives are not fatal: logging at `info` with a
/// warning is better than a service that refuses to start over its log level.
pub fn choose_filter(rust_log: Option<&str>, bunkeros_log: Option<&str>) -> LogFilter {
    let set = |value: Option<&str>| {
        value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let chosen = set(rust_log)
        .map(|v| ("RUST_LOG", v))
        .or_else(|| set(bunkeros_log).map(|v| (LOG_ENV, v)));
    let Some((variable, directives)) = chosen else {
        return LogFilter {
            filter: EnvFilter::new(DEFAULT_FILTER),
            warning: None,
        };
    };
    match EnvFilter::try_new(&directives) {
        Ok(filter) => LogFilter {
            filter,
            warning: None,
        },
        Err(e) => LogFilter {
            filter: EnvFilter::new(DEFAULT_FILTER),
            warning: Some(format!(
                "{variable}=`{directives}` is not a valid log filter ({e}); logging at {DEFAULT_FILTER}"
            )),
        },
    }
}

/// Installs the global subscriber for `service` (its journal `SYSLOG_IDENTIFIER`).
///
/// Returns the backend in use, or `None` when a subscriber was already installed (a second call,
/// or a test harness that installed its own); that is not an error, logging keeps working.
pub fn init(service: &str) -> Option<Backend> {
    let variable = |name: &str| std::env::var(name).ok();
    let LogFilter { filter, warning } = choose_filter(
        variable("RUST_LOG").as_deref(),
        variable(LOG_ENV).as_deref(),
    );
    let mut warnings: Vec<String> = warning.into_iter().collect();

    let backend = match choose_backend(Path::new(JOURNAL_SOCKET)) {
        Backend::Journald => match tracing_journald::layer() {
            Ok(journald) => {
                let journald = journald.with_syslog_identifier(service.to_owned());
                tracing_subscriber::registry()
                    .with(filter)
                    .with(journald)
                    .try_init()
                    .ok()?;
                Backend::Journald
            }
            Err(e) => {
                warnings.push(format!(
                    "{JOURNAL_SOCKET} exists but journald does not accept records ({e}); logging to stderr"
                ));
                init_stderr(filter)?
            }
        },
        Backend::Stderr => init_stderr(filter)?,
    };
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    Some(backend)
}

/// Colours only on a terminal: under systemd stderr goes to the journal as plain text.
fn init_stderr(filter: EnvFilter) -> Option<Backend> {
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .ok()?;
    Some(Backend::Stderr)
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;

    use super::*;

    #[test]
    fn journald_only_when_the_socket_is_there() {
        let dir = tempfile::TempDir::new().unwrap();
        let socket = dir.path().join("socket");
        assert_eq!(choose_backend(&socket), Backend::Stderr, "missing");
        std::fs::write(&socket, b"").unwrap();
        assert_eq!(
            choose_backend(&socket),
            Backend::Stderr,
            "a plain file is not a journal"
        );
        std::fs::remove_file(&socket).unwrap();
        let _listener = UnixDatagram::bind(&socket).unwrap();
        assert_eq!(choose_backend(&socket), Backend::Journald);
    }

    #[test]
    fn rust_log_wins_then_bunkeros_log_then_info() {
        assert_eq!(choose_filter(None, None).filter.to_string(), "info");
        assert_eq!(
            choose_filter(None, Some("debug")).filter.to_string(),
            "debug"
        );
        assert_eq!(
            choose_filter(Some("trace"), Some("debug"))
                .filter
                .to_string(),
            "trace"
        );
        assert_eq!(
            choose_filter(Some(" "), Some("warn")).filter.to_string(),
            "warn"
        );
        let f = choose_filter(None, Some("info,appliance::tls=debug"));
        assert!(f.filter.to_string().contains("appliance::tls=debug"));
        assert!(f.warning.is_none());
    }

    #[test]
    fn an_invalid_filter_falls_back_to_info_with_a_warning() {
        let f = choose_filter(None, Some("appliance=loud"));
        assert_eq!(f.filter.to_string(), "info");
        let warning = f.warning.unwrap();
        assert!(warning.starts_with("BUNKEROS_LOG=`appliance=loud` is not a valid log filter"));
    }
}
