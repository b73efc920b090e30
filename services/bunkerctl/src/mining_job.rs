//! A bulk action (`set-pools`, `reboot`, `sleep`, `wake`, `power-target`): ask minerd to start
//! it as a job, follow the job to its end, and report every miner that failed.
//!
//! Progress comes from minerd's `JobProgress` signals, subscribed to before the job starts so
//! that none is missed; because a signal can still be lost (a bus that drops it, a minerd that
//! restarts the subscription), `Job` is also asked every [`POLL_EVERY`], and only `Job`'s
//! `finished_at` ends the wait. minerd bounds every miner's step, so a job always finishes; the
//! operator can stop following with Ctrl-C (the job goes on in minerd).

use std::future::poll_fn;
use std::io::{BufRead, IsTerminal, Write};
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use appliance::dbus::contracts::{JobProgressStream, Mining1Proxy};
use serde_json::Value;
use zbus::export::futures_core::Stream;

use crate::mining_cmd::{ActionArgs, refused};
use crate::mining_view::job::{action_label, render_job_summary};
use crate::progress_bar::{Progress, ProgressStyle};
use crate::terminal::Palette;
use crate::terminal::print;

/// How long minerd may take to answer one call (it answers at once; the job runs after).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How often `Job` is asked, in case signals were missed.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// One bulk action as the operator asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkAction {
    action: &'static str,
    argument: String,
    args: ActionArgs,
}

impl BulkAction {
    /// `action` (a `StartAction` word) on `args.selection`.
    pub fn new(action: &'static str, args: ActionArgs) -> Self {
        Self {
            action,
            argument: String::new(),
            args,
        }
    }

    /// With `StartAction`'s argument (the watts of `power-target`).
    pub fn with_argument(mut self, argument: impl ToString) -> Self {
        self.argument = argument.to_string();
        self
    }

    fn label(&self) -> String {
        if self.argument.is_empty() {
            self.action.to_owned()
        } else {
            format!("{} {}", self.action, self.argument)
        }
    }
}

/// Starts `bulk`, follows it, prints the summary; exit status 1 when any miner failed.
pub fn run(bulk: BulkAction) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(start_and_follow(bulk))
}

async fn start_and_follow(bulk: BulkAction) -> Result<ExitCode> {
    let connection = bounded(appliance::dbus::system_bus())
        .await?
        .context("connecting to the system bus")?;
    let mining = Mining1Proxy::new(&connection)
        .await
        .context("creating the org.bunkeros.Mining1 proxy")?;
    if whole_fleet_unconfirmed(&bulk) {
        if !std::io::stdin().is_terminal() {
            bail!(
                "{} on all miners needs --yes when there is no terminal to ask on; nothing was done",
                bulk.label()
            );
        }
        if !confirmed(&mining, &bulk).await? {
            print("Nothing was done.\n")?;
            return Ok(ExitCode::FAILURE);
        }
    }
    let signals = bounded(mining.receive_job_progress())
        .await?
        .context("subscribing to minerd's JobProgress signals")?;
    let id = bounded(mining.start_action(bulk.action, &bulk.args.selection, &bulk.argument))
        .await?
        .map_err(refused)?;
    let style = ProgressStyle::for_stdout();
    let job = follow(&mining, &id, signals, style, &bulk.label())
        .await
        .with_context(|| {
            format!("following job {id} (it goes on in minerd; `bunkerctl mining status` shows the fleet)")
        })?;
    print(style.finish())?;
    print(&render_job_summary(&job, Palette::for_stdout()))?;
    Ok(exit_status(&job))
}

