//! The per-miner state machine: one [`Observation`] per poll in, the current findings out.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::endpoint::{Endpoint, looks_like_devfee};
use super::{DevFeeEvidence, Finding, HijackSettings, SanctionedPool};
use crate::cgminer::{MinerSnapshot, PoolState, PoolStatus};

/// What the proxy knows of this miner (matched by its source address).
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyView {
    pub connected: bool,
    /// How long the current connection has lasted (zero when not connected).
    pub connected_for: Duration,
    /// The user it authorised with on its current connection.
    pub authorized_user: Option<String>,
    /// Time since its last valid share, `None` if it never sent one.
    pub last_share_ago: Option<Duration>,
    /// At the difficulty the proxy set and the hashrate the miner reports.
    pub expected_share_interval: Duration,
}

/// One poll of one miner.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub at: Instant,
    pub snapshot: &'a MinerSnapshot,
    /// minerd put it to sleep (curtailment or an operator).
    pub asleep: bool,
    pub proxy: &'a ProxyView,
}

#[derive(Debug, Clone)]
struct ForeignSpell {
    endpoint: Endpoint,
    url: String,
    user: String,
    since: Instant,
}

#[derive(Debug, Clone)]
struct FeeEvidence {
    url: String,
    user: String,
    evidence: DevFeeEvidence,
    at: Instant,
}

/// What one miner's comparison remembers between polls.
#[derive(Debug, Clone)]
pub struct HijackWatch {
    sanctioned: Vec<SanctionedPool>,
    settings: HijackSettings,
    foreign_spell: Option<ForeignSpell>,
    episodes: HashMap<Endpoint, u32>,
    fee_evidence: HashMap<Endpoint, FeeEvidence>,
    foreign_accepted: HashMap<(Endpoint, String), u64>,
    silent_polls: u32,
    awake_since: Option<Instant>,
    asleep: bool,
}

impl HijackWatch {
    pub fn new(sanctioned: Vec<SanctionedPool>, settings: HijackSettings) -> HijackWatch {
        HijackWatch {
            sanctioned,
            settings,
            foreign_spell: None,
            episodes: HashMap::new(),
            fee_evidence: HashMap::new(),
            foreign_accepted: HashMap::new(),
            silent_polls: 0,
            awake_since: None,
            asleep: false,
        }
    }

    /// The operator changed what is sanctioned: the history of foreign pools stays.
    pub fn set_sanctioned(&mut self, sanctioned: Vec<SanctionedPool>) {
        self.sanctioned = sanctioned;
    }

    /// Compares one poll with what is sanctioned; returns every finding that holds now.
    pub fn observe(&mut self, obs: &Observation<'_>) -> Vec<Finding> {
        self.track_sleep(obs);
        let pools = &obs.snapshot.pools;
        let active = active_pool(pools);
        let mut findings = Vec::new();
        for pool in pools {
            self.check_pool(pool, active == Some(pool), &mut findings);
        }
        self.check_proxy_user(obs.proxy, active, &mut findings);
        self.track_foreign_spell(obs.at, active);
        self.track_foreign_shares(obs.at, pools, active);
        self.report_fee_evidence(obs.at, pools, &mut findings);
        let foreign_active = active.is_some_and(|p| !self.is_sanctioned_endpoint(&p.url));
        if let Some(f) = self.check_hashing_elsewhere(obs, foreign_active) {
            findings.push(f);
        }
        findings
    }

    fn is_sanctioned_endpoint(&self, url: &str) -> bool {
        let endpoint = Endpoint::of(url);
        self.sanctioned
            .iter()
            .any(|s| Endpoint::of(&s.url) == endpoint)
    }

    fn sanctioned_urls(&self) -> Vec<String> {
        self.sanctioned.iter().map(|s| s.url.clone()).collect()
    }

    fn check_pool(&self, pool: &PoolStatus, active: bool, findings: &mut Vec<Finding>) {
        let endpoint = Endpoint::of(&pool.url);
        let for_endpoint: Vec<&SanctionedPool> = self
            .sanctioned
            .iter()
            .filter(|s| Endpoint::of(&s.url) == endpoint)
            .collect();
        if for_endpoint.is_empty() {
            findings.push(Finding::ForeignPool {
                url: pool.url.clone(),
                user: pool.user.clone(),
                active,
                sanctioned: self.sanctioned_urls(),
            });
        } else if !for_endpoint.iter().any(|s| s.user == pool.user) {
            findings.push(Finding::ChangedUser {
                url: pool.url.clone(),
                user: pool.user.clone(),
                expected: for_endpoint[0].user.clone(),
                active,
                at_proxy: false,
            });
        }
    }

    fn check_proxy_user(
        &self,
        proxy: &ProxyView,
        active: Option<&PoolStatus>,
        findings: &mut Vec<Finding>,
    ) {
        let Some(user) = proxy.authorized_user.as_ref().filter(|_| proxy.connected) else {
            return;
        };
        if self.sanctioned.iter().any(|s| &s.user == user) {
            return;
        }
        let url = active
            .filter(|p| self.is_sanctioned_endpoint(&p.url))
            .map(|p| p.url.clone())
            .or_else(|| self.sanctioned.first().map(|s| s.url.clone()))
            .unwrap_or_default();
        let expected = self
            .sanctioned
            .iter()
            .map(|s| s.user.as_str())
            .collect::<Vec<_>>()
            .join(" or ");
        findings.push(Finding::ChangedUser {
            url,
            user: user.clone(),
            expected,
            active: true,
            at_proxy: true,
        });
    }

