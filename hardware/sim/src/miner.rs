//! One simulated ASIC miner: a hardware model with a physical model of its power, hashrate,
//! temperatures and fans; a firmware personality answering the cgminer API on its own
//! address; and a Stratum V1 client ([`StratumClient`]) that really mines on the pools the
//! firmware is configured with. Faults make it misbehave like real miners do.
//!
//! Data walks one way: API request → [`request`] → firmware state change or [`Report`] →
//! [`firmware`] personality → [`render`] → bytes on the wire.

pub mod api;
pub mod commands;
pub mod fault;
pub mod firmware;
pub mod model;
pub mod physics;
pub mod render;
pub mod report;
pub mod request;
pub mod state;
pub mod view;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, watch};

pub use fault::Fault;
pub use model::{Firmware, Personality};
pub use view::{MinerView, PoolView, ShareCounts};

use crate::stratum_client::{PoolLink, SimPool, StratumClient, StratumClientSpec};
use physics::{OperatingPoint, SensorReading, UnitTraits};
use report::{PoolLiveness, PoolReport, Report};
use state::{MinerState, OFF_BOOK_SHARE_INTERVAL, OffBook};

/// Who may run the commands that change a miner (cgminer's `W:` API access group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Privileged {
    /// Every client may (`api-allow W:0/0`).
    #[default]
    All,
    /// No client may: privileged commands answer Code 45.
    None,
}

/// Everything one miner is started with.
#[derive(Debug, Clone)]
pub struct MinerSpec {
    pub ip: Ipv4Addr,
    pub api_port: u16,
    pub personality: Personality,
    pub pools: Vec<SimPool>,
    /// Real double-SHA-256 hashes per second this miner's Stratum client may spend on share
    /// search at the model's nominal hashrate (scaled with the hashrate it actually runs at).
    pub hashes_per_second: f64,
    pub privileged: Privileged,
    pub ambient_c: f64,
    /// This unit's seed: its efficiency, temperatures and error rate.
    pub seed: u64,
    /// How long `restart` keeps the miner down (real firmware: 60–180 s).
    pub restart_time: Duration,
}

/// A running miner; cheap to clone.
#[derive(Clone)]
pub struct Miner {
    inner: Arc<Inner>,
}