/// 0 when every miner succeeded, else 1.
pub fn exit_status(job: &Value) -> ExitCode {
    let failed = job["failed"].as_u64().unwrap_or(0);
    let unfinished = job["results"]
        .as_array()
        .is_some_and(|results| results.iter().any(|r| r["ok"] != Value::Bool(true)));
    if failed > 0 || unfinished {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The whole fleet without `--yes`: asked on a terminal, refused without one (a script that
/// means the whole fleet says so).
fn whole_fleet_unconfirmed(bulk: &BulkAction) -> bool {
    bulk.args.selection.trim() == "all" && !bulk.args.yes
}

async fn confirmed(mining: &Mining1Proxy<'_>, bulk: &BulkAction) -> Result<bool> {
    let miners = bounded(mining.miners("all")).await?.map_err(refused)?;
    let count = serde_json::from_str::<Value>(&miners)
        .ok()
        .and_then(|v| v.as_array().map(Vec::len))
        .map_or_else(|| "every".to_owned(), |n| n.to_string());
    print(&format!(
        "{} on all {count} miners of the site? [y/N] ",
        bulk.label()
    ))?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
}

/// Follows job `id` until `Job` says it finished, showing progress as it changes; returns the
/// finished job's document.
async fn follow(
    mining: &Mining1Proxy<'_>,
    id: &str,
    mut signals: JobProgressStream,
    style: ProgressStyle,
    label: &str,
) -> Result<Value> {
    let mut shown: Option<Progress> = None;
    let mut show = |progress: Progress| -> Result<()> {
        // A signal can arrive after a poll that already read further: never step back.
        let newer = shown.is_none_or(|last| {
            progress != last && progress.done >= last.done && progress.failed >= last.failed
        });
        if newer {
            shown = Some(progress);
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(style.render(label, progress).as_bytes())
                .and_then(|()| stdout.flush())
                .context("writing to stdout")?;
        }
        Ok(())
    };
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut signals_open = true;
    loop {
        tokio::select! {
            signal = next(&mut signals), if signals_open => {
                let Some(signal) = signal else {
                    // The subscription ended (the bus went away): polling carries on alone.
                    signals_open = false;
                    continue;
                };
                // A signal that does not parse is skipped: the next poll of `Job` covers it.
                let Ok(args) = signal.args() else { continue };
                if args.id != id {
                    continue;
                }
                let progress = Progress { done: args.done, failed: args.failed, total: args.total };
                show(progress)?;
                if progress.done < progress.total {
                    continue;
                }
            }
            _ = poll.tick() => {}
        }
        let job = job_document(mining, id).await?;
        show(progress_of(&job))?;
        if !job["finished_at"].is_null() {
            return Ok(job);
        }
    }
}

async fn job_document(mining: &Mining1Proxy<'_>, id: &str) -> Result<Value> {
    let document = bounded(mining.job(id)).await?.map_err(refused)?;
    let job: Value = serde_json::from_str(&document).context("minerd's job is not JSON")?;
    if job.get("finished_at").is_none() {
        return Err(anyhow!(
            "minerd's job document for {} lacks finished_at",
            action_label(&job)
        ));
    }
    Ok(job)
}

fn progress_of(job: &Value) -> Progress {
    let count = |key: &str| u32::try_from(job[key].as_u64().unwrap_or(0)).unwrap_or(u32::MAX);
    Progress {
        done: count("done"),
        failed: count("failed"),
        total: count("total"),
    }
}

/// `call` bounded by [`ANSWER_TIMEOUT`]: a minerd that never answers must not hang the shell.
async fn bounded<T>(call: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(ANSWER_TIMEOUT, call)
        .await
        .map_err(|_| anyhow!("no answer over D-Bus within {ANSWER_TIMEOUT:?}"))
}

/// The next item of a stream (zbus exports the `Stream` trait but no combinators).
async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn any_failed_miner_fails_the_command() {
        let ok = json!({"failed": 0, "results": [{"ip": "10.1.0.2", "ok": true}]});
        assert_eq!(exit_status(&ok), ExitCode::SUCCESS);
        let failed = json!({"failed": 1, "results": [{"ip": "10.1.0.2", "ok": false}]});
        assert_eq!(exit_status(&failed), ExitCode::FAILURE);
        let inconsistent = json!({"failed": 0, "results": [{"ip": "10.1.0.2", "ok": false}]});
        assert_eq!(
            exit_status(&inconsistent),
            ExitCode::FAILURE,
            "a result not ok is a failure whatever the count says"
        );
    }

    #[test]
    fn progress_comes_from_the_job_document() {
        let job = json!({"done": 3, "failed": 1, "total": 5, "finished_at": null});
        assert_eq!(
            progress_of(&job),
            Progress {
                done: 3,
                failed: 1,
                total: 5
            }
        );
    }

    #[test]
    fn the_label_carries_the_argument() {
        let args = ActionArgs {
            selection: "owner=acme".into(),
            yes: false,
        };
        assert_eq!(BulkAction::new("reboot", args.clone()).label(), "reboot");
        assert_eq!(
            BulkAction::new("power-target", args)
                .with_argument(2500)
                .label(),
            "power-target 2500"
        );
    }
}
