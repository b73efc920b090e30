//! Setting a miner's pools to the sanctioned ones over the cgminer API, and checking it took.
//!
//! cgminer has no "replace the pool list" command, so: read `pools`; `addpool` each sanctioned
//! pool that is missing; read `pools` again for the new indices; `switchpool` to the first
//! sanctioned one (cgminer refuses to remove the pool it mines on); wait, up to
//! [`SWITCH_WAIT`], until the miner mines on it (the switch reconnects its Stratum client, so
//! the old pool stays the active one for a moment and `removepool` would be refused);
//! `removepool` every other pool, highest index first (cgminer renumbers the pools after a removal); read `pools` a
//! last time and check that exactly the sanctioned pools remain.

use std::net::SocketAddr;
use std::time::Duration;

use super::miner_action::{ActionError, send};
use crate::cgminer::{ClientConfig, Command, MinerSnapshot, PoolStatus};
use crate::hijack::{Endpoint, SanctionedPool};

/// How long `set_pools` waits for a `switchpool` to take before removing the old pools.
pub const SWITCH_WAIT: Duration = Duration::from_secs(10);

/// What `set_pools` did, for the sentence of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolsSet {
    pub added: usize,
    pub removed: usize,
    pub switched_to: Option<String>,
}

fn is(pool: &PoolStatus, sanctioned: &SanctionedPool) -> bool {
    Endpoint::of(&pool.url) == Endpoint::of(&sanctioned.url) && pool.user == sanctioned.user
}

fn is_sanctioned(pool: &PoolStatus, sanctioned: &[SanctionedPool]) -> bool {
    sanctioned.iter().any(|s| is(pool, s))
}

/// The miner's pools as it reports them now.
pub async fn read_pools(
    addr: SocketAddr,
    client: &ClientConfig,
) -> Result<Vec<PoolStatus>, ActionError> {
    let reply = send(addr, client, Command::Pools).await?;
    Ok(MinerSnapshot::from_reply(&reply).pools)
}

/// Makes the sanctioned pools the miner's only pools (see the module documentation).
pub async fn set_pools(
    addr: SocketAddr,
    client: &ClientConfig,
    sanctioned: &[SanctionedPool],
    password: &str,
) -> Result<PoolsSet, ActionError> {
    if sanctioned.is_empty() {
        return Err(ActionError::NothingSanctioned);
    }
    let before = read_pools(addr, client).await?;
    let mut added = 0;
    for pool in sanctioned {
        if !before.iter().any(|p| is(p, pool)) {
            let add = Command::AddPool {
                url: pool.url.clone(),
                user: pool.user.clone(),
                password: password.to_owned(),
            };
            send(addr, client, add).await?;
            added += 1;
        }
    }
    let listed = read_pools(addr, client).await?;
    let first = sanctioned
        .iter()
        .find_map(|s| listed.iter().find(|p| is(p, s)))
        .ok_or_else(|| ActionError::NotVerified {
            reason: "no sanctioned pool appears in `pools` after addpool".to_owned(),
        })?;
    let mut switched_to = None;
    if !first.stratum_active {
        send(addr, client, Command::SwitchPool(first.index)).await?;
        switched_to = Some(first.url.clone());
    }
    let listed = if switched_to.is_some() {
        wait_for_switch(addr, client, sanctioned).await?
    } else {
        listed
    };
    let mut foreign: Vec<u32> = listed
        .iter()
        .filter(|p| !is_sanctioned(p, sanctioned))
        .map(|p| p.index)
        .collect();
    foreign.sort_unstable_by(|a, b| b.cmp(a));
    for index in &foreign {
        send(addr, client, Command::RemovePool(*index)).await?;
    }
    verify(&read_pools(addr, client).await?, sanctioned)?;
    Ok(PoolsSet {
        added,
        removed: foreign.len(),
        switched_to,
    })
}

/// Reads `pools` until a sanctioned pool is the active one, or [`SWITCH_WAIT`] passed (then
/// the removals go ahead and say what the firmware refused).
async fn wait_for_switch(
    addr: SocketAddr,
    client: &ClientConfig,
    sanctioned: &[SanctionedPool],
) -> Result<Vec<PoolStatus>, ActionError> {
    let started = tokio::time::Instant::now();
    loop {
        let listed = read_pools(addr, client).await?;
        let switched = listed
            .iter()
            .any(|p| p.stratum_active && is_sanctioned(p, sanctioned));
        if switched || started.elapsed() >= SWITCH_WAIT {
            return Ok(listed);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Exactly the sanctioned pools, each once.
fn verify(pools: &[PoolStatus], sanctioned: &[SanctionedPool]) -> Result<(), ActionError> {
    if let Some(left) = pools.iter().find(|p| !is_sanctioned(p, sanctioned)) {
        return Err(ActionError::NotVerified {
            reason: format!(
                "pool {} (user {}) is still configured after removepool",
                left.url, left.user
            ),
        });
    }
    if let Some(missing) = sanctioned.iter().find(|s| !pools.iter().any(|p| is(p, s))) {
        return Err(ActionError::NotVerified {
            reason: format!("sanctioned pool {} is missing after addpool", missing.url),
        });
    }
    Ok(())
}
