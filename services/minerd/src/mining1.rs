//! `org.bunkeros.Mining1` at `/org/bunkeros/Mining1`: the fleet on the system bus, for
//! `bunkerctl mining` and scripts, exactly as documented in
//! [`appliance::dbus::contracts::Mining1Proxy`].
//!
//! The edge between D-Bus and the fleet. Reads (`Status`, `Miners`, `Miner`) answer from the
//! latest [`MiningSnapshot`](crate::snapshot::MiningSnapshot) the daemon published, never
//! waiting on a miner; `Miner` adds the miner's last hour from the inventory. Actions
//! (`StartAction`) run as jobs ([`actions`], [`jobs`]) whose every step is in the audit log
//! with the caller's user ([`caller`]); `Scan` asks the daemon's discovery loop. Refusals are
//! the errors of [`appliance::dbus::contracts::mining_errors`], each with a sentence.

pub mod actions;
pub mod caller;
pub mod documents;
pub mod jobs;
pub mod selection;

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;
use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

use self::actions::ActionContext;
use self::selection::Selection;
use crate::inventory::{MinerState, Resolution, unix_now};
use crate::snapshot::{MiningSnapshot, Snapshots, wait_for_generation};

/// How long a change waits for the snapshot that shows it (one publish round, normally ms).
const FRESH_SNAPSHOT_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// A refusal, as the D-Bus error minerd answers with (names in `mining_errors`).
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.bunkeros.Mining1.Error")]
pub enum MiningError {
    /// A failure of zbus itself.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// An argument is not what the method takes.
    InvalidArgument(String),
    /// No such miner or job, or a selection that picks no miner.
    NotFound(String),
    /// The action cannot run now.
    Unavailable(String),
}

/// The object served at `/org/bunkeros/Mining1`.
pub struct Mining1 {
    snapshots: Snapshots,
    actions: Arc<ActionContext>,
}

impl Mining1 {
    /// The interface over the snapshots the daemon publishes and what actions need.
    pub fn new(snapshots: Snapshots, actions: Arc<ActionContext>) -> Mining1 {
        Mining1 { snapshots, actions }
    }

    /// The latest snapshot; the watch is released at once.
    fn now(&self) -> Arc<MiningSnapshot> {
        self.snapshots.borrow().clone()
    }
}

/// Parses a miner's address argument.
pub fn parse_ip(ip: &str) -> Result<IpAddr, MiningError> {
    ip.trim().parse::<IpAddr>().map_err(|_| {
        MiningError::InvalidArgument(format!("`{ip}` is not an IP address such as 10.1.0.7"))
    })
}

/// Parses a selection argument.
pub fn parse_selection(selection: &str) -> Result<Selection, MiningError> {
    selection
        .parse()
        .map_err(|e: selection::SelectionError| MiningError::InvalidArgument(e.to_string()))
}

#[interface(name = "org.bunkeros.Mining1")]
impl Mining1 {
    /// `Status() -> s`.
    async fn status(&self) -> String {
        documents::status(&self.now()).to_string()
    }

    /// `Miners(selection s) -> s`.
    async fn miners(&self, selection: String) -> Result<String, MiningError> {
        let selection = parse_selection(&selection)?;
        let snapshot = self.now();
        let picked = snapshot.miners.iter().filter(|m| selection.matches(m));
        Ok(documents::miners(&snapshot, picked).to_string())
    }

    /// `Miner(ip s) -> s`.
    async fn miner(&self, ip: String) -> Result<String, MiningError> {
        let address = parse_ip(&ip)?;
        let snapshot = self.now();
        let record = snapshot
            .miner_at(address)
            .ok_or_else(|| {
                MiningError::NotFound(format!("no miner at {address} in the inventory"))
            })?
            .clone();
        let inventory = Arc::clone(&self.actions.inventory);
        let id = record.id;
        let now = unix_now();
        let history = tokio::task::spawn_blocking(move || {
            inventory.history(id, Resolution::Minute, now - 3600, now + 60)
        })
        .await
        .map_err(|e| MiningError::Unavailable(format!("reading the history failed: {e}")))?
        .map_err(|e| MiningError::Unavailable(format!("reading the history failed: {e}")))?;
        let status = snapshot.telemetry.get(&record.id);
        let proxy = documents::proxy_view(&snapshot, address);
        let hijacks = match &snapshot.hijacks {
            Ok(findings) => documents::hijacks(&snapshot, findings, Some(address)),
            Err(_) => Value::Null,
        };
        Ok(documents::miner_detail(&record, status, proxy, hijacks, &history).to_string())
    }

    /// `Hijacks() -> s`.
    async fn hijacks(&self) -> Result<String, MiningError> {
        let snapshot = self.now();
        match &snapshot.hijacks {
            Ok(findings) => Ok(documents::hijacks(&snapshot, findings, None).to_string()),
            Err(error) => Err(MiningError::Unavailable(format!(
                "the crypto-jacking findings cannot be read: {error}"
            ))),
        }
    }

    /// `StartAction(action s, selection s, argument s) -> s`: the job id.
    async fn start_action(
        &self,
        action: String,
        selection: String,
        argument: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<String, MiningError> {
        let requested = actions::Requested::parse(&action, &argument)?;
        let picked = parse_selection(&selection)?;
        let actor = caller::actor(connection, &header).await?;
        let snapshot = self.now();
        let targets: Vec<_> = snapshot
            .miners
            .iter()
            .filter(|m| picked.matches(m))
            .cloned()
            .collect();
        if targets.is_empty() {
            return Err(MiningError::NotFound(format!(
                "the selection `{selection}` picks no miner of the inventory"
            )));
        }
        let job = self
            .actions
            .start(actor, requested, &selection, targets, emitter.into_owned());
        Ok(job)
    }

    /// `Job(id s) -> s`.
    async fn job(&self, id: String) -> Result<String, MiningError> {
        self.actions
            .jobs
            .get(&id)
            .map(|job| job.document().to_string())
            .ok_or_else(|| {
                MiningError::NotFound(format!(
                    "no job `{id}` (jobs are kept until minerd restarts)"
                ))
            })
    }

    /// `JobProgress(id s, done u, failed u, total u)`.
    #[zbus(signal)]
    pub async fn job_progress(
        emitter: &SignalEmitter<'_>,
        id: &str,
        done: u32,
        failed: u32,
        total: u32,
    ) -> zbus::Result<()>;

    /// `Release(ip s, note s)`.
    async fn release(
        &self,
        ip: String,
        note: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), MiningError> {
        let address = parse_ip(&ip)?;
        actions::check_note(&note)?;
        let actor = caller::actor(connection, &header).await?;
        let snapshot = self.now();
        let Some(miner) = snapshot.miner_at(address) else {
            return Err(MiningError::NotFound(format!(
                "no miner at {address} in the inventory"
            )));
        };
        if miner.state != MinerState::Quarantined {
            return Err(MiningError::InvalidArgument(format!(
                "{address} is not quarantined (it is {})",
                miner.state.as_str()
            )));
        }
        let generation = self
            .actions
            .release(*miner.addr.ip(), &actor, &note)
            .await?;
        // The caller's next read shows the miner released.
        wait_for_generation(&self.snapshots, generation, FRESH_SNAPSHOT_WITHIN).await;
        Ok(())
    }

    /// `Scan() -> s`.
    async fn scan(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<String, MiningError> {
        let actor = caller::actor(connection, &header).await?;
        let report = self.actions.scan(&actor).await?;
        Ok(documents::scan_report(&report).to_string())
    }
}
