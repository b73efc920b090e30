//! Polling one miner: the joined request its firmware answers best, under one deadline for the
//! whole exchange, turned into a [`MinerSnapshot`] or a [`PollFailure`].

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::PollFailure;
use crate::cgminer::{ClientConfig, Command, FirmwareKind, MinerSnapshot, Reply, Request, query};
use crate::inventory::MinerId;

/// One miner to poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollTarget {
    pub miner: MinerId,
    pub addr: SocketAddr,
    pub firmware: FirmwareKind,
    /// False once the firmware refused a joined request: then one command per connection.
    pub joins: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PollResult {
    pub outcome: Result<MinerSnapshot, PollFailure>,
    pub latency: Duration,
    /// The firmware refused the joined request (the next polls go one command at a time).
    pub joins_refused: bool,
}

/// The commands a poll asks each firmware for: what fills a [`MinerSnapshot`] in one round
/// trip, model and firmware included. Antminer stock firmware keeps model, boards,
/// temperatures and fans in `stats`; BOSminer keeps them in `devs`, `devdetails` (model,
/// chips), `temps`, `fans`, and power in `tunerstatus`; LuxOS like Antminer plus `fans`, `power`
/// and `config`; cgminer in `devs`, and only `version`
/// names its model. No more than that: every section costs parsing on each poll.
pub fn commands_for(firmware: FirmwareKind) -> &'static Request {
    use Command::*;
    static REQUESTS: OnceLock<[Request; 5]> = OnceLock::new();
    let requests = REQUESTS.get_or_init(|| {
        let join = |commands| Request::joined(commands).expect("read-only commands join");
        [
            join(vec![Summary, Pools, Stats]),
            join(vec![
                Summary,
                Pools,
                Devs,
                DevDetails,
                Fans,
                Temps,
                TunerStatus,
            ]),
            join(vec![Version, Summary, Pools, Devs, DevDetails]),
            join(vec![Version, Summary, Pools, Stats, Devs, DevDetails]),
            // LuxOS: bmminer's shape, its fans in a command of their own, wall power in
            // `power` and the running power profile in `config` (curtailment steps profiles)
            join(vec![Summary, Pools, Stats, Fans, Power, Config]),
        ]
    });
    match firmware {
        FirmwareKind::Bmminer => &requests[0],
        FirmwareKind::Bosminer => &requests[1],
        FirmwareKind::Cgminer => &requests[2],
        FirmwareKind::Unknown => &requests[3],
        FirmwareKind::Luxos => &requests[4],
    }
}

/// Polls one miner; never takes longer than `deadline` (plus scheduling).
pub async fn poll_miner(
    target: &PollTarget,
    client: &ClientConfig,
    deadline: Duration,
) -> PollResult {
    let started = Instant::now();
    let exchange = exchange(target, client);
    let (outcome, joins_refused) = match tokio::time::timeout(deadline, exchange).await {
        Ok(done) => done,
        Err(_) => (Err(PollFailure::Timeout), false),
    };
    PollResult {
        outcome,
        latency: started.elapsed(),
        joins_refused,
    }
}

async fn exchange(
    target: &PollTarget,
    client: &ClientConfig,
) -> (Result<MinerSnapshot, PollFailure>, bool) {
    let request = commands_for(target.firmware);
    if !target.joins {
        return (one_by_one(target.addr, request, client).await, false);
    }
    match query(target.addr, request, client).await {
        Ok(reply) if has_data(&reply) => (Ok(MinerSnapshot::from_reply(&reply)), false),
        // A parsed reply without usable sections: the firmware refused the join as a whole.
        Ok(_) => (one_by_one(target.addr, request, client).await, true),
        Err(e) => (Err(PollFailure::from_client_error(&e)), false),
    }
}

/// The same commands, one connection each (firmware without `+` support, as pyasic falls
/// back to). A command the firmware refuses is skipped; a broken exchange fails the poll.
async fn one_by_one(
    addr: SocketAddr,
    request: &Request,
    client: &ClientConfig,
) -> Result<MinerSnapshot, PollFailure> {
    let mut merged = Reply::default();
    for command in request.commands() {
        let single = Request::single(command.clone());
        let reply = query(addr, &single, client)
            .await
            .map_err(|e| PollFailure::from_client_error(&e))?;
        merged.merge(reply);
    }
    if !has_data(&merged) {
        return Err(PollFailure::Malformed);
    }
    Ok(MinerSnapshot::from_reply(&merged))
}

/// Whether the reply carries telemetry: `summary` is the one section every firmware answers.
fn has_data(reply: &Reply) -> bool {
    reply.usable("summary").is_some()
}
