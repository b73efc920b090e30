//! The directory exchange: how plans, instructions and reports travel on a single site (and in
//! tests). One directory per plan:
//!
//! ```text
//! <dir>/<plan-id>/plan.toml
//! <dir>/<plan-id>/instructions/<hub>.json
//! <dir>/<plan-id>/reports/<hub>.json
//! ```
//!
//! Every file is written to a hidden temporary name in the same directory, flushed and renamed,
//! so a reader sees the old document or the new one, never half of one. Readers open only the
//! exact names above (temporary files are never read), refuse documents over
//! [`MAX_DOCUMENT_BYTES`], and refuse a document that does not parse or that names another plan
//! or hub than its path: a typed [`ExchangeError`], and nothing changes.
//!
//! Between hubs the same documents go over hubd's links instead
//! ([`remote_exchange`](super::remote_exchange)): the coordinator serves this directory, and
//! both ends check what they receive with this module's parsers.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;

use super::messages::{Instruction, Report};
use super::plan::{MAX_PLAN_BYTES, is_name};

/// Largest instruction or report read: evidence with a TPM quote is a few KiB.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

static TEMP_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Why a document could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: usize },
    #[error("{}: not a valid {kind}: {reason}", path.display())]
    Malformed {
        path: PathBuf,
        kind: &'static str,
        reason: String,
    },
    #[error("{}: the {kind} names {field} {found:?}, but its path says {expected:?}", path.display())]
    Mismatch {
        path: PathBuf,
        kind: &'static str,
        field: &'static str,
        found: String,
        expected: String,
    },
    #[error("{0:?} is not a plan or hub name the exchange accepts")]
    BadName(String),
}

/// A directory shared by the coordinator and the hubs' agents.
#[derive(Debug, Clone)]
pub struct DirectoryExchange {
    root: PathBuf,
}

impl DirectoryExchange {
    pub fn new(root: impl Into<PathBuf>) -> DirectoryExchange {
        DirectoryExchange { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Publishes the plan's text, so every hub can read what it is part of.
    pub fn publish_plan(&self, plan_id: &str, text: &str) -> Result<(), ExchangeError> {
        let dir = self.plan_dir(plan_id)?;
        write_atomic(&dir, "plan.toml", text.as_bytes())
    }

    /// The published plan's text, if any.
    pub fn read_plan(&self, plan_id: &str) -> Result<Option<String>, ExchangeError> {
        let path = self.plan_dir(plan_id)?.join("plan.toml");
        let Some(bytes) = read_bounded(&path, MAX_PLAN_BYTES)? else {
            return Ok(None);
        };
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| malformed(&path, "plan", "not UTF-8 text".to_owned()))
    }

    /// Writes (or replaces) one hub's instruction.
    pub fn write_instruction(&self, instruction: &Instruction) -> Result<(), ExchangeError> {
        let dir = self.plan_dir(&instruction.plan_id)?.join("instructions");
        write_json(&dir, &instruction.hub, instruction)
    }

    /// Withdraws one hub's instruction (an aborted rollout); absent is fine.
    pub fn remove_instruction(&self, plan_id: &str, hub: &str) -> Result<(), ExchangeError> {
        let path = self.document_path(plan_id, "instructions", hub)?;
        match fs::remove_file(&path) {
            Err(source) if source.kind() != io::ErrorKind::NotFound => {
                Err(ExchangeError::Io { path, source })
            }
            _ => Ok(()),
        }
    }

    /// One hub's instruction in one plan, if written.
    pub fn read_instruction(
        &self,
        plan_id: &str,
        hub: &str,
    ) -> Result<Option<Instruction>, ExchangeError> {
        let path = self.document_path(plan_id, "instructions", hub)?;
        read_bounded(&path, MAX_DOCUMENT_BYTES)?
            .map(|bytes| parse_instruction(&bytes, plan_id, hub).map_err(|e| e.at(&path)))
            .transpose()
    }

    /// Every instruction for `hub`, across the plans in the exchange (directories that are not
    /// plan names are skipped); a malformed one is returned as its error, not skipped.
    pub fn instructions_for(
        &self,
        hub: &str,
    ) -> Result<Vec<Result<Instruction, ExchangeError>>, ExchangeError> {
        check_name(hub)?;
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(ExchangeError::Io {
                    path: self.root.clone(),
                    source,
                });
            }
        };
        let mut plans: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| is_name(name))
            .collect();
        plans.sort();
        Ok(plans
            .iter()
            .filter_map(|plan| self.read_instruction(plan, hub).transpose())
            .collect())
    }

    /// Writes (or replaces) one hub's report.
    pub fn write_report(&self, report: &Report) -> Result<(), ExchangeError> {
        let dir = self.plan_dir(&report.plan_id)?.join("reports");
        write_json(&dir, &report.hub, report)
    }

    /// One hub's report in one plan, if written.
    pub fn read_report(&self, plan_id: &str, hub: &str) -> Result<Option<Report>, ExchangeError> {
        let path = self.document_path(plan_id, "reports", hub)?;
        read_bounded(&path, MAX_DOCUMENT_BYTES)?
            .map(|bytes| parse_report(&bytes, plan_id, hub).map_err(|e| e.at(&path)))
            .transpose()
    }

    fn plan_dir(&self, plan_id: &str) -> Result<PathBuf, ExchangeError> {
        check_name(plan_id)?;
        Ok(self.root.join(plan_id))
    }

    fn document_path(
        &self,
        plan_id: &str,
        kind: &str,
        hub: &str,
    ) -> Result<PathBuf, ExchangeError> {
        check_name(hub)?;
        Ok(self
            .plan_dir(plan_id)?
            .join(kind)
            .join(format!("{hub}.json")))
    }
}

