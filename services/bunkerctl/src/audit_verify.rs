//! `bunkerctl mining audit verify` and `bunkerctl site log verify`: a service's audit log
//! (minerd's operations, sited's event log) verified offline, from the file and trustd's public
//! key alone ([`appliance::audit_log::verify_file`]). The service ([`AuditedService`]) gives
//! the name the log is sealed under and where the log is by default; all else is the same.
//!
//! The key is trustd's CA key: from trustd's `Status()` over the bus (`--trustd`), or from a
//! file (`--key`, PEM `PUBLIC KEY` or hex SEC1 as `Status()` shows it). Without a key the chain
//! is still checked but seals are only counted. With `--known-head FILE` the head verified
//! last time is read from FILE and must still be in the log (a cut tail is caught), and the new
//! head is written back after a successful verification only.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use appliance::audit_log::record::decode_hash;
use appliance::audit_log::{
    Anchor, TrustedKey, VerifiedLog, VerifyError, VerifyOptions, verify_file,
};
use appliance::dbus::contracts::{TRUST, Trust1Proxy};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::bus_call;
use crate::terminal::print;

/// A service whose audit log `verify` checks.
pub trait AuditedService: Debug + Clone + PartialEq + Eq + Send + Sync + 'static {
    /// The service name the log is sealed under (the user the service runs as).
    const SERVICE: &'static str;
    /// Where the service keeps its log (`audit.log` in its state directory).
    const DEFAULT_LOG: &'static str;
}

/// minerd's log of operations on miners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minerd;

impl AuditedService for Minerd {
    const SERVICE: &'static str = "minerd";
    const DEFAULT_LOG: &'static str = "/var/lib/minerd/audit.log";
}

/// sited's event log (alarm transitions, acknowledgements, silences).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sited;

impl AuditedService for Sited {
    const SERVICE: &'static str = "sited";
    const DEFAULT_LOG: &'static str = "/var/lib/sited/audit.log";
}

/// How long trustd may take to answer `Status()`.
const TRUSTD_TIMEOUT: Duration = Duration::from_secs(10);

/// `bunkerctl mining audit …`, `bunkerctl site log …`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum AuditCommand<S: AuditedService> {
    /// Verify the audit log offline: every record's hash, the chain, every seal's signature
    #[command(after_help = "\
Prints the records, the seals verified, the last sealed record and the records after it (chained \
but not yet signed). Exit status: 0 when the log verifies, 1 with the reason when it does not.")]
    Verify(VerifyArgs<S>),
}

/// What `audit verify` takes.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct VerifyArgs<S: AuditedService> {
    /// The log file
    #[arg(long, value_name = "PATH", default_value = S::DEFAULT_LOG)]
    pub log: PathBuf,
    /// trustd's public key: a PEM PUBLIC KEY or hex SEC1 file
    #[arg(long, value_name = "PATH", conflicts_with = "trustd")]
    pub key: Option<PathBuf>,
    /// Ask trustd for its public key over the system bus
    #[arg(long)]
    pub trustd: bool,
    /// Remember the verified head in FILE and require it next time (SEQ:HASH)
    #[arg(long, value_name = "FILE")]
    pub known_head: Option<PathBuf>,
    /// Whose log it is.
    #[arg(skip)]
    pub service: PhantomData<S>,
}

/// Why the inputs of a verification were refused (the log itself fails as [`VerifyError`]).
#[derive(Debug, thiserror::Error)]
pub enum AuditInputError {
    #[error("cannot read the key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the key in {path} is {problem}")]
    Key {
        path: String,
        problem: appliance::audit_log::seal::KeyError,
    },
    #[error("cannot read the known head {path}: {source}")]
    HeadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the known head in {path} is not SEQ:HASH (64 hex digits)")]
    BadHead { path: PathBuf },
}