    /// A foreign pool active on one poll and a sanctioned one on a later poll: a spell of
    /// fee (or hijack) mining that the firmware ended itself.
    fn track_foreign_spell(&mut self, at: Instant, active: Option<&PoolStatus>) {
        let Some(active) = active else { return };
        let endpoint = Endpoint::of(&active.url);
        if !self.is_sanctioned_endpoint(&active.url) {
            if self.foreign_spell.as_ref().map(|s| &s.endpoint) != Some(&endpoint) {
                self.foreign_spell = Some(ForeignSpell {
                    endpoint,
                    url: active.url.clone(),
                    user: active.user.clone(),
                    since: at,
                });
            }
            return;
        }
        if let Some(spell) = self.foreign_spell.take() {
            let episodes = self.episodes.entry(spell.endpoint.clone()).or_insert(0);
            *episodes += 1;
            let evidence = DevFeeEvidence::ActiveThenBack {
                episodes: *episodes,
                lasted: at.saturating_duration_since(spell.since),
            };
            self.fee_evidence.insert(
                spell.endpoint,
                FeeEvidence {
                    url: spell.url,
                    user: spell.user,
                    evidence,
                    at,
                },
            );
        }
    }

    /// A foreign pool that is not active now but accepted shares since the last poll mined
    /// in between (cgminer counts per pool; a reboot resets the counts, so only growth counts).
    fn track_foreign_shares(
        &mut self,
        at: Instant,
        pools: &[PoolStatus],
        active: Option<&PoolStatus>,
    ) {
        let foreign: Vec<&PoolStatus> = pools
            .iter()
            .filter(|p| !self.is_sanctioned_endpoint(&p.url))
            .collect();
        for pool in foreign {
            let key = (Endpoint::of(&pool.url), pool.user.clone());
            let before = self.foreign_accepted.insert(key.clone(), pool.accepted);
            let grew = before.map_or(0, |b| pool.accepted.saturating_sub(b));
            if grew > 0 && active != Some(pool) {
                self.fee_evidence.insert(
                    key.0,
                    FeeEvidence {
                        url: pool.url.clone(),
                        user: pool.user.clone(),
                        evidence: DevFeeEvidence::SharesAccepted { shares: grew },
                        at,
                    },
                );
            }
        }
    }

    fn report_fee_evidence(&mut self, at: Instant, pools: &[PoolStatus], out: &mut Vec<Finding>) {
        let memory = self.settings.devfee_memory.as_duration();
        self.fee_evidence
            .retain(|_, e| at.saturating_duration_since(e.at) <= memory);
        let mut evidence: Vec<&FeeEvidence> = self.fee_evidence.values().collect();
        evidence.sort_by(|a, b| a.url.cmp(&b.url));
        for e in &evidence {
            out.push(Finding::DevFeeRedirect {
                url: e.url.clone(),
                user: e.user.clone(),
                evidence: e.evidence,
            });
        }
        for pool in pools {
            let foreign = !self.is_sanctioned_endpoint(&pool.url);
            let known = self.fee_evidence.contains_key(&Endpoint::of(&pool.url));
            if foreign && !known && looks_like_devfee(&pool.url, &pool.user) {
                out.push(Finding::DevFeeRedirect {
                    url: pool.url.clone(),
                    user: pool.user.clone(),
                    evidence: DevFeeEvidence::Named,
                });
            }
        }
    }

    fn track_sleep(&mut self, obs: &Observation<'_>) {
        if obs.asleep {
            self.asleep = true;
            self.awake_since = None;
        } else if self.asleep {
            self.asleep = false;
            self.awake_since = Some(obs.at);
        }
    }

    /// Hashrate reported with no shares at the proxy, long enough and often enough to be
    /// neither a reboot, a wake-up, nor a failover between the proxy's URLs.
    fn check_hashing_elsewhere(
        &mut self,
        obs: &Observation<'_>,
        foreign_active: bool,
    ) -> Option<Finding> {
        let settings = &self.settings;
        let reported = obs
            .snapshot
            .hashrate_5s
            .or(obs.snapshot.hashrate_average)
            .map_or(0.0, |h| h.terahashes());
        let booted = obs
            .snapshot
            .uptime
            .is_none_or(|u| u >= settings.startup_grace.as_duration());
        let awake_long_enough = self.awake_since.is_none_or(|since| {
            obs.at.saturating_duration_since(since) >= settings.wake_grace.as_duration()
        });
        let limit = settings.silence_limit(obs.proxy.expected_share_interval);
        let proxy = obs.proxy;
        let silent = !proxy.connected
            || proxy
                .last_share_ago
                .map_or(proxy.connected_for > limit, |ago| ago > limit);
        let suspicious = !obs.asleep
            && reported > 0.0
            && booted
            && awake_long_enough
            && !foreign_active
            && silent;
        self.silent_polls = if suspicious { self.silent_polls + 1 } else { 0 };
        (self.silent_polls >= settings.confirm_polls).then_some(Finding::HashingElsewhere {
            reported_ths: reported,
            proxy_connected: proxy.connected,
            last_share_ago: proxy.last_share_ago,
            expected_within: limit,
        })
    }
}

/// The pool the miner mines on: the one flagged stratum-active, else the first alive one in
/// priority order (cgminer's failover choice).
fn active_pool(pools: &[PoolStatus]) -> Option<&PoolStatus> {
    pools.iter().find(|p| p.stratum_active).or_else(|| {
        pools
            .iter()
            .filter(|p| p.state == PoolState::Alive)
            .min_by_key(|p| (p.priority.unwrap_or(p.index), p.index))
    })
}
