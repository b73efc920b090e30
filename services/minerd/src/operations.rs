//! Operations: bulk actions on a selection of miners (set pools, reboot, sleep and wake,
//! power target) with bounded concurrency and progress, every state change in the audit log.
//!
//! - [`runner`]: the generic bulk runner (targets, concurrency limit, per-target deadline,
//!   progress channel, audit records), independent of what the action is.
//! - [`miner_action`]: what each action is as cgminer API commands, and which firmware
//!   supports it; [`set_pools`] is the one multi-step sequence.
//!
//! [`run_on_miners`] puts the two together.

pub mod miner_action;
pub mod power_profiles;
pub mod runner;
pub mod set_pools;

use std::sync::Arc;

use appliance::audit_log::AppendError;
use tokio::sync::mpsc;

pub use miner_action::{ActionError, MinerAction, MinerTarget, supports};
pub use power_profiles::{PowerProfile, PowerProfiles};
pub use runner::{
    BulkLimits, BulkReport, BulkRequest, BulkTarget, Progress, SharedAuditLog, TargetResult,
    run_bulk,
};

use crate::cgminer::ClientConfig;

/// Runs `action` on `targets` for `actor` (an operator `operator:NAME`, or `minerd` for
/// curtailment and quarantine).
pub async fn run_on_miners(
    actor: &str,
    action: MinerAction,
    targets: Vec<MinerTarget>,
    limits: BulkLimits,
    client: ClientConfig,
    audit: &SharedAuditLog,
    progress: Option<mpsc::UnboundedSender<Progress>>,
) -> Result<BulkReport, AppendError> {
    let request = BulkRequest {
        actor: actor.to_owned(),
        action: action.audit_name().to_owned(),
        parameters: action.parameters(),
    };
    let action = Arc::new(action);
    run_bulk(request, targets, limits, audit, progress, move |target| {
        let action = Arc::clone(&action);
        async move {
            action
                .perform(&target, &client)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
}
