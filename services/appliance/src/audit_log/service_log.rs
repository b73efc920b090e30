//! A service's own audit log, as a daemon runs it: `audit.log` in its state directory, opened
//! with a `service.start` record (so a restart, a crash or kill -9 included, shows in the log),
//! and sealed on its [`SealPolicy`] through trustd while trustd is on the bus.
//!
//! minerd and sited run their logs the same way; only the service name differs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::record::Entry;
use super::seal::SealSigner;
use super::trustd_signer::TrustdSigner;
use super::writer::{AppendError, AuditLog, OpenError, SealOutcome, SealPolicy};
use crate::dbus::Bus;
use crate::dbus::contracts::TRUST;

/// The log's file name in the service's state directory.
pub const SERVICE_LOG_FILE: &str = "audit.log";

/// How often [`seal_loop`] asks whether a seal is due.
const SEAL_CHECK: Duration = Duration::from_secs(1);

/// The audit log, shared by everything in a service that records state changes.
pub type SharedAuditLog = Arc<Mutex<AuditLog>>;

/// Why a service's log could not be opened at start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceLogError {
    #[error("opening the audit log {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: OpenError,
    },
    #[error("recording the start in the audit log")]
    RecordStart(#[source] AppendError),
}

/// Where a service's log lives in its state directory.
pub fn service_log_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SERVICE_LOG_FILE)
}

/// Opens `service`'s log in `state_dir` and records the start: `service.start` by `service`,
/// with the version (the workspace's, which every service shares) and the records found.
/// An unfinished last line a crash left (never acknowledged) is cut and logged.
pub async fn open_service_log(
    state_dir: &Path,
    service: &str,
) -> Result<SharedAuditLog, ServiceLogError> {
    let path = service_log_path(state_dir);
    let (mut log, report) =
        AuditLog::open(&path, service)
            .await
            .map_err(|source| ServiceLogError::Open {
                path: path.clone(),
                source,
            })?;
    if let Some(torn) = &report.torn_tail {
        tracing::warn!(
            ?torn,
            "the audit log's unfinished last line (never acknowledged) was cut"
        );
    }
    let entry = Entry::new(
        service,
        "service.start",
        service,
        json!({ "version": env!("CARGO_PKG_VERSION"), "records": report.records }),
    );
    log.append(entry)
        .await
        .map_err(ServiceLogError::RecordStart)?;
    Ok(Arc::new(Mutex::new(log)))
}

/// Seals `log` when `policy` says so, until `cancel`: signed by trustd (as `service`) when it
/// is on the bus, else an `audit.seal-skipped` record says why (the log's own rule).
/// `last_sealed` gets the seq of each seal or skip record.
pub async fn seal_loop(
    log: SharedAuditLog,
    policy: SealPolicy,
    bus: Bus,
    service: String,
    last_sealed: Arc<AtomicU64>,
    cancel: CancellationToken,
) {
    let mut ticks = tokio::time::interval(SEAL_CHECK);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if !log.lock().await.seal_due(&policy) {
            continue;
        }
        let signer = trustd_signer(&bus, &service).await;
        let mut log = log.lock().await;
        let outcome = log
            .seal(signer.as_ref().map(|s| s as &dyn SealSigner))
            .await;
        match outcome {
            Ok(SealOutcome::Sealed { seq }) => {
                tracing::info!(seq, "audit log sealed by trustd");
                last_sealed.store(seq, Ordering::Relaxed);
            }
            Ok(SealOutcome::Skipped { seq, .. }) => last_sealed.store(seq, Ordering::Relaxed),
            Ok(SealOutcome::NothingNew) => {}
            Err(error) => tracing::error!(%error, "cannot write the audit log's seal"),
        }
    }
}

/// A signer when trustd owns its name on the bus now.
async fn trustd_signer(bus: &Bus, service: &str) -> Option<TrustdSigner> {
    let connection = crate::dbus::connect(bus).await.ok()?;
    let dbus = zbus::fdo::DBusProxy::new(&connection).await.ok()?;
    let name = zbus::names::BusName::try_from(TRUST.bus_name).ok()?;
    if !dbus.name_has_owner(name).await.unwrap_or(false) {
        return None;
    }
    TrustdSigner::new(connection, service)
}
