//! `bunkerctl update rollout`: start, watch and steer a rollout across hubs, over
//! `org.bunkeros.Update1`'s `Rollout*` methods on the coordinating hub.
//!
//! The status is a line saying whether the rollout moves (and why not), then a table of every
//! hub by wave: its state, its attempt and, for a failed hub, the reason.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use appliance::dbus::contracts::Update1Proxy;
use clap::Subcommand;
use serde_json::Value;

use crate::table::{self, Cell};
use crate::terminal::{Palette, Tone, print};
use crate::time_display::{format_utc, humanize_since, humanize_until, now_usec};

/// updated answers rollout calls from memory and its state file.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest plan file read (updated refuses larger ones too).
const MAX_PLAN_BYTES: u64 = 256 * 1024;

/// `bunkerctl update rollout …`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum RolloutCommand {
    /// Start the rollout written in PLAN (TOML: the release, its expected PCR 11, waves, hubs)
    Start {
        plan: PathBuf,
        /// Print updated's answer (JSON) as it sent it
        #[arg(long)]
        json: bool,
    },
    /// Whether the rollout moves or why not, and every hub's state by wave
    Status {
        /// Print updated's rollout document (JSON) as it sent it
        #[arg(long)]
        json: bool,
    },
    /// Stop instructing new hubs (hubs already installing finish)
    Pause {
        #[arg(long)]
        reason: Option<String>,
    },
    /// Continue a paused rollout, or a halted one: then the reason is the override, and the
    /// failed hubs are instructed again
    Resume {
        #[arg(long)]
        reason: String,
    },
    /// End the rollout for good and withdraw instructions not acted on
    Abort {
        #[arg(long)]
        reason: Option<String>,
    },
}

