//! `bunkerctl update`: signed image updates (updated), over `org.bunkeros.Update1`.
//!
//! `status` shows the slots and what the next boot starts; `check` verifies a release without
//! installing it; `install` starts one and follows its progress (download, write, verify) until
//! updated reports the end, with a bar on a terminal and a line per step elsewhere; `rollout`
//! (in `update_rollout`) steers a rollout across hubs.

use std::io::Write as _;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use appliance::dbus::contracts::{UPDATE, Update1Proxy};
use clap::Subcommand;
use serde_json::Value;
use zbus::export::futures_core::Stream;

use crate::bus_call;
use crate::progress_bar::ProgressStyle;
use crate::terminal::print;

/// How long updated may take to answer a read (it answers from memory).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// A check reads and verifies the metadata (a slow mirror or medium included).
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);
/// While following an install, the status is read this often too (signals can be lost when the
/// bus restarts; the status document is the truth).
const POLL_EVERY: Duration = Duration::from_secs(2);
/// Who may check and install, for the refusal message.
const OPERATORS: &str = "root or a member of bunkeros-operators";

/// `bunkerctl update …`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum UpdateCommand {
    /// The slots, what runs now and what the next boot starts, the last result and its reason
    Status {
        /// Print updated's status document (JSON) as it sent it
        #[arg(long)]
        json: bool,
    },
    /// Verify the release at SOURCE against this image's TUF root; install nothing
    #[command(after_help = SOURCE_HELP)]
    Check {
        /// Where the release is; default: the source in updated.toml
        source: Option<String>,
        /// Print updated's answer (JSON) as it sent it
        #[arg(long)]
        json: bool,
    },
    /// Install the release at SOURCE into the inactive slot, showing download, write and verify
    #[command(after_help = SOURCE_HELP)]
    Install {
        /// Where the release is; default: the source in updated.toml
        source: Option<String>,
        /// Reboot into the new slot once it is installed
        #[arg(long)]
        reboot: bool,
    },
    /// Roll a release out across hubs in waves, each gated on the last one's signed health
    #[command(subcommand)]
    Rollout(crate::update_rollout::RolloutCommand),
}

const SOURCE_HELP: &str = "\
SOURCE is `usb` (the removable medium labelled BUNKERUPD), an absolute directory holding a \
release repository (metadata/ and targets/), or an https:// mirror.";

