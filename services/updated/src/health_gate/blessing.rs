//! Acting on the verdict: bless the booted entry, or mark it bad and reboot into the previous
//! slot.
//!
//! Healthy: `systemd-bless-boot good` renames the booted UKI's boot-counting entry
//! (`bunkeros-b+2-1.efi` → `bunkeros-b.efi`): it boots from now on without counting.
//! Unhealthy: `systemd-bless-boot bad` sets its tries to 0 (`+0-1`), so systemd-boot sorts it
//! last and boots the previous slot, then `systemctl reboot --no-block`.
//!
//! Why `systemctl reboot` and not systemd's `Manager.Reboot()` over D-Bus: that method reboots
//! at once without stopping the services (systemd documents it as the last step of a shutdown,
//! not to be called directly), so trustd's store, the audit logs and the journal would not be
//! closed cleanly. `systemctl reboot` enqueues `reboot.target` (through logind when it runs, else
//! directly with PID 1), the orderly shutdown; `--no-block` returns once the job is queued, as
//! updated itself is one of the services being stopped.
//!
//! If `bad` fails, the reboot is still requested: the entry keeps its remaining tries, and each
//! boot into it fails its gate again until systemd-boot's counter runs out.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::settings::HealthGateSettings;
use super::verdict::Verdict;

/// How long `systemd-bless-boot` or `systemctl` may take; both normally take milliseconds.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// What was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Blessing {
    /// `systemd-bless-boot good` succeeded: the slot stays.
    Blessed,
    /// The entry was marked bad (or that failed, and why) and a reboot was requested.
    RollingBack {
        /// Why `systemd-bless-boot bad` failed; `None` when it worked.
        mark_bad_failed: Option<String>,
    },
}

/// A command that did not do its job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{command}` {why}")]
pub struct CommandFailed {
    /// The command line, e.g. `/usr/lib/systemd/systemd-bless-boot good`.
    pub command: String,
    /// What happened: `could not run (...)`, `exited with status 1: stderr`, `took longer than 60 s`.
    pub why: String,
}

/// Why the verdict could not be acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlessError {
    /// The slot is healthy but could not be blessed: it stays on its boot counter, so a later
    /// reboot still counts down towards the previous slot.
    #[error("the healthy slot could not be blessed: {0}")]
    Good(CommandFailed),
    /// The slot is unhealthy and the reboot could not be requested.
    #[error("the unhealthy slot could not be rebooted away from: {reboot}")]
    Reboot {
        /// Why marking it bad failed too, if it did.
        mark_bad_failed: Option<CommandFailed>,
        reboot: CommandFailed,
    },
}

/// Asks systemd for an orderly reboot with `systemctl reboot --no-block` (see the module docs):
/// the gate after a failed verdict, and `install --reboot` once a slot is written.
pub async fn request_reboot(systemctl: &Path) -> Result<(), CommandFailed> {
    run(systemctl, &["reboot", "--no-block"]).await
}

/// Acts on `verdict` with the commands of `settings`.
pub async fn bless(
    settings: &HealthGateSettings,
    verdict: &Verdict,
) -> Result<Blessing, BlessError> {
    if verdict.is_healthy() {
        run(&settings.bless_boot, &["good"])
            .await
            .map_err(BlessError::Good)?;
        tracing::info!("the booted slot is blessed: {}", verdict.summary());
        return Ok(Blessing::Blessed);
    }
    tracing::error!(
        "the booted slot failed its health gate, rolling back: {}",
        verdict.summary()
    );
    let mark_bad = run(&settings.bless_boot, &["bad"]).await.err();
    if let Some(failed) = &mark_bad {
        tracing::error!("cannot mark the booted entry bad ({failed}); rebooting anyway");
    }
    match request_reboot(&settings.systemctl).await {
        Ok(()) => Ok(Blessing::RollingBack {
            mark_bad_failed: mark_bad.map(|failed| failed.to_string()),
        }),
        Err(reboot) => Err(BlessError::Reboot {
            mark_bad_failed: mark_bad,
            reboot,
        }),
    }
}

/// Runs `program args` and waits for its success.
async fn run(program: &Path, args: &[&str]) -> Result<(), CommandFailed> {
    let command = format!("{} {}", program.display(), args.join(" "));
    let failed = |why: String| CommandFailed {
        command: command.clone(),
        why,
    };
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(COMMAND_LIMIT, output).await {
        Err(_) => {
            return Err(failed(format!(
                "took longer than {} s",
                COMMAND_LIMIT.as_secs()
            )));
        }
        Ok(Err(e)) => return Err(failed(format!("could not run ({e})"))),
        Ok(Ok(output)) => output,
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr: String = stderr.trim().chars().take(300).collect();
    Err(failed(format!("exited with {}: {stderr}", output.status)))
}