pub fn run(cmd: RolloutCommand) -> Result<ExitCode> {
    let (document, json) = match cmd {
        RolloutCommand::Start { plan, json } => {
            let text = read_plan(&plan)?;
            (ask(async |u| u.rollout_start(&text).await)?, json)
        }
        RolloutCommand::Status { json } => (ask(async |u| u.rollout_status().await)?, json),
        RolloutCommand::Pause { reason } => {
            let reason = reason.unwrap_or_default();
            (ask(async |u| u.rollout_pause(&reason).await)?, false)
        }
        RolloutCommand::Resume { reason } => {
            (ask(async |u| u.rollout_resume(&reason).await)?, false)
        }
        RolloutCommand::Abort { reason } => {
            let reason = reason.unwrap_or_default();
            (ask(async |u| u.rollout_abort(&reason).await)?, false)
        }
    };
    if json {
        print(&format!("{document}\n"))?;
    } else {
        let status: Value =
            serde_json::from_str(&document).context("updated's answer is not JSON")?;
        print(&render_status(&status, now_usec(), Palette::for_stdout()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn read_plan(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_PLAN_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {} (a TOML text file)", path.display()))?;
    if text.len() as u64 > MAX_PLAN_BYTES {
        bail!(
            "{} is larger than {MAX_PLAN_BYTES} bytes: not a rollout plan",
            path.display()
        );
    }
    Ok(text)
}

fn ask(call: impl AsyncFnOnce(&Update1Proxy<'_>) -> zbus::Result<String>) -> Result<String> {
    crate::update_cmd::ask(ANSWER_TIMEOUT, call)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

fn usec(value: &Value) -> Option<u64> {
    value.as_u64().map(|secs| secs.saturating_mul(1_000_000))
}

/// The headline, the timing line, then the hubs table.
pub fn render_status(status: &Value, now_usec: u64, palette: Palette) -> String {
    if status["state"] == "none" {
        return "no rollout was started from this hub\n".to_owned();
    }
    let plan = &status["plan"];
    let state = text(&status["state"]);
    let mut out = format!(
        "rollout {}: BunkerOS {} from {}: {}",
        text(&plan["id"]),
        text(&plan["release_version"]),
        text(&plan["source"]),
        palette.paint(state_tone(state), state)
    );
    if let Some(since) = usec(&status["since"]) {
        out.push_str(&format!(" since {}", format_utc(since)));
    }
    if let Some(reason) = status["reason"].as_str() {
        out.push_str(&format!(": {reason}"));
    }
    out.push('\n');
    if state == "running" {
        if let Some(at) = usec(&status["next_wave_at"]) {
            out.push_str(&format!(
                "wave {} healthy; the next wave starts {}\n",
                text(&status["current_wave"]),
                humanize_until(now_usec, Some(at))
            ));
        } else if let Some(at) = usec(&status["wave_deadline"]) {
            out.push_str(&format!(
                "wave {} must be healthy {} or the rollout halts\n",
                text(&status["current_wave"]),
                humanize_until(now_usec, Some(at))
            ));
        }
    }
    out.push_str(&table::render(
        &["WAVE", "HUB", "STATE", "ATTEMPT", "SINCE", "REASON"],
        &hub_rows(status, now_usec),
        palette,
    ));
    for problem in status["exchange_problems"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        out.push_str(&format!("exchange problem: {}\n", text(problem)));
    }
    if state == "halted" {
        out.push_str(
            "resume with `bunkerctl update rollout resume --reason \"why it is safe\"`, or abort\n",
        );
    }
    out
}

fn hub_rows(status: &Value, now_usec: u64) -> Vec<Vec<Cell>> {
    let waves = status["waves"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    waves
        .iter()
        .flat_map(|wave| {
            let hubs = wave["hubs"].as_array().cloned().unwrap_or_default();
            hubs.into_iter().map(move |hub| {
                let state = text(&hub["state"]).to_owned();
                vec![
                    Cell::plain(format!(
                        "{} ({})",
                        text(&wave["name"]),
                        text(&wave["state"])
                    )),
                    Cell::plain(text(&hub["id"])),
                    Cell::toned(hub_tone(&state), state),
                    Cell::plain(hub["attempt"].as_u64().unwrap_or(0).to_string()),
                    Cell::plain(humanize_since(now_usec, usec(&hub["since"]))),
                    Cell::plain(hub["reason"].as_str().unwrap_or("")),
                ]
            })
        })
        .collect()
}

fn state_tone(state: &str) -> Tone {
    match state {
        "running" | "completed" => Tone::Good,
        "halted" | "aborted" => Tone::Bad,
        _ => Tone::Pending,
    }
}

fn hub_tone(state: &str) -> Tone {
    match state {
        "reported-healthy" => Tone::Good,
        "failed" => Tone::Bad,
        "instructed" => Tone::Pending,
        _ => Tone::Dim,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn halted() -> Value {
        json!({
            "plan": {"id": "spring", "release_version": "0.2.0", "source": "usb"},
            "state": "halted", "since": NOW - 60,
            "reason": "hub h3 in wave w2 failed: the hub reported: unit:minerd.service: failed",
            "current_wave": "w2", "wave_deadline": null, "next_wave_at": null,
            "waves": [
                {"name": "w1", "state": "done", "hubs": [
                    {"id": "h1", "state": "reported-healthy", "reason": null, "attempt": 1, "since": NOW - 4000}]},
                {"name": "w2", "state": "current", "hubs": [
                    {"id": "h2", "state": "reported-healthy", "reason": null, "attempt": 1, "since": NOW - 100},
                    {"id": "h3", "state": "failed", "reason": "the hub reported: unit:minerd.service: failed", "attempt": 1, "since": NOW - 60}]},
                {"name": "w3", "state": "waiting", "hubs": [
                    {"id": "h4", "state": "waiting", "reason": null, "attempt": 0, "since": NOW - 5000}]}
            ],
            "exchange_problems": []
        })
    }

    #[test]
    fn a_halted_rollout_says_why_and_shows_every_hub_by_wave() {
        let out = render_status(&halted(), NOW * 1_000_000, Palette::choose(false, None));
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("rollout spring: BunkerOS 0.2.0 from usb: halted since "),
            "{out}"
        );
        assert!(
            lines[0].ends_with(
                ": hub h3 in wave w2 failed: the hub reported: unit:minerd.service: failed"
            ),
            "{out}"
        );
        assert!(
            lines[1].starts_with("WAVE") && lines[1].contains("REASON"),
            "{out}"
        );
        let h3 = lines[2..].iter().find(|l| l.contains(" h3 ")).unwrap();
        assert!(
            h3.starts_with("w2 (current)")
                && h3.contains("failed")
                && h3.contains("1m ago")
                && h3.ends_with("unit:minerd.service: failed"),
            "{h3}"
        );
        let h4 = lines[2..].iter().find(|l| l.contains(" h4 ")).unwrap();
        assert!(
            h4.starts_with("w3 (waiting)") && h4.contains("waiting"),
            "{h4}"
        );
        assert!(
            out.contains("resume with `bunkerctl update rollout resume --reason"),
            "{out}"
        );
    }

    #[test]
    fn a_running_rollout_says_when_the_wave_moves_on() {
        let mut status = halted();
        status["state"] = json!("running");
        status["reason"] = Value::Null;
        status["since"] = Value::Null;
        status["next_wave_at"] = json!(NOW + 600);
        let out = render_status(&status, NOW * 1_000_000, Palette::choose(false, None));
        assert!(
            out.contains("wave w2 healthy; the next wave starts in 10m"),
            "{out}"
        );
        status["next_wave_at"] = Value::Null;
        status["wave_deadline"] = json!(NOW + 3600);
        let out = render_status(&status, NOW * 1_000_000, Palette::choose(false, None));
        assert!(out.contains("wave w2 must be healthy in 1h"), "{out}");
        assert_eq!(
            render_status(&json!({"state": "none"}), 0, Palette::choose(false, None)),
            "no rollout was started from this hub\n"
        );
    }
}