/// Parses an instruction that must be for `plan_id` and `hub` (for the exchange, hubd links
/// and the fuzz target: any bytes give a value or an error, never a panic).
pub fn parse_instruction(
    bytes: &[u8],
    plan_id: &str,
    hub: &str,
) -> Result<Instruction, ExchangeError> {
    let instruction: Instruction = parse_json(bytes, "instruction")?;
    matches_path("instruction", "plan", &instruction.plan_id, plan_id)?;
    matches_path("instruction", "hub", &instruction.hub, hub)?;
    Ok(instruction)
}

/// Parses a list of instructions that must all be for `hub` (the coordinator's answer to a hub
/// over hubd): a list that does not parse is an error; one entry that does not is that entry's
/// error, so the others still count.
pub fn parse_instructions(
    bytes: &[u8],
    hub: &str,
) -> Result<Vec<Result<Instruction, ExchangeError>>, ExchangeError> {
    let entries: Vec<serde_json::Value> = parse_json_bounded(bytes, "instruction list", 16)?;
    Ok(entries
        .into_iter()
        .map(|entry| {
            let instruction: Instruction = serde_json::from_value(entry)
                .map_err(|e| malformed(Path::new(""), "instruction", e.to_string()))?;
            check_name(&instruction.plan_id)?;
            matches_path("instruction", "hub", &instruction.hub, hub)?;
            Ok(instruction)
        })
        .collect())
}

/// Parses a report that must be for `plan_id` and `hub` (see [`parse_instruction`]).
pub fn parse_report(bytes: &[u8], plan_id: &str, hub: &str) -> Result<Report, ExchangeError> {
    let report: Report = parse_json(bytes, "report")?;
    matches_path("report", "plan", &report.plan_id, plan_id)?;
    matches_path("report", "hub", &report.hub, hub)?;
    Ok(report)
}

impl ExchangeError {
    /// The same error, naming the file it came from.
    fn at(self, path: &Path) -> ExchangeError {
        match self {
            ExchangeError::Malformed { kind, reason, .. } => ExchangeError::Malformed {
                path: path.to_owned(),
                kind,
                reason,
            },
            ExchangeError::Mismatch {
                kind,
                field,
                found,
                expected,
                ..
            } => ExchangeError::Mismatch {
                path: path.to_owned(),
                kind,
                field,
                found,
                expected,
            },
            ExchangeError::TooLarge { limit, .. } => ExchangeError::TooLarge {
                path: path.to_owned(),
                limit,
            },
            other => other,
        }
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8], kind: &'static str) -> Result<T, ExchangeError> {
    parse_json_bounded(bytes, kind, 1)
}

/// JSON of at most `documents` × [`MAX_DOCUMENT_BYTES`].
fn parse_json_bounded<T: DeserializeOwned>(
    bytes: &[u8],
    kind: &'static str,
    documents: usize,
) -> Result<T, ExchangeError> {
    let limit = MAX_DOCUMENT_BYTES * documents;
    if bytes.len() > limit {
        return Err(ExchangeError::TooLarge {
            path: PathBuf::new(),
            limit,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| malformed(Path::new(""), kind, e.to_string()))
}

fn matches_path(
    kind: &'static str,
    field: &'static str,
    found: &str,
    expected: &str,
) -> Result<(), ExchangeError> {
    if found == expected {
        return Ok(());
    }
    Err(ExchangeError::Mismatch {
        path: PathBuf::new(),
        kind,
        field,
        found: found.to_owned(),
        expected: expected.to_owned(),
    })
}

fn malformed(path: &Path, kind: &'static str, reason: String) -> ExchangeError {
    ExchangeError::Malformed {
        path: path.to_owned(),
        kind,
        reason,
    }
}

fn check_name(name: &str) -> Result<(), ExchangeError> {
    if is_name(name) {
        Ok(())
    } else {
        Err(ExchangeError::BadName(name.to_owned()))
    }
}

fn write_json<T: serde::Serialize>(dir: &Path, hub: &str, value: &T) -> Result<(), ExchangeError> {
    check_name(hub)?;
    let bytes = serde_json::to_vec_pretty(value).expect("documents always encode as JSON");
    write_atomic(dir, &format!("{hub}.json"), &bytes)
}

/// Writes `name` in `dir` through a hidden temporary file and a rename (see the module docs).
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ExchangeError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| ExchangeError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let sequence = TEMP_SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let temp = dir.join(format!(".{name}.{}.{sequence}.tmp", std::process::id()));
    let target = dir.join(name);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, &target)?;
        File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written.map_err(io_error(&target))
}

/// The file's bytes, `None` when absent, refused above `limit` without reading it all.
fn read_bounded(path: &Path, limit: usize) -> Result<Option<Vec<u8>>, ExchangeError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ExchangeError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ExchangeError::Io {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() > limit {
        return Err(ExchangeError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(Some(bytes))
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
