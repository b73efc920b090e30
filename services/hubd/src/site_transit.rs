//! Transit as the site allows: when `sited` puts the site in `lockdown`, this hub advertises
//! "no transit" and refuses new transit circuits, so that its peers route around it; traffic
//! from and to this hub itself keeps flowing.
//!
//! | sited reports | this hub |
//! |---|---|
//! | `lockdown` | no transit |
//! | `normal`, `warning`, `critical` | transit offered |
//! | nothing (sited is not on the bus, or the bus is gone) | as recorded |
//!
//! The last row fails closed, as trustd's lockdown does: a lockdown is recorded in the state
//! directory (`lockdown.json`) before it takes effect, so a hub restarted while sited is gone
//! keeps out of transit until sited says the site left lockdown.

use appliance::dbus::Bus;
use appliance::dbus::contracts::SiteState;
use appliance::site_watch::{SiteReport, SiteWatch, SiteWatchError};
use appliance::state::StateDir;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The state file that records a lockdown.
pub const LOCKDOWN_FILE: &str = "lockdown.json";

/// Whether this hub offers transit, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitDecision {
    /// Whether the site is in lockdown (then no transit).
    pub lockdown: bool,
    /// Why, for the operator: sited's report, or that it was recorded.
    pub reason: String,
}

impl TransitDecision {
    /// Whether transit is offered.
    pub fn transit(&self) -> bool {
        !self.lockdown
    }
}

/// What sited's `report` means, given what was recorded before.
pub fn decide(report: Option<&SiteReport>, recorded: &TransitDecision) -> TransitDecision {
    match report {
        Some(report) => TransitDecision {
            lockdown: report.state == SiteState::Lockdown,
            reason: format!("sited reports {report}"),
        },
        None if recorded.lockdown => TransitDecision {
            lockdown: true,
            reason: format!(
                "sited is not on the bus; the lockdown recorded stays ({})",
                recorded.reason
            ),
        },
        None => TransitDecision {
            lockdown: false,
            reason: "sited is not on the bus; no lockdown recorded".into(),
        },
    }
}

/// hubd following sited; stops when dropped.
#[derive(Debug)]
pub struct SiteTransit {
    decisions: watch::Receiver<TransitDecision>,
    task: JoinHandle<()>,
}

impl SiteTransit {
    /// Starts following sited on `bus`; the first decision is made before this returns, so
    /// the hub never advertises transit it is not allowed to offer.
    pub async fn follow(bus: Bus, state: StateDir) -> Result<Self, SiteWatchError> {
        let watch = SiteWatch::start(bus).await?;
        let mut reports = watch.reports();
        let recorded = recorded(&state);
        let first = decide(reports.borrow_and_update().as_ref(), &recorded);
        record(&state, &first);
        let (sender, decisions) = watch::channel(first);
        let task = tokio::spawn(async move {
            let _watch = watch;
            while reports.changed().await.is_ok() {
                let previous = sender.borrow().clone();
                let next = decide(reports.borrow_and_update().as_ref(), &previous);
                if next != previous {
                    record(&state, &next);
                    tracing::info!(
                        transit = next.transit(),
                        "site state: {}; transit {}",
                        next.reason,
                        if next.transit() {
                            "offered"
                        } else {
                            "withdrawn"
                        }
                    );
                    sender.send_replace(next);
                }
            }
        });
        Ok(Self { decisions, task })
    }

    /// Every decision from now on.
    pub fn decisions(&self) -> watch::Receiver<TransitDecision> {
        self.decisions.clone()
    }
}

impl Drop for SiteTransit {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn recorded(state: &StateDir) -> TransitDecision {
    match state.read_json::<TransitDecision>(LOCKDOWN_FILE) {
        Ok(Some(decision)) => decision,
        Ok(None) => TransitDecision {
            lockdown: false,
            reason: "no lockdown recorded".into(),
        },
        Err(error) => {
            // An unreadable record fails closed: out of transit until sited speaks.
            tracing::error!(%error, "cannot read the recorded lockdown; staying out of transit");
            TransitDecision {
                lockdown: true,
                reason: format!("the recorded lockdown is unreadable: {error}"),
            }
        }
    }
}

/// Records a lockdown before it counts; a record that cannot be written is logged (the
/// decision still applies now, it only would not survive a restart without sited).
fn record(state: &StateDir, decision: &TransitDecision) {
    if let Err(error) = state.write_json(LOCKDOWN_FILE, decision) {
        tracing::error!(%error, "cannot record the site's lockdown");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use appliance::dbus::testbus::TestBus;
    use appliance::dbus::testsite::StandInSite;

    use super::*;

    fn report(state: SiteState) -> SiteReport {
        SiteReport {
            state,
            reason: "door 3 open".into(),
            budget: None,
        }
    }

    #[test]
    fn decisions_follow_sited_and_fail_closed_without_it() {
        let open = TransitDecision {
            lockdown: false,
            reason: String::new(),
        };
        let locked = decide(Some(&report(SiteState::Lockdown)), &open);
        assert!(!locked.transit());
        assert!(locked.reason.contains("door 3 open"), "{}", locked.reason);
        for state in [SiteState::Normal, SiteState::Warning, SiteState::Critical] {
            assert!(decide(Some(&report(state)), &locked).transit(), "{state}");
        }
        assert!(
            !decide(None, &locked).transit(),
            "sited gone: lockdown stays"
        );
        assert!(decide(None, &open).transit());
    }

    async fn next(decisions: &mut watch::Receiver<TransitDecision>) -> TransitDecision {
        tokio::time::timeout(Duration::from_secs(10), decisions.changed())
            .await
            .expect("a decision within 10 s")
            .unwrap();
        decisions.borrow_and_update().clone()
    }

    #[tokio::test]
    async fn lockdown_from_sited_is_followed_recorded_and_kept_across_a_restart_without_sited() {
        let bus = TestBus::start().unwrap();
        let bus = Bus::Address(bus.address().to_owned());
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let site = StandInSite::start(&bus, SiteState::Normal, "")
            .await
            .unwrap();
        let transit = SiteTransit::follow(bus.clone(), state.clone())
            .await
            .unwrap();
        let mut decisions = transit.decisions();
        assert!(decisions.borrow_and_update().transit());

        site.set(SiteState::Lockdown, "intrusion at door 2")
            .await
            .unwrap();
        let locked = next(&mut decisions).await;
        assert!(!locked.transit());
        assert!(locked.reason.contains("intrusion at door 2"));
        assert!(
            state
                .read_json::<TransitDecision>(LOCKDOWN_FILE)
                .unwrap()
                .unwrap()
                .lockdown
        );

        // sited goes away, hubd restarts: still no transit.
        site.stop().await.unwrap();
        let after = next(&mut decisions).await;
        assert!(!after.transit(), "{after:?}");
        drop(transit);
        let restarted = SiteTransit::follow(bus.clone(), state.clone())
            .await
            .unwrap();
        assert!(!restarted.decisions().borrow().transit());

        // sited is back and the site is normal: transit again.
        let site = StandInSite::start(&bus, SiteState::Normal, "")
            .await
            .unwrap();
        let mut decisions = restarted.decisions();
        let open = next(&mut decisions).await;
        assert!(open.transit(), "{open:?}");
        site.stop().await.unwrap();
    }
}
