//! A bulk action's outcome (`Job`'s document): how many miners it reached, and each one that
//! failed with minerd's sentence, so the operator knows exactly which miners to look at.

use serde_json::Value;

use crate::ca_view::text;
use crate::layout::list;
use crate::table::{self, Cell};
use crate::terminal::{Palette, Tone};

/// What the action is, as the operator typed it: `reboot`, `power-target 2500`.
pub fn action_label(job: &Value) -> String {
    match job["argument"].as_str().filter(|a| !a.is_empty()) {
        Some(argument) => format!("{} {argument}", text(&job["action"])),
        None => text(&job["action"]),
    }
}

/// The summary printed when a job has finished, e.g.
///
/// ```text
/// reboot on owner=acme: 4 miners, 3 ok, 1 failed
///   job 7, finished 2026-11-21T09:01:10Z
/// FAILED MINER  WHY
/// 10.1.0.4      the miner did not answer within 5 s
/// ```
pub fn render_job_summary(job: &Value, palette: Palette) -> String {
    let failed = job["failed"].as_u64().unwrap_or(0);
    let total = job["total"].as_u64().unwrap_or(0);
    let ok = job["done"].as_u64().unwrap_or(0).saturating_sub(failed);
    let tone = if failed > 0 { Tone::Bad } else { Tone::Good };
    let counts = format!("{total} miners, {ok} ok, {failed} failed");
    let mut out = format!(
        "{} on {}: {}\n  job {}, finished {}\n",
        action_label(job),
        text(&job["selection"]),
        palette.paint(tone, &counts),
        text(&job["id"]),
        text(&job["finished_at"]),
    );
    let failures: Vec<Vec<Cell>> = list(&job["results"])
        .iter()
        .filter(|result| result["ok"] != Value::Bool(true))
        .map(|result| {
            vec![
                Cell::toned(Tone::Bad, text(&result["ip"])),
                Cell::plain(text(&result["message"])),
            ]
        })
        .collect();
    if !failures.is_empty() {
        out.push_str(&table::render(&["FAILED MINER", "WHY"], &failures, palette));
    }
    out
}
