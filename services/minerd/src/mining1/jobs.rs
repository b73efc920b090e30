//! Jobs: the bulk actions operators start through `StartAction`, kept in memory so that `Job(id)`
//! answers while a job runs and after it finished. The audit log is the lasting record of
//! every action (the runner writes the intent and each miner's result there); this table is
//! the progress view, bounded to the most recent [`KEPT`] jobs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde_json::{Value, json};

use super::documents::rfc3339;
use crate::operations::{Progress, TargetResult};

/// Finished jobs kept for `Job(id)`; older ones are only in the audit log.
pub const KEPT: usize = 256;

/// One job's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub action: String,
    pub argument: String,
    pub selection: String,
    pub started_at: SystemTime,
    pub finished_at: Option<SystemTime>,
    pub total: usize,
    pub done: usize,
    pub failed: usize,
    pub results: Vec<TargetResult>,
    /// Why the job stopped before every miner was tried (the audit log could not record).
    pub stopped: Option<String>,
}

impl Job {
    /// `Job(id)`'s document.
    pub fn document(&self) -> Value {
        json!({
            "id": self.id,
            "action": self.action,
            "argument": self.argument,
            "selection": self.selection,
            "started_at": rfc3339(self.started_at),
            "finished_at": self.finished_at.map(rfc3339),
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "stopped": self.stopped,
            "results": self.results.iter().map(|r| json!({
                "ip": r.target,
                "ok": r.ok,
                "message": r.sentence,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The table of jobs; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Jobs {
    inner: Arc<Mutex<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    jobs: VecDeque<Job>,
}

impl Jobs {
    /// Registers a job about to start; returns its id (`job-N`, N counting from the daemon's
    /// start; the audit log's records carry the bulk seq that stays unique across restarts).
    pub fn start(&self, action: &str, argument: &str, selection: &str, total: usize) -> String {
        let mut table = self.lock();
        table.next += 1;
        let id = format!("job-{}", table.next);
        table.jobs.push_back(Job {
            id: id.clone(),
            action: action.to_owned(),
            argument: argument.to_owned(),
            selection: selection.to_owned(),
            started_at: SystemTime::now(),
            finished_at: None,
            total,
            done: 0,
            failed: 0,
            results: Vec::new(),
            stopped: None,
        });
        while table.jobs.len() > KEPT {
            // Drop the oldest finished job; running ones stay.
            match table.jobs.iter().position(|j| j.finished_at.is_some()) {
                Some(i) => {
                    table.jobs.remove(i);
                }
                None => break,
            }
        }
        id
    }

    /// Records one miner's result.
    pub fn progress(&self, id: &str, progress: &Progress) {
        self.update(id, |job| {
            job.done = progress.done;
            job.failed = progress.failed;
            job.total = progress.total;
            job.results.push(progress.result.clone());
        });
    }

    /// Marks the job finished; `stopped` says why it ended early, if it did.
    pub fn finish(&self, id: &str, stopped: Option<String>) {
        self.update(id, |job| {
            job.finished_at = Some(SystemTime::now());
            job.stopped = stopped;
        });
    }

    /// The job, if still kept.
    pub fn get(&self, id: &str) -> Option<Job> {
        self.lock().jobs.iter().find(|j| j.id == id).cloned()
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Job)) {
        if let Some(job) = self.lock().jobs.iter_mut().find(|j| j.id == id) {
            change(job);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(done: usize, failed: usize, target: &str, ok: bool) -> Progress {
        Progress {
            done,
            failed,
            total: 2,
            result: TargetResult {
                target: target.into(),
                ok,
                sentence: if ok { "rebooting" } else { "timed out" }.into(),
            },
        }
    }

    #[test]
    fn a_job_reports_progress_then_its_end() {
        let jobs = Jobs::default();
        let id = jobs.start("reboot", "", "owner=acme", 2);
        assert_eq!(id, "job-1");
        assert_eq!(jobs.get(&id).unwrap().finished_at, None);
        jobs.progress(&id, &progress(1, 0, "10.0.0.2", true));
        jobs.progress(&id, &progress(1, 1, "10.0.0.3", false));
        jobs.finish(&id, None);
        let job = jobs.get(&id).unwrap();
        assert_eq!((job.done, job.failed, job.total), (1, 1, 2));
        let document = job.document();
        assert_eq!(document["results"][1]["ip"], "10.0.0.3");
        assert_eq!(document["results"][1]["ok"], false);
        assert!(document["finished_at"].is_string());
        assert!(jobs.get("job-9").is_none());
    }

    #[test]
    fn only_the_most_recent_finished_jobs_are_kept() {
        let jobs = Jobs::default();
        let first = jobs.start("wake", "", "all", 0);
        jobs.finish(&first, None);
        for _ in 0..KEPT {
            let id = jobs.start("wake", "", "all", 0);
            jobs.finish(&id, None);
        }
        assert!(jobs.get(&first).is_none());
        assert!(jobs.get(&format!("job-{}", KEPT + 1)).is_some());
    }
}
