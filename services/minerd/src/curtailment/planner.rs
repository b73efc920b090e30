//! The planner: shed when over, restore when comfortably under and held long enough.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};

use tokio::time::Instant;

use super::{Budget, CurtailAction, CurtailmentSettings, MinerLoad};

/// What one planning round decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The budget after thermal derating, in watts.
    pub effective_budget_w: f64,
    /// The fleet's draw before the actions (counting recently issued ones as done).
    pub draw_w: f64,
    /// The draw expected once the actions took effect.
    pub projected_w: f64,
    pub actions: Vec<CurtailAction>,
    /// Watts still over the budget with everything sheddable shed (0 when the plan fits).
    pub shortfall_w: f64,
}

/// The planner and the little it remembers: when it last shed, and what it issued lately.
#[derive(Debug, Clone)]
pub struct CurtailmentPlanner {
    settings: CurtailmentSettings,
    last_shed: Option<Instant>,
    issued: HashMap<String, (CurtailAction, Instant)>,
    /// Effective budgets seen within the last `hold`: restoring fits under the lowest.
    recent_budgets: VecDeque<(Instant, f64)>,
}

impl CurtailmentPlanner {
    pub fn new(settings: CurtailmentSettings) -> CurtailmentPlanner {
        CurtailmentPlanner {
            settings,
            last_shed: None,
            issued: HashMap::new(),
            recent_budgets: VecDeque::new(),
        }
    }

    /// An issued action failed: plan again from what the miner reports.
    pub fn forget(&mut self, miner: &str) {
        self.issued.remove(miner);
    }

    /// Plans one round at `now`. The returned actions count as issued from now on.
    pub fn plan(&mut self, now: Instant, budget: Budget, fleet: &[MinerLoad]) -> Plan {
        let fleet = self.settled_view(now, fleet);
        let effective_budget_w = self.settings.effective_budget_w(budget);
        let lowest_recent_w = self.remember_budget(now, effective_budget_w);
        let draw_w: f64 = fleet.iter().map(|m| m.draw_w).sum();
        let (actions, projected_w, shortfall_w) = if draw_w > effective_budget_w {
            self.last_shed = Some(now);
            self.shed(&fleet, draw_w, effective_budget_w)
        } else if self.held(now) {
            (Vec::new(), draw_w, 0.0)
        } else {
            let room = lowest_recent_w - self.settings.margin_for(lowest_recent_w) - draw_w;
            let (actions, used) = self.restore(&fleet, room);
            (actions, draw_w + used, 0.0)
        };
        for action in &actions {
            self.issued
                .insert(action.miner().to_owned(), (action.clone(), now));
        }
        Plan {
            effective_budget_w,
            draw_w,
            projected_w,
            actions,
            shortfall_w,
        }
    }

