//! A fleet of simulated miners, each on its own loopback address (127.1.x.y is all local on
//! Linux, no `ip addr add` needed) with its cgminer API and its Stratum client, as a hall of
//! miners looks to a scanner, a poller and a Stratum proxy.

pub mod control;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use crate::miner::{
    Fault, Firmware, MinerView, Personality, PoolView, Privileged, ShareCounts,
};
use crate::miner::{Miner, MinerSpec, physics};
pub use crate::stratum_client::SimPool;

/// Which personalities the fleet is made of, with relative weights; each miner's is drawn
/// deterministically from the fleet seed and its address.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMix {
    pub weights: Vec<(Personality, u32)>,
}

impl ModelMix {
    /// Every miner the same.
    pub fn only(personality: Personality) -> ModelMix {
        ModelMix {
            weights: vec![(personality, 1)],
        }
    }

    /// These personalities in equal shares.
    pub fn even(personalities: &[Personality]) -> ModelMix {
        ModelMix {
            weights: personalities.iter().map(|p| (*p, 1)).collect(),
        }
    }

    pub fn pick(&self, seed: u64, ip: Ipv4Addr) -> Personality {
        let total: u64 = self.weights.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return Personality::S9Bmminer;
        }
        let mut draw = physics::mix(seed ^ u64::from(u32::from(ip))) % total;
        for (personality, weight) in &self.weights {
            if draw < u64::from(*weight) {
                return *personality;
            }
            draw -= u64::from(*weight);
        }
        self.weights[0].0
    }
}

impl Default for ModelMix {
    fn default() -> ModelMix {
        ModelMix::even(&Personality::ALL)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FleetSpecError {
    #[error("a fleet needs at least one miner")]
    NoMiners,
    #[error("{count} miners from {first} leave 127.0.0.0/8: the simulator runs on loopback only")]
    NotLoopback { first: Ipv4Addr, count: usize },
    #[error("the API port must not be 0")]
    ApiPort,
    #[error("the hash budget must be a positive number of hashes per second, not {0}")]
    HashBudget(f64),
    #[error("the ambient temperature must be between -40 and 60 °C, not {0}")]
    Ambient(f64),
    #[error("the model mix has no model with a weight above 0")]
    NoModels,
    #[error("pool URL '{0}' has no scheme (stratum+tcp://host:port)")]
    PoolUrl(String),
}

pub struct FleetSpec {
    /// The first address, e.g. 127.1.0.2.
    pub first: Ipv4Addr,
    /// Miners to start, on addresses counted up from `first`, skipping `holes`.
    pub count: usize,
    /// Addresses in the run left empty (a scan finds nothing there).
    pub holes: Vec<Ipv4Addr>,
    pub api_port: u16,
    pub models: ModelMix,
    /// The pools every miner is configured with, in priority order. In `user`, `{ip}` and
    /// `{ip-with-dashes}` become the miner's address (`bunker.{ip-with-dashes}`).
    pub pools: Vec<SimPool>,
    /// Real double-SHA-256 hashes per second for the whole fleet's share search, shared in
    /// proportion to each miner's nominal hashrate.
    pub hash_budget: f64,
    pub privileged: Privileged,
    pub ambient_c: f64,
    /// Makes models and per-unit differences deterministic.
    pub seed: u64,
    /// How long `restart` keeps a miner down (real firmware: 60–180 s).
    pub restart_time: Duration,
}

impl FleetSpec {
    pub fn new(first: Ipv4Addr, count: usize) -> FleetSpec {
        FleetSpec {
            first,
            count,
            holes: Vec::new(),
            api_port: 4028,
            models: ModelMix::default(),
            pools: Vec::new(),
            hash_budget: 200_000.0,
            privileged: Privileged::All,
            ambient_c: 25.0,
            seed: 1,
            restart_time: Duration::from_secs(60),
        }
    }

    /// Checks for nonsense before anything binds: the simulator stays on loopback.
    pub fn validate(&self) -> Result<(), FleetSpecError> {
        if self.count == 0 {
            return Err(FleetSpecError::NoMiners);
        }
        let last = self.addresses().last().copied();
        if !self.first.is_loopback() || !last.is_some_and(|ip| ip.is_loopback()) {
            return Err(FleetSpecError::NotLoopback {
                first: self.first,
                count: self.count,
            });
        }
        if self.api_port == 0 {
            return Err(FleetSpecError::ApiPort);
        }
        if !(self.hash_budget.is_finite() && self.hash_budget > 0.0) {
            return Err(FleetSpecError::HashBudget(self.hash_budget));
        }
        if !(self.ambient_c.is_finite() && (-40.0..=60.0).contains(&self.ambient_c)) {
            return Err(FleetSpecError::Ambient(self.ambient_c));
        }
        if self.models.weights.iter().all(|(_, w)| *w == 0) {
            return Err(FleetSpecError::NoModels);
        }
        if let Some(pool) = self.pools.iter().find(|p| !p.url.contains("://")) {
            return Err(FleetSpecError::PoolUrl(pool.url.clone()));
        }
        Ok(())
    }

    /// The miners' addresses: `count` of them from `first` up, holes skipped.
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        let mut out = Vec::with_capacity(self.count);
        let mut next = u32::from(self.first);
        while out.len() < self.count && next < u32::MAX {
            let ip = Ipv4Addr::from(next);
            if !self.holes.contains(&ip) {
                out.push(ip);
            }
            next += 1;
        }
        out
    }
}

/// Raises the soft limit on open files to the hard limit: every miner holds a listener and a
/// Stratum socket, so 1,000 miners need more than the usual 1,024. Returns the new limit.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(
            Resource::Nofile,
            rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )?;
    }
    Ok(limit.maximum.unwrap_or(u64::MAX))
}

