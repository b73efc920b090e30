//! The proxy as a whole: the listener on the mining network, admission by source address,
//! one `OwnerPools` per owner (created when the owner's first miner connects), and the view.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::accounting::{Accounting, ShareCounts};
use super::directory::MinerDirectory;
use super::miner_session::{self, SessionContext};
use super::owner_pools::{OwnerPools, UpstreamView};
use super::settings::ProxySettings;
use super::view::{LiveMiners, MinerView};

/// Connections one miner address may hold at once. A miner keeps one (two briefly while it
/// reconnects); more is a misbehaving or spoofing host taking extranonce space from others.
const MAX_SESSIONS_PER_MINER: u32 = 4;

/// A running proxy. Dropping it does not stop it; call `stop`.
pub struct Proxy {
    settings: Arc<ProxySettings>,
    directory: Arc<dyn MinerDirectory>,
    accounting: Arc<Accounting>,
    owners: Mutex<HashMap<String, Arc<OwnerPools>>>,
    live: Arc<LiveMiners>,
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Proxy {
    /// Binds `settings.listen` and starts serving miners. `settings` must have passed
    /// `validate`.
    pub async fn start(
        settings: ProxySettings,
        directory: Arc<dyn MinerDirectory>,
        accounting: Arc<Accounting>,
    ) -> std::io::Result<Arc<Proxy>> {
        let listener = TcpListener::bind(settings.listen).await?;
        let (stop, _) = watch::channel(false);
        let proxy = Arc::new(Proxy {
            settings: Arc::new(settings),
            directory,
            accounting,
            owners: Mutex::new(HashMap::new()),
            live: Arc::new(LiveMiners::default()),
            local_addr: listener.local_addr()?,
            stop,
        });
        tracing::info!(listen = %proxy.local_addr, "stratum proxy listening");
        tokio::spawn(accept(proxy.clone(), listener));
        Ok(proxy)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops listening, ends every miner session, and closes the pool connections once their
    /// last forwarded shares are answered.
    pub fn stop(&self) {
        self.stop.send_replace(true);
        let owners = self.owners.lock().expect("owners lock");
        for pools in owners.values() {
            pools.stop();
        }
    }

    /// Every miner seen since start, with its committed counts.
    pub fn miners(&self) -> Vec<MinerView> {
        // One pass over the counts, not one per miner: thousands of miners are read at once.
        let mut counts: HashMap<String, ShareCounts> = HashMap::new();
        for ((miner_id, _owner), c) in self.accounting.per_miner() {
            counts.entry(miner_id).or_default().merge(&c);
        }
        let mut miners = self.live.snapshot();
        for m in &mut miners {
            m.counts = counts.get(&m.miner_id).cloned().unwrap_or_default();
        }
        miners.sort_by_key(|m| m.ip);
        miners
    }

    pub fn miner(&self, ip: IpAddr) -> Option<MinerView> {
        self.miners().into_iter().find(|m| m.ip == Some(ip))
    }

    /// Committed counts of one owner's miners.
    pub fn owner_totals(&self, owner: &str) -> ShareCounts {
        self.accounting.owner(owner)
    }

    /// Every pool connection of every owner.
    pub fn upstreams(&self) -> Vec<UpstreamView> {
        let owners = self.owners.lock().expect("owners lock");
        owners.values().flat_map(|o| o.upstreams()).collect()
    }

    /// The pool an owner's miners are sent to now.
    pub fn active_pool(&self, owner: &str) -> Option<String> {
        let owners = self.owners.lock().expect("owners lock");
        owners.get(owner)?.active_pool().map(|p| p.url)
    }

    /// Quarantines a miner (or lifts it): only a sanctioned identity may authorize or submit,
    /// and the miner is flagged in the view.
    pub fn quarantine(&self, ip: IpAddr, on: bool) {
        self.live.set_quarantine(ip, on);
        tracing::warn!(miner = %ip, quarantined = on, "quarantine changed");
    }

    /// Withholds work from a miner (or gives it work again): its connections are closed
    /// within a session tick and new ones closed at once, so a miner whose firmware cannot
    /// sleep over its API has nothing to hash and idles at its idle draw. Curtailment's switch
    /// (added for `curtailment_driver`); not persisted, the driver re-applies it at start.
    pub fn withhold_work(&self, ip: IpAddr, on: bool) {
        self.live.set_withheld(ip, on);
        tracing::info!(miner = %ip, withheld = on, "work withholding changed");
    }

    pub fn is_withholding_work(&self, ip: IpAddr) -> bool {
        self.live.is_withheld(ip)
    }

    /// Connections refused because their source is not a known miner, or a miner already
    /// holding `MAX_SESSIONS_PER_MINER` connections.
    pub fn refused_connections(&self) -> u64 {
        self.live.refused_sources()
    }

    pub fn accounting(&self) -> &Arc<Accounting> {
        &self.accounting
    }

    fn owner_pools(&self, owner: &str) -> Arc<OwnerPools> {
        let mut owners = self.owners.lock().expect("owners lock");
        owners
            .entry(owner.to_string())
            .or_insert_with(|| {
                OwnerPools::start(
                    owner.to_string(),
                    self.directory.owner_pools(owner),
                    self.settings.clone(),
                    self.accounting.clone(),
                )
            })
            .clone()
    }

    fn admit(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let Some(admission) = self.directory.admit(peer.ip()) else {
            tracing::warn!(source = %peer.ip(), "connection from an address that is not a known miner refused");
            self.live.count_refused_source();
            return; // dropping the stream closes it
        };
        if self.live.is_withheld(peer.ip()) {
            tracing::debug!(miner = %peer.ip(), "work withheld (curtailed); connection closed");
            return;
        }
        if !self.live.open_session(peer.ip(), MAX_SESSIONS_PER_MINER) {
            tracing::warn!(miner = %peer.ip(), "too many connections from one miner; refused");
            self.live.count_refused_source();
            return;
        }
        let ctx = SessionContext {
            ip: peer.ip(),
            pools: self.owner_pools(&admission.owner),
            admission,
            settings: self.settings.clone(),
            accounting: self.accounting.clone(),
            live: self.live.clone(),
        };
        tokio::spawn(miner_session::serve(stream, ctx, self.stop.subscribe()));
    }
}

async fn accept(proxy: Arc<Proxy>, listener: TcpListener) {
    let mut stop = proxy.stop.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => proxy.admit(stream, peer),
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}
