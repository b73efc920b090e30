//! The generic bulk runner: one action on many targets, at most `concurrency` at a time,
//! each under its own deadline, with progress as results come in, and every state change
//! in the audit log.
//!
//! Audit records: one *intent* record before anything is touched (the action, its
//! parameters and every target), then one *result* record per target as it finishes
//! (`detail.bulk` names the intent's seq). Why both: the intent is written first and the run
//! refused if it cannot be, so no miner is ever changed without a trace, and a crash in the
//! middle of a run leaves an intent whose missing results say which targets are in doubt;
//! the per-target records say what happened to each, once it is known. If a result cannot
//! be written, no further target is started (the others already running finish).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use appliance::audit_log::{AppendError, Entry};
use appliance::config::{DurationSecs, Invalid};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// The audit log, shared by everything in minerd that changes miners (appliance's, which
/// sited shares too).
pub use appliance::audit_log::SharedAuditLog;

/// Something a bulk action runs on.
pub trait BulkTarget {
    /// How the target is named in progress and in the audit log.
    fn label(&self) -> String;
}

impl BulkTarget for String {
    fn label(&self) -> String {
        self.clone()
    }
}

/// `[operations]` in minerd's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkLimits {
    /// Targets in flight at once.
    pub concurrency: usize,
    /// How long one target may take (a reboot answers at once; set-pools is 3–6 round trips).
    pub per_target_deadline: DurationSecs<1, 600>,
}

impl Default for BulkLimits {
    fn default() -> Self {
        BulkLimits {
            concurrency: 32,
            per_target_deadline: DurationSecs::from_const(30),
        }
    }
}

impl BulkLimits {
    pub fn validate(&self) -> Result<(), Invalid> {
        if !(1..=1024).contains(&self.concurrency) {
            return Err(Invalid::new(
                "operations.concurrency",
                "must be between 1 and 1024",
            ));
        }
        Ok(())
    }
}

/// Who asks for what, for the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkRequest {
    pub actor: String,
    /// e.g. `miner.reboot`.
    pub action: String,
    /// The parameters (never secrets).
    pub parameters: Value,
}

/// How one target ended, in a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetResult {
    pub target: String,
    pub ok: bool,
    pub sentence: String,
}

/// Sent after each target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub failed: usize,
    pub total: usize,
    pub result: TargetResult,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkReport {
    /// The seq of the intent record in the audit log.
    pub bulk_seq: u64,
    pub total: usize,
    pub done: usize,
    pub failed: usize,
    pub results: Vec<TargetResult>,
    /// Why the run stopped early, if a result could not be written to the audit log.
    pub audit_failure: Option<String>,
}

struct Tally {
    report: BulkReport,
    progress: Option<mpsc::UnboundedSender<Progress>>,
}

impl Tally {
    fn record(&mut self, result: TargetResult) {
        if result.ok {
            self.report.done += 1;
        } else {
            self.report.failed += 1;
        }
        if let Some(tx) = &self.progress {
            // A caller that stopped listening does not stop the run.
            let _ = tx.send(Progress {
                done: self.report.done,
                failed: self.report.failed,
                total: self.report.total,
                result: result.clone(),
            });
        }
        self.report.results.push(result);
    }
}

/// Runs `act` on every target. Fails only when the intent cannot be written to the audit
/// log, in which case nothing was touched.
pub async fn run_bulk<T, F, Fut>(
    request: BulkRequest,
    targets: Vec<T>,
    limits: BulkLimits,
    audit: &SharedAuditLog,
    progress: Option<mpsc::UnboundedSender<Progress>>,
    act: F,
) -> Result<BulkReport, AppendError>
where
    T: BulkTarget + Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, String>> + Send + 'static,
{
    let labels: Vec<String> = targets.iter().map(BulkTarget::label).collect();
    let intent = Entry::new(
        &request.actor,
        &request.action,
        format!("{} miner(s)", labels.len()),
        json!({ "targets": labels, "parameters": request.parameters }),
    );
    let bulk_seq = audit.lock().await.append(intent).await?.seq;
    let mut tally = Tally {
        report: BulkReport {
            bulk_seq,
            total: targets.len(),
            done: 0,
            failed: 0,
            results: Vec::with_capacity(targets.len()),
            audit_failure: None,
        },
        progress,
    };
    let deadline = limits.per_target_deadline.as_duration();
    let act = Arc::new(act);
    let mut queue = targets.into_iter();
    let mut in_flight = JoinSet::new();
    let mut labels_by_task = HashMap::new();
    loop {
        while tally.report.audit_failure.is_none() && in_flight.len() < limits.concurrency.max(1) {
            let Some(target) = queue.next() else { break };
            let label = target.label();
            let act = Arc::clone(&act);
            let task = in_flight.spawn(async move { attempt(deadline, act(target)).await });
            labels_by_task.insert(task.id(), label);
        }
        let Some(joined) = in_flight.join_next_with_id().await else {
            break;
        };
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, outcome),
            Err(e) => (e.id(), Err(format!("the action failed unexpectedly: {e}"))),
        };
        let target = labels_by_task.remove(&id).unwrap_or_default();
        let result = match outcome {
            Ok(sentence) => TargetResult {
                target,
                ok: true,
                sentence,
            },
            Err(sentence) => TargetResult {
                target,
                ok: false,
                sentence,
            },
        };
        if let Err(e) = append_result(audit, &request, bulk_seq, &result).await {
            tracing::error!(error = %e, "audit log not writable; no further miner is started");
            tally.report.audit_failure = Some(e.to_string());
        }
        tally.record(result);
    }
    for target in queue {
        tally.record(TargetResult {
            target: target.label(),
            ok: false,
            sentence: "not attempted: the audit log cannot be written".to_owned(),
        });
    }
    Ok(tally.report)
}

async fn attempt(
    deadline: Duration,
    action: impl Future<Output = Result<String, String>>,
) -> Result<String, String> {
    match tokio::time::timeout(deadline, action).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no result within {deadline:?}; given up")),
    }
}

async fn append_result(
    audit: &SharedAuditLog,
    request: &BulkRequest,
    bulk_seq: u64,
    result: &TargetResult,
) -> Result<(), AppendError> {
    let entry = Entry::new(
        &request.actor,
        &request.action,
        &result.target,
        json!({
            "bulk": bulk_seq,
            "result": if result.ok { "ok" } else { "failed" },
            "sentence": result.sentence,
        }),
    );
    audit.lock().await.append(entry).await.map(|_| ())
}