/// Substitutes the miner's address into a user template.
pub fn user_for(template: &str, ip: Ipv4Addr) -> String {
    template
        .replace("{ip-with-dashes}", &ip.to_string().replace('.', "-"))
        .replace("{ip}", &ip.to_string())
}

pub struct Fleet {
    miners: BTreeMap<Ipv4Addr, Miner>,
}

impl Fleet {
    pub async fn start(spec: FleetSpec) -> std::io::Result<Fleet> {
        spec.validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let addresses = spec.addresses();
        let plan: Vec<(Ipv4Addr, Personality)> = addresses
            .iter()
            .map(|ip| (*ip, spec.models.pick(spec.seed, *ip)))
            .collect();
        let fleet_ths: f64 = plan
            .iter()
            .map(|(_, p)| p.hardware().nominal_ths)
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
        let mut miners = BTreeMap::new();
        for (ip, personality) in plan {
            let pools = spec
                .pools
                .iter()
                .map(|p| SimPool {
                    url: p.url.clone(),
                    user: user_for(&p.user, ip),
                    password: p.password.clone(),
                })
                .collect();
            let share = personality.hardware().nominal_ths / fleet_ths;
            let started = Miner::start(MinerSpec {
                ip,
                api_port: spec.api_port,
                personality,
                pools,
                hashes_per_second: spec.hash_budget * share,
                privileged: spec.privileged,
                ambient_c: spec.ambient_c,
                seed: physics::mix(spec.seed ^ u64::from(u32::from(ip))),
                restart_time: spec.restart_time,
            })
            .await;
            match started {
                Ok(miner) => {
                    miners.insert(ip, miner);
                }
                Err(e) => {
                    for m in miners.values() {
                        Miner::stop(m);
                    }
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("miner {ip}:{}: {e}", spec.api_port),
                    ));
                }
            }
        }
        tracing::info!(miners = miners.len(), "fleet started");
        Ok(Fleet { miners })
    }

    /// The cgminer API listeners, in address order.
    pub fn api_addresses(&self) -> Vec<SocketAddr> {
        self.miners.values().map(Miner::api_address).collect()
    }

    pub fn miner(&self, ip: Ipv4Addr) -> Option<MinerHandle> {
        self.miners
            .get(&ip)
            .cloned()
            .map(|miner| MinerHandle { miner })
    }

    pub fn miners(&self) -> Vec<MinerHandle> {
        self.miners
            .values()
            .cloned()
            .map(|miner| MinerHandle { miner })
            .collect()
    }

    pub async fn stop(self) {
        for miner in self.miners.values() {
            miner.stop();
        }
        for miner in self.miners.values() {
            miner.shutdown().await;
        }
    }
}

/// A fleet dropped without [`Fleet::stop`] (a panicking test) still stops its miners' tasks,
/// which would otherwise keep each other alive.
impl Drop for Fleet {
    fn drop(&mut self) {
        for miner in self.miners.values() {
            miner.stop();
        }
    }
}

/// One miner of a fleet, for tests and the control socket.
#[derive(Clone)]
pub struct MinerHandle {
    miner: Miner,
}

impl MinerHandle {
    pub fn inject(&self, fault: Fault) {
        self.miner.inject(fault);
    }

    pub fn clear_faults(&self) {
        self.miner.clear_faults();
    }

    pub fn view(&self) -> MinerView {
        self.miner.view()
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.miner.ip()
    }

    pub fn api_address(&self) -> SocketAddr {
        self.miner.api_address()
    }

    pub fn personality(&self) -> Personality {
        self.miner.personality()
    }

    /// The power target as BOSminer's gRPC/REST API sets it (not part of its cgminer API);
    /// ignored by firmware without an autotuner.
    pub fn set_power_target(&self, watts: f64) {
        self.miner.set_power_target(watts);
    }

    /// Sleep or wake, as a curtailment through the firmware's own means would.
    pub fn set_sleeping(&self, sleeping: bool) {
        self.miner.set_sleeping(sleeping);
    }
}