/// Runs `verify` on `S`'s log.
pub fn run<S: AuditedService>(cmd: AuditCommand<S>) -> Result<ExitCode> {
    let AuditCommand::Verify(args) = cmd;
    let key = if args.trustd {
        Some(key_from_trustd()?)
    } else {
        args.key.as_deref().map(key_from_file).transpose()?
    };
    let known_head = match &args.known_head {
        Some(path) => read_known_head(path)?,
        None => None,
    };
    let options = VerifyOptions {
        key,
        service: Some(S::SERVICE.to_owned()),
        known_head,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match runtime.block_on(verify_file(&args.log, &options)) {
        Ok(log) => {
            print(&render_verified(&args.log, &log, &options))?;
            if let (Some(path), Some(head)) = (&args.known_head, log.head) {
                write_known_head(path, head)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => Err(anyhow!(failure_sentence(&args.log, &error))),
    }
}

/// The one line printed when the log does not verify.
pub fn failure_sentence(log: &Path, error: &VerifyError) -> String {
    format!("the audit log {} does not verify: {error}", log.display())
}

/// What a verified log holds, e.g.
///
/// ```text
/// audit log /var/lib/minerd/audit.log verifies
///   records       12
///   seals         2 verified with trustd key
///                 <the key id, 64 hex digits>
///   last sealed   record 10
///   unsealed      2 records after the last seal (chained, not yet signed)
///   head          record 12, hash
///                 <64 hex digits>
/// ```
pub fn render_verified(log: &Path, verified: &VerifiedLog, options: &VerifyOptions) -> String {
    let mut out = format!("audit log {} verifies\n", log.display());
    let mut row = |label: &str, value: String| out.push_str(&format!("  {label:<14}{value}\n"));
    row("records", verified.records.to_string());
    let seals = match &options.key {
        // The 64-digit id on a line of its own: it fits 80 columns only there.
        Some(key) => format!(
            "{} verified with trustd key\n{:16}{}",
            verified.seals,
            "",
            key.id()
        ),
        None => format!(
            "{} not checked: no key given (--trustd or --key)",
            verified.unchecked_seals
        ),
    };
    row("seals", seals);
    if verified.skipped_seals > 0 {
        row(
            "skipped seals",
            format!(
                "{}: a seal was due but trustd could not sign",
                verified.skipped_seals
            ),
        );
    }
    row(
        "last sealed",
        verified
            .last_sealed_seq
            .map_or("no record yet".to_owned(), |seq| format!("record {seq}")),
    );
    row(
        "unsealed",
        format!(
            "{} records after the last seal (chained, not yet signed)",
            verified.unsealed_records
        ),
    );
    row(
        "head",
        verified.head.map_or("empty log".to_owned(), |head| {
            format!(
                "record {}, hash\n{:16}{}",
                head.seq,
                "",
                hex_hash(&head.hash)
            )
        }),
    );
    if let Some(known) = options.known_head {
        row(
            "known head",
            format!("record {} still in the log", known.seq),
        );
    }
    out
}

fn hex_hash(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn key_from_file(path: &Path) -> Result<TrustedKey> {
    let text = std::fs::read_to_string(path).map_err(|source| AuditInputError::KeyFile {
        path: path.to_owned(),
        source,
    })?;
    let parsed = if text.contains("-----BEGIN") {
        TrustedKey::from_public_key_pem(&text)
    } else {
        TrustedKey::from_sec1_hex(&text)
    };
    Ok(parsed.map_err(|problem| AuditInputError::Key {
        path: path.display().to_string(),
        problem,
    })?)
}

/// trustd's CA key: `public_key` of its `Status()` document.
fn key_from_trustd() -> Result<TrustedKey> {
    let status = bus_call::on_system_bus(TRUSTD_TIMEOUT, async |connection| {
        let trust = Trust1Proxy::new(connection)
            .await
            .context("creating the org.bunkeros.Trust1 proxy")?;
        trust
            .status()
            .await
            .map_err(|error| bus_call::refused(TRUST, "this user may not ask trustd", error))
    })?;
    let status: Value = serde_json::from_str(&status).context("trustd's status is not JSON")?;
    let hex = status["public_key"]
        .as_str()
        .ok_or_else(|| anyhow!("trustd's status has no public_key"))?;
    Ok(
        TrustedKey::from_sec1_hex(hex).map_err(|problem| AuditInputError::Key {
            path: "trustd's status".to_owned(),
            problem,
        })?,
    )
}

/// The head remembered in `path`, or none when the file does not exist yet (first run).
fn read_known_head(path: &Path) -> Result<Option<Anchor>, AuditInputError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AuditInputError::HeadFile {
                path: path.to_owned(),
                source,
            });
        }
    };
    parse_anchor(text.trim())
        .map(Some)
        .ok_or_else(|| AuditInputError::BadHead {
            path: path.to_owned(),
        })
}

/// `SEQ:HASH`, as [`Anchor`] displays itself.
pub fn parse_anchor(text: &str) -> Option<Anchor> {
    let (seq, hash) = text.split_once(':')?;
    Some(Anchor {
        seq: seq.parse().ok().filter(|seq| *seq > 0)?,
        hash: decode_hash(hash)?,
    })
}

/// Writes the head atomically (temp file, fsync, rename, fsync of the directory), so a crash
/// leaves the old head or the new one, never half of one.
fn write_known_head(path: &Path, head: Anchor) -> Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.writing"));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(format!("{head}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        std::fs::File::open(parent)?.sync_all()
    };
    write().with_context(|| format!("remembering the verified head in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_head_reads_back_as_written() {
        let head = Anchor {
            seq: 42,
            hash: [0xab; 32],
        };
        assert_eq!(parse_anchor(&head.to_string()), Some(head));
        assert_eq!(parse_anchor("42"), None);
        assert_eq!(parse_anchor("0:".to_owned().as_str()), None);
        assert_eq!(parse_anchor(&format!("x:{}", "ab".repeat(32))), None);
        assert_eq!(parse_anchor("3:abcd"), None);
    }

    #[test]
    fn a_head_file_round_trips_and_a_missing_one_is_a_first_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("minerd.head");
        assert!(read_known_head(&path).unwrap().is_none());
        let head = Anchor {
            seq: 7,
            hash: [1; 32],
        };
        write_known_head(&path, head).unwrap();
        assert_eq!(read_known_head(&path).unwrap(), Some(head));
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(
            read_known_head(&path),
            Err(AuditInputError::BadHead { .. })
        ));
    }
}