pub fn run(cmd: UpdateCommand) -> Result<ExitCode> {
    match cmd {
        UpdateCommand::Status { json } => {
            let document = ask(ANSWER_TIMEOUT, async |update| update.status().await)?;
            if json {
                print(&format!("{document}\n"))?;
            } else {
                print(&render_status(&parse(&document)?))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        UpdateCommand::Check { source, json } => {
            let source = source.unwrap_or_default();
            let document = ask(CHECK_TIMEOUT, async |update| update.check(&source).await)?;
            let answer = parse(&document)?;
            if json {
                print(&format!("{document}\n"))?;
            } else {
                print(&render_check(&answer))?;
            }
            Ok(if answer["installable"] == Value::Bool(true) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        UpdateCommand::Install { source, reboot } => install(&source.unwrap_or_default(), reboot),
        UpdateCommand::Rollout(cmd) => crate::update_rollout::run(cmd),
    }
}

/// One call to updated on the system bus, bounded by `timeout`; a refusal is updated's sentence.
pub(crate) fn ask(
    timeout: Duration,
    call: impl AsyncFnOnce(&Update1Proxy<'_>) -> zbus::Result<String>,
) -> Result<String> {
    bus_call::on_system_bus(timeout, async |connection| {
        let update = Update1Proxy::new(connection)
            .await
            .context("creating the org.bunkeros.Update1 proxy")?;
        call(&update)
            .await
            .map_err(|e| bus_call::refused(UPDATE, OPERATORS, e))
    })
}

fn parse(document: &str) -> Result<Value> {
    serde_json::from_str(document).context("updated's answer is not JSON")
}

/// Starts the install, follows it, prints the result; exit status 1 unless it installed.
fn install(source: &str, reboot: bool) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let connection = bounded(appliance::dbus::system_bus())
            .await?
            .context("connecting to the system bus")?;
        let update = Update1Proxy::new(&connection)
            .await
            .context("creating the org.bunkeros.Update1 proxy")?;
        // Subscribe before starting, so no progress or end is missed.
        let mut progress = bounded(update.receive_progress()).await??;
        let mut finished = bounded(update.receive_install_finished()).await??;
        let started = tokio::time::timeout(CHECK_TIMEOUT, update.install(source, reboot))
            .await
            .map_err(|_| anyhow!("no answer over D-Bus within {CHECK_TIMEOUT:?}"))?
            .map_err(|e| bus_call::refused(UPDATE, OPERATORS, e))?;
        let release = parse(&started)?;
        print(&format!(
            "installing BunkerOS {} ({}) into slot {}\n",
            text(&release["version"]),
            text(&release["profile"]),
            text(&release["slot"])
        ))?;
        let style = ProgressStyle::for_stdout();
        let mut shown_phase = String::new();
        let mut poll = tokio::time::interval(POLL_EVERY);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            tokio::select! {
                Some(signal) = next(&mut progress) => {
                    let Ok(args) = signal.args() else { continue };
                    if args.phase != shown_phase && !shown_phase.is_empty() {
                        print(style.finish())?;
                    }
                    shown_phase = args.phase.to_owned();
                    let mut out = std::io::stdout().lock();
                    out.write_all(style.render_bytes(args.phase, args.done, args.total).as_bytes())
                        .and_then(|()| out.flush())
                        .context("writing to stdout")?;
                }
                Some(signal) = next(&mut finished) => {
                    let Ok(args) = signal.args() else { continue };
                    break parse(args.result)?;
                }
                _ = poll.tick() => {
                    let status = parse(&bounded(update.status()).await?.map_err(|e| bus_call::refused(UPDATE, OPERATORS, e))?)?;
                    if status["activity"] != "installing" && status["last_result"]["version"] == release["version"] {
                        break status["last_result"].clone();
                    }
                }
            }
        };
        if !shown_phase.is_empty() {
            print(style.finish())?;
        }
        print(&render_result(&result, reboot))?;
        Ok(if result["kind"] == "installed" {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

async fn bounded<T>(call: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(ANSWER_TIMEOUT, call)
        .await
        .map_err(|_| anyhow!("no answer over D-Bus within {ANSWER_TIMEOUT:?}"))
}

/// The next item of a stream (zbus exports the `Stream` trait but no combinators).
async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

/// A slot's boot entry in words: `blessed`, `trying (2 tries left)`, `marked bad`, `empty`.
fn entry_words(slot: &Value) -> String {
    match text(&slot["entry"]) {
        "trying" => format!(
            "new, not yet blessed ({} boot tries left)",
            slot["tries_left"].as_u64().unwrap_or(0)
        ),
        "bad" => "marked bad: the boot loader skips it".to_owned(),
        "none" => "no boot entry".to_owned(),
        other => other.to_owned(),
    }
}

pub fn render_status(status: &Value) -> String {
    let mut out = String::new();
    let booted = &status["booted"];
    out.push_str(&format!(
        "running    BunkerOS {} from slot {}\n",
        text(&booted["version"]),
        text(&booted["slot"])
    ));
    let next = &status["next"];
    if next.is_object() {
        out.push_str(&format!(
            "next boot  slot {} (BunkerOS {})\n",
            text(&next["slot"]),
            text(&next["version"])
        ));
    }
    for slot in status["slots"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        out.push_str(&format!(
            "slot {}     {:<10} {}\n",
            text(&slot["slot"]),
            slot["version"].as_str().unwrap_or("-"),
            entry_words(slot)
        ));
    }
    out.push_str(&format!("activity   {}\n", text(&status["activity"])));
    let progress = &status["progress"];
    if progress.is_object() {
        out.push_str(&format!(
            "progress   {} {} of {} MiB\n",
            text(&progress["phase"]),
            progress["done"].as_u64().unwrap_or(0) >> 20,
            progress["total"].as_u64().unwrap_or(0) >> 20
        ));
    }
    let last = &status["last_result"];
    if last.is_object() && last.get("kind").is_some() {
        out.push_str(&format!("last       {}\n", result_line(last)));
    }
    let rollout = &status["rollout"];
    match rollout["role"].as_str() {
        Some("coordinator") => {
            out.push_str("rollouts   coordinated here (`bunkerctl update rollout status`)\n")
        }
        Some("follower") => out.push_str(&format!(
            "rollouts   follows {}\n",
            text(&rollout["coordinator"])
        )),
        _ => {}
    }
    out
}

/// `installed 0.1.1 into slot b at 2026-…: reason`.
fn result_line(result: &Value) -> String {
    let mut line = format!(
        "{} {} (slot {}) at {}",
        text(&result["kind"]),
        result["version"].as_str().unwrap_or("-"),
        result["slot"].as_str().unwrap_or("-"),
        text(&result["at"])
    );
    if let Some(reason) = result["reason"].as_str().filter(|r| !r.is_empty()) {
        line.push_str(": ");
        line.push_str(reason);
    }
    line
}

pub fn render_check(answer: &Value) -> String {
    if answer["installable"] == Value::Bool(true) {
        format!(
            "release BunkerOS {} for {} verifies (TUF metadata version {}, expires {}): it would be installed into slot {}\n",
            text(&answer["version"]),
            text(&answer["profile"]),
            answer["metadata_version"].as_u64().unwrap_or(0),
            text(&answer["expires"]),
            text(&answer["slot"])
        )
    } else {
        format!("refused: {}\n", text(&answer["reason"]))
    }
}

fn render_result(result: &Value, reboot: bool) -> String {
    if result["kind"] == "installed" {
        let then = if reboot {
            "the appliance reboots into it now".to_owned()
        } else {
            "it starts at the next boot (`systemctl reboot`)".to_owned()
        };
        format!(
            "installed BunkerOS {} into slot {}: {then}; it is blessed once its health gate passes, else the appliance falls back\n",
            text(&result["version"]),
            text(&result["slot"]),
        )
    } else {
        format!("{}\n", result_line(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_names_the_slots_and_what_boots_next() {
        let status = json!({
            "booted": {"slot": "a", "version": "0.1.0", "roothash": "ab"},
            "next": {"slot": "b", "version": "0.1.1"},
            "slots": [
                {"slot": "a", "version": "0.1.0", "entry": "blessed"},
                {"slot": "b", "version": "0.1.1", "entry": "trying", "tries_left": 3}
            ],
            "activity": "idle",
            "progress": null,
            "last_result": {"kind": "installed", "version": "0.1.1", "slot": "b",
                            "at": "2026-11-22T01:00:00Z", "reason": ""},
            "rollout": {"role": "follower", "coordinator": "geneva-1"}
        });
        let text = render_status(&status);
        assert!(text.contains("rollouts   follows geneva-1"), "{text}");
        assert!(
            text.contains("running    BunkerOS 0.1.0 from slot a"),
            "{text}"
        );
        assert!(
            text.contains("next boot  slot b (BunkerOS 0.1.1)"),
            "{text}"
        );
        assert!(
            text.contains("not yet blessed (3 boot tries left)"),
            "{text}"
        );
        assert!(
            text.contains("last       installed 0.1.1 (slot b) at 2026-11-22T01:00:00Z"),
            "{text}"
        );
    }

    #[test]
    fn a_refused_check_says_why() {
        let answer = json!({"installable": false, "reason": "the release offers image 0.0.9, which is not newer than the running 0.1.0: a downgrade"});
        assert_eq!(
            render_check(&answer),
            "refused: the release offers image 0.0.9, which is not newer than the running 0.1.0: a downgrade\n"
        );
    }
}