    /// Records this round's budget; returns the lowest within the hold window.
    fn remember_budget(&mut self, now: Instant, budget_w: f64) -> f64 {
        let hold = self.settings.hold_time();
        while self
            .recent_budgets
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= hold)
        {
            self.recent_budgets.pop_front();
        }
        self.recent_budgets.push_back((now, budget_w));
        self.recent_budgets
            .iter()
            .map(|(_, b)| *b)
            .fold(budget_w, f64::min)
    }

    fn held(&self, now: Instant) -> bool {
        self.last_shed
            .is_some_and(|t| now.saturating_duration_since(t) < self.settings.hold_time())
    }

    /// The fleet as it will be once the actions issued within `settle` took effect.
    fn settled_view(&mut self, now: Instant, fleet: &[MinerLoad]) -> Vec<MinerLoad> {
        let settle = self.settings.settle.as_duration();
        self.issued
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < settle);
        fleet
            .iter()
            .map(|miner| {
                let mut m = miner.clone();
                match self.issued.get(&m.id).map(|(a, _)| a) {
                    Some(CurtailAction::Sleep { .. }) => {
                        m.asleep = true;
                        m.draw_w = m.draw_w.min(self.settings.sleep_draw_w);
                    }
                    Some(CurtailAction::Wake { .. }) => {
                        m.asleep = false;
                        m.draw_w = m.draw_w.max(m.awake_draw_w);
                    }
                    Some(CurtailAction::SetPowerTarget { watts, .. }) => set_target(&mut m, *watts),
                    None => {}
                }
                m
            })
            .collect()
    }

    /// Least efficient first. A miner whose target can absorb what is still needed has its
    /// target lowered just enough; one that cannot is slept (or, without sleep, set to its
    /// minimum target), and the next miner is considered.
    fn shed(
        &self,
        fleet: &[MinerLoad],
        draw_w: f64,
        budget_w: f64,
    ) -> (Vec<CurtailAction>, f64, f64) {
        let mut order: Vec<&MinerLoad> = fleet.iter().filter(|m| !m.asleep).collect();
        order.sort_by(|a, b| by_efficiency(b, a));
        let mut need = draw_w - budget_w;
        let mut actions = Vec::new();
        for miner in order {
            if need <= 0.0 {
                break;
            }
            if let Some(target) = miner.power_target.filter(|t| t.current_w > t.min_w) {
                let lowest = target.current_w - target.min_w;
                if lowest >= need {
                    let watts = (target.current_w - need).floor().max(target.min_w);
                    actions.push(CurtailAction::SetPowerTarget {
                        id: miner.id.clone(),
                        watts,
                    });
                    need -= target.current_w - watts;
                    break;
                }
                if !miner.can_sleep {
                    actions.push(CurtailAction::SetPowerTarget {
                        id: miner.id.clone(),
                        watts: target.min_w,
                    });
                    need -= lowest;
                    continue;
                }
            }
            if miner.can_sleep {
                actions.push(CurtailAction::Sleep {
                    id: miner.id.clone(),
                });
                need -= miner.draw_w - self.settings.sleep_draw_w.min(miner.draw_w);
            }
        }
        // `need` below zero: the last sleep saved more than needed (a miner sleeps whole).
        (actions, budget_w + need, need.max(0.0))
    }

    /// Most efficient first: wake (whole miners, in order, while they fit), then raise
    /// targets back towards the operator's preference with what room is left.
    fn restore(&self, fleet: &[MinerLoad], mut room: f64) -> (Vec<CurtailAction>, f64) {
        let mut order: Vec<&MinerLoad> = fleet.iter().collect();
        order.sort_by(|a, b| by_efficiency(a, b));
        let mut actions = Vec::new();
        let mut used = 0.0;
        for miner in order {
            if room <= 0.0 {
                break;
            }
            if miner.asleep && miner.can_sleep {
                let cost = miner.awake_draw_w - miner.draw_w;
                if cost > room {
                    break;
                }
                actions.push(CurtailAction::Wake {
                    id: miner.id.clone(),
                });
                room -= cost;
                used += cost;
            }
            if let Some(target) = miner.power_target.filter(|t| t.current_w < t.preferred_w) {
                let raise = (target.preferred_w - target.current_w).min(room.floor());
                if raise >= 1.0 {
                    actions.push(CurtailAction::SetPowerTarget {
                        id: miner.id.clone(),
                        watts: target.current_w + raise,
                    });
                    room -= raise;
                    used += raise;
                }
            }
        }
        (actions, used)
    }
}

/// Ascending J/TH (most efficient first); ties by id so plans are deterministic.
fn by_efficiency(a: &MinerLoad, b: &MinerLoad) -> Ordering {
    a.joules_per_th()
        .total_cmp(&b.joules_per_th())
        .then_with(|| a.id.cmp(&b.id))
}

/// A target change as it will show: draw follows the target, hashrate in proportion.
fn set_target(miner: &mut MinerLoad, watts: f64) {
    let Some(target) = miner.power_target.as_mut() else {
        return;
    };
    if target.current_w > 0.0 {
        miner.awake_hashrate_ths *= watts / target.current_w;
    }
    target.current_w = watts;
    miner.awake_draw_w = watts;
    if !miner.asleep {
        miner.draw_w = watts;
    }
}