struct Inner {
    spec: MinerSpec,
    traits: UnitTraits,
    state: Mutex<MinerState>,
    stratum: StratumClient,
    /// Wakes the API server to close its listener for a reboot window.
    reboot: Notify,
    shutdown: watch::Sender<bool>,
    /// The periodic task of a devfee fault, aborted when faults are cleared.
    devfee_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The API server task; it owns the listener.
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Miner {
    /// Binds the API listener on `ip:api_port`, starts the Stratum client bound to `ip`, and
    /// serves until [`Miner::stop`].
    pub async fn start(spec: MinerSpec) -> std::io::Result<Miner> {
        let addr = SocketAddr::from((spec.ip, spec.api_port));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let hardware = spec.personality.hardware();
        let traits = UnitTraits::from_seed(spec.seed, hardware.chains.len());
        let stratum = StratumClient::spawn(StratumClientSpec {
            bind_ip: spec.ip,
            pools: spec.pools.clone(),
            version_rolling: hardware.version_rolling,
            hashes_per_second: spec.hashes_per_second,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let miner = Miner {
            inner: Arc::new(Inner {
                state: Mutex::new(MinerState::new(spec.pools.clone(), hardware.nominal_w)),
                spec,
                traits,
                stratum,
                reboot: Notify::new(),
                shutdown,
                devfee_task: Mutex::new(None),
                server: Mutex::new(None),
            }),
        };
        miner.sync_hash_rate();
        let server = tokio::spawn(api::serve(miner.clone(), listener, shutdown_rx));
        *miner
            .inner
            .server
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(server);
        Ok(miner)
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.inner.spec.ip
    }

    pub fn api_address(&self) -> SocketAddr {
        SocketAddr::from((self.inner.spec.ip, self.inner.spec.api_port))
    }

    pub fn personality(&self) -> Personality {
        self.inner.spec.personality
    }

    pub(crate) fn spec(&self) -> &MinerSpec {
        &self.inner.spec
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, MinerState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn stratum(&self) -> &StratumClient {
        &self.inner.stratum
    }

    pub(crate) fn reboot_notify(&self) -> &Notify {
        &self.inner.reboot
    }

    /// Stops the API server and the Stratum client.
    pub fn stop(&self) {
        let _ = self.inner.shutdown.send(true);
        self.inner.stratum.stop();
        if let Some(task) = self.devfee_slot().take() {
            task.abort();
        }
    }

    /// Stops the miner and waits until its API listener is closed (the address is free).
    pub async fn shutdown(&self) {
        self.stop();
        let server = self
            .inner
            .server
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(server) = server {
            let _ = server.await;
        }
    }

    fn devfee_slot(&self) -> MutexGuard<'_, Option<tokio::task::JoinHandle<()>>> {
        self.inner
            .devfee_task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the boards hash: awake, booted, and with work (a live pool, or off the books).
    fn hashing(&self, state: &MinerState, links: &[PoolLink]) -> bool {
        !state.sleeping
            && !state.rebooting()
            && (state.off_book.is_some() || links.iter().any(|l| l.alive))
    }

    fn reading(&self, state: &MinerState, links: &[PoolLink]) -> SensorReading {
        physics::read(
            self.inner.spec.personality.hardware(),
            &self.inner.traits,
            OperatingPoint {
                hashing: self.hashing(state, links),
                power_target_w: state.power_target_w,
                ambient_c: self.inner.spec.ambient_c,
            },
        )
    }

    /// What the firmware reports now: one consistent picture for every command of a request.
    pub(crate) fn report(&self) -> Report {
        let links = self.inner.stratum.status();
        let state = self.state();
        let reading = self.reading(&state, &links);
        let uptime_s = state.uptime().as_secs();
        let hardware = self.inner.spec.personality.hardware();
        let av = reading.hashrate_ths();
        let now = unix_now();
        let jitter = physics::five_second_jitter(self.inner.traits.seed, now);
        let pools = match &state.off_book {
            Some(off) => off_book_pools(off),
            None => pool_reports(&state, &links),
        };
        let hw_errors_per_board = self
            .inner
            .traits
            .board_factors
            .iter()
            .map(|f| {
                let per_board = self.inner.traits.hw_errors_per_hour / hardware.chains.len() as f64;
                (uptime_s as f64 / 3600.0 * per_board * f * f) as u64
            })
            .collect();
        Report {
            personality: self.inner.spec.personality,
            when_unix: now,
            uptime_s,
            hashrate_5s_ths: av * jitter,
            hashrate_av_ths: av,
            // What the boards are rated for at this operating point, whatever this unit does.
            hashrate_ideal_ths: physics::hashrate_at(
                hardware,
                &UnitTraits::nominal(hardware.chains.len()),
                state.power_target_w,
            ),
            hw_errors_per_board,
            pools,
            power_target_w: state.power_target_w,
            sleeping: state.sleeping,
            frequency_mhz: hardware.frequency_mhz,
            unit_id: format!("{:016x}", self.inner.traits.seed),
            session_id: state.session_id.clone(),
            reading,
        }
    }

    /// The ground truth (see [`MinerView`]).
    pub fn view(&self) -> MinerView {
        let links = self.inner.stratum.status();
        let state = self.state();
        let reading = self.reading(&state, &links);
        let mut shares: BTreeMap<String, ShareCounts> = BTreeMap::new();
        for link in &links {
            let entry = shares.entry(link.url.clone()).or_default();
            entry.accepted += link.accepted;
            entry.submitted += link.accepted + link.rejected + link.stale;
        }
        let pools = state
            .effective_pools()
            .iter()
            .enumerate()
            .map(|(i, p)| PoolView {
                url: p.pool.url.clone(),
                user: p.pool.user.clone(),
                active: links.get(i).is_some_and(|l| l.active),
            })
            .collect();
        let personality = self.inner.spec.personality;
        MinerView {
            ip: self.inner.spec.ip,
            personality,
            model: personality.hardware().name.to_string(),
            firmware: personality.firmware(),
            power_w: reading.power_w,
            power_target_w: state.power_target_w,
            hashrate_ths: reading.hashrate_ths(),
            board_hashrate_ths: reading.board_ths.clone(),
            chip_temp_c: reading.chip_temp_c.clone(),
            pcb_temp_c: reading.pcb_temp_c.clone(),
            fan_rpm: reading.fan_rpm.clone(),
            sleeping: state.sleeping,
            rebooting: state.rebooting(),
            uptime_s: state.uptime().as_secs(),
            pools,
            shares,
        }
    }

    /// Tells the Stratum client the firmware's current list and preferred pool.
    pub(crate) fn sync_pools(&self, state: &MinerState) {
        let pools = state.effective_pools();
        self.inner
            .stratum
            .set_pools(pools.iter().map(|p| p.pool.clone()).collect());
        for (i, p) in pools.iter().enumerate() {
            self.inner.stratum.set_enabled(i, p.enabled);
        }
        self.inner.stratum.switch_to(state.effective_preferred());
    }

    /// The share search runs at this miner's slice of the hash budget, scaled by how fast the
    /// boards hash at the current power target.
    fn sync_hash_rate(&self) {
        let hardware = self.inner.spec.personality.hardware();
        let power = self.state().power_target_w;
        let ths = physics::hashrate_at(hardware, &self.inner.traits, power);
        let rate = self.inner.spec.hashes_per_second * ths / hardware.nominal_ths;
        self.inner.stratum.set_hash_rate(rate.max(1.0));
    }

    fn sync_mining(&self, state: &MinerState) {
        let mining = !state.sleeping && !state.rebooting() && state.off_book.is_none();
        self.inner.stratum.set_mining(mining);
    }

    /// Sleep (curtailment): boards off, fans on, Stratum disconnected.
    pub fn set_sleeping(&self, sleeping: bool) {
        let mut state = self.state();
        state.sleeping = sleeping;
        self.sync_mining(&state);
    }

    /// The autotuner's power target, clamped to what the model accepts. Firmware without a
    /// power target ignores it (they run at the model's nominal point).
    pub fn set_power_target(&self, watts: f64) {
        if !self.inner.spec.personality.has_power_target() || !watts.is_finite() {
            return;
        }
        let hardware = self.inner.spec.personality.hardware();
        let watts = match self.inner.spec.personality.firmware() {
            // LuxOS runs power profiles: the highest at or below the target
            Firmware::Luxos => firmware::luxos::profile_for(hardware, watts).watts,
            _ => watts,
        };
        self.state().power_target_w = watts.clamp(hardware.min_power_w, hardware.max_power_w);
        self.sync_hash_rate();
    }

    /// Starts a reboot window: API closed, Stratum off; [`api::serve`] ends it.
    pub(crate) fn begin_reboot(&self, down_for: Duration) {
        let mut state = self.state();
        state.rebooting_until = Some(Instant::now() + down_for);
        self.inner.stratum.set_mining(false);
        drop(state);
        self.inner.reboot.notify_one();
    }

    /// The firmware is back: uptime starts from zero.
    pub(crate) fn finish_reboot(&self) {
        let mut state = self.state();
        state.rebooting_until = None;
        state.booted_at = Instant::now();
        self.sync_mining(&state);
    }

    pub fn inject(&self, fault: Fault) {
        tracing::info!(miner = %self.inner.spec.ip, ?fault, "fault injected");
        match &fault {
            Fault::Rebooting(d) => self.begin_reboot(*d),
            Fault::SelfHijack { url, user } => self.hijack(url, user),
            Fault::UserChange { user } => self.change_user(user),
            Fault::DevFee {
                url,
                user,
                every,
                for_,
            } => self.start_devfee(
                SimPool {
                    url: url.clone(),
                    user: user.clone(),
                    password: "x".into(),
                },
                *every,
                *for_,
            ),
            Fault::HiddenHashing => self.hide_hashing(),
            Fault::Hang
            | Fault::Slow(_)
            | Fault::Malformed
            | Fault::Truncated
            | Fault::Oversized => {}
        }
        self.state().faults.push(fault);
    }

    /// Ends every fault: replies are normal again, the site's pool list is restored, the
    /// devfee stops and shares go where the firmware says again. A reboot in progress runs
    /// its course.
    pub fn clear_faults(&self) {
        if let Some(task) = self.devfee_slot().take() {
            task.abort();
        }
        let mut state = self.state();
        state.faults.clear();
        state.devfee = None;
        state.off_book = None;
        if let Some((pools, preferred)) = state.sanctioned.take() {
            state.pools = pools;
            state.preferred = preferred;
        }
        self.sync_pools(&state);
        self.sync_mining(&state);
        tracing::info!(miner = %self.inner.spec.ip, "faults cleared");
    }

    pub(crate) fn faults(&self) -> Vec<Fault> {
        self.state().faults.clone()
    }

    fn hijack(&self, url: &str, user: &str) {
        let mut state = self.state();
        state.keep_sanctioned();
        state.pools.insert(
            0,
            state::ConfiguredPool {
                pool: SimPool {
                    url: url.to_string(),
                    user: user.to_string(),
                    password: "x".into(),
                },
                enabled: true,
            },
        );
        state.preferred = 0;
        self.sync_pools(&state);
    }

    fn change_user(&self, user: &str) {
        let mut state = self.state();
        state.keep_sanctioned();
        for p in &mut state.pools {
            p.pool.user = user.to_string();
        }
        self.sync_pools(&state);
    }

    fn hide_hashing(&self) {
        let links = self.inner.stratum.status();
        let mut state = self.state();
        let shown = pool_reports(&state, &links);
        state.off_book = Some(OffBook {
            shown,
            since: Instant::now(),
        });
        self.sync_mining(&state);
    }

    fn start_devfee(&self, pool: SimPool, every: Duration, for_: Duration) {
        let miner = self.clone();
        let task = tokio::spawn(async move {
            let every = every.max(Duration::from_millis(100));
            loop {
                tokio::time::sleep(every).await;
                {
                    let mut state = miner.state();
                    state.devfee = Some(pool.clone());
                    miner.sync_pools(&state);
                }
                tokio::time::sleep(for_).await;
                let mut state = miner.state();
                state.devfee = None;
                miner.sync_pools(&state);
            }
        });
        if let Some(old) = self.devfee_slot().replace(task) {
            old.abort();
        }
    }
}

/// The pools as the firmware shows them: its list, with liveness and counters from the
/// Stratum client that mines them.
fn pool_reports(state: &MinerState, links: &[PoolLink]) -> Vec<PoolReport> {
    state
        .effective_pools()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let link = links.get(i);
            let status = match link {
                _ if !p.enabled => PoolLiveness::Disabled,
                Some(l) if l.alive => PoolLiveness::Alive,
                _ => PoolLiveness::Dead,
            };
            PoolReport {
                url: p.pool.url.clone(),
                user: p.pool.user.clone(),
                status,
                priority: state.priority_of(i),
                stratum_active: link.is_some_and(|l| l.active),
                accepted: link.map_or(0, |l| l.accepted),
                rejected: link.map_or(0, |l| l.rejected),
                stale: link.map_or(0, |l| l.stale),
                last_share_unix: link.map_or(0, |l| l.last_share_unix),
                difficulty: link.map_or(0.0, |l| l.difficulty),
            }
        })
        .collect()
}

/// The frozen list of an off-book miner, its active pool's count climbing as if shares still
/// arrived there.
fn off_book_pools(off: &OffBook) -> Vec<PoolReport> {
    let pretended = off.since.elapsed().as_secs() / OFF_BOOK_SHARE_INTERVAL.as_secs();
    let now = unix_now();
    off.shown
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if p.stratum_active {
                p.accepted += pretended;
                p.status = PoolLiveness::Alive;
                if pretended > 0 {
                    p.last_share_unix = now;
                }
            }
            p
        })
        .collect()
}
