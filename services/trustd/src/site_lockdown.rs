//! Lockdown as the site says: trustd stops issuing while `sited` has the site in `lockdown`, and
//! resumes when sited says it left.
//!
//! sited's reports arrive through [`SiteWatch`] (`org.bunkeros.Site1`); this module decides what
//! each means for the CA ([`lockdown_for`]) and drives [`Authority::set_lockdown`], which
//! records the flag durably before it takes effect:
//!
//! | sited reports | the CA |
//! |---|---|
//! | `lockdown` | in lockdown: issuance, revocation, CRL refreshes and CA set-up stop |
//! | `normal`, `warning`, `critical` | not in lockdown |
//! | nothing (sited is not on the bus, or the bus is gone) | as it was recorded |
//!
//! The last row fails closed: a site that entered lockdown stays there across a sited crash and
//! a trustd restart until sited says otherwise, and a site that never had sited is not in
//! lockdown. sited's reason goes to the journal with each change; the status line, the `Status()`
//! document and the metrics show the lockdown, refreshed at once ([`SiteLockdown::applied`]).
//! A flag that cannot be recorded (store failure) is retried every [`RETRY`].

use std::sync::Arc;
use std::time::Duration;

use appliance::dbus::Bus;
use appliance::dbus::contracts::SiteState;
use appliance::site_watch::{SiteReport, SiteWatch, SiteWatchError};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::authority::{Authority, AuthorityError};

/// How soon a lockdown flag that could not be recorded is tried again.
pub const RETRY: Duration = Duration::from_secs(5);

/// What sited's report means for the CA: `Some(true)` lockdown, `Some(false)` no lockdown,
/// `None` keep what is recorded (sited is absent).
pub fn lockdown_for(report: Option<&SiteReport>) -> Option<bool> {
    report.map(|report| report.state == SiteState::Lockdown)
}

/// trustd following sited's site state; stops following when dropped.
#[derive(Debug)]
pub struct SiteLockdown {
    applied: Arc<Notify>,
    task: JoinHandle<()>,
}

impl SiteLockdown {
    /// Starts watching sited on `bus` and applies its current report before returning, so the
    /// CA does not say `READY=1` as issuing while sited has the site in lockdown.
    pub async fn follow(bus: Bus, authority: Arc<Authority>) -> Result<Self, SiteWatchError> {
        let watch = SiteWatch::start(bus).await?;
        let mut reports = watch.reports();
        let applied = Arc::new(Notify::new());
        let report = reports.borrow_and_update().clone();
        let pending = apply(&authority, report.as_ref()).await;
        let task = tokio::spawn(drive(authority, reports, Arc::clone(&applied), pending));
        Ok(Self { applied, task })
    }

    /// Completes after sited's report changed the CA's lockdown (for a prompt status refresh).
    pub async fn applied(&self) {
        self.applied.notified().await;
    }
}

impl Drop for SiteLockdown {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Applies every report; `pending` is a report whose flag could not be recorded yet.
async fn drive(
    authority: Arc<Authority>,
    mut reports: watch::Receiver<Option<SiteReport>>,
    applied: Arc<Notify>,
    mut pending: Option<Option<SiteReport>>,
) {
    // The state and reason last applied: a report that changes only the power budget says
    // nothing about lockdown and is not applied (nor logged) again.
    let mut applied_words = None;
    loop {
        let retry = async {
            match pending {
                Some(_) => tokio::time::sleep(RETRY).await,
                None => std::future::pending().await,
            }
        };
        let report = tokio::select! {
            changed = reports.changed() => {
                if changed.is_err() {
                    tracing::error!("the watch of sited's site state ended; the lockdown stays as recorded");
                    return;
                }
                reports.borrow_and_update().clone()
            }
            () = retry => pending.take().flatten(),
        };
        let words = report.as_ref().map(|r| (r.state, r.reason.clone()));
        if applied_words.as_ref() == Some(&words) {
            continue;
        }
        pending = apply(&authority, report.as_ref()).await;
        // Only a recorded report counts as applied: one that failed is retried.
        applied_words = pending.is_none().then_some(words);
        applied.notify_one();
    }
}

/// Sets the CA's lockdown as `report` says; returns the report again if its flag could not be
/// recorded, to be retried.
async fn apply(
    authority: &Arc<Authority>,
    report: Option<&SiteReport>,
) -> Option<Option<SiteReport>> {
    let Some(on) = lockdown_for(report) else {
        if authority.lockdown() {
            tracing::warn!(
                "sited is not on the bus: the site stays in lockdown until sited says it left"
            );
        } else {
            tracing::info!("sited is not on the bus: the CA keeps issuing as before");
        }
        return None;
    };
    let reason = report.map(|r| r.reason.as_str()).unwrap_or_default();
    let was = authority.lockdown();
    let result = {
        let authority = Arc::clone(authority);
        tokio::task::spawn_blocking(move || authority.set_lockdown(on)).await
    };
    match result {
        Ok(Ok(())) => {
            log_change(was, on, report, reason);
            None
        }
        Ok(Err(error)) => {
            failed(on, &error);
            Some(report.cloned())
        }
        Err(error) => {
            tracing::error!(%error, "the task recording the site's lockdown failed; retrying");
            Some(report.cloned())
        }
    }
}

fn log_change(was: bool, on: bool, report: Option<&SiteReport>, reason: &str) {
    let state = report.map_or("unknown", |r| r.state.as_str());
    match (was, on) {
        (false, true) => tracing::warn!(
            sited_reason = reason,
            "sited put the site in lockdown ({reason}): no certificate is issued until it leaves"
        ),
        (true, true) => tracing::info!(
            sited_reason = reason,
            "the site is still in lockdown ({reason})"
        ),
        (true, false) => tracing::info!(
            site_state = state,
            "sited took the site out of lockdown (now {state}): issuance resumes"
        ),
        (false, false) => tracing::debug!(site_state = state, "the site is {state}"),
    }
}

fn failed(on: bool, error: &AuthorityError) {
    let change = if on { "enter" } else { "leave" };
    tracing::error!(%error, "cannot record that the site's CA should {change} lockdown; retrying in {RETRY:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(state: SiteState) -> SiteReport {
        SiteReport {
            state,
            reason: "because".to_owned(),
            budget: None,
        }
    }

    #[test]
    fn only_lockdown_locks_down_and_silence_keeps_what_was_recorded() {
        assert_eq!(lockdown_for(Some(&report(SiteState::Lockdown))), Some(true));
        for state in [SiteState::Normal, SiteState::Warning, SiteState::Critical] {
            assert_eq!(lockdown_for(Some(&report(state))), Some(false), "{state}");
        }
        assert_eq!(lockdown_for(None), None);
    }
}
