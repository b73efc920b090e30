//! Keeps this hub's links up: accepts its peers' links and dials its own, again and again.
//!
//! Which end dials: of two peers, the hub whose id sorts first dials every link of the pair, at
//! the address its peering file gives; the other only accepts. One rule at both ends means one
//! QUIC connection per cable, never two racing each other. A dialed link that goes down is
//! dialed again at once, then after a growing pause while it keeps failing
//! ([`Backoff`]: 100 ms doubling to 5 s, with jitter so that a whole site does not knock in
//! step), so a peer restarted with kill -9 is back within a second of listening again.
//!
//! Every link that comes up, dialed or accepted, is handed to the daemon through one channel;
//! refused peers are counted by reason ([`SupervisorCounters`]) and logged by the endpoint.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backoff;
use crate::hub_id::HubId;
use crate::links::{Link, LinkEndpoint, LinkError, LinkKey};
use crate::peering::Peers;

/// What the supervisor has seen, for the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SupervisorCounters {
    /// Links that came up, dialed or accepted.
    pub up: u64,
    /// Dial attempts that failed, by reason (`refused:<label>`, `timed_out`, `lost`, ...).
    pub dial_failures: BTreeMap<String, u64>,
    /// Knocking peers refused, by refusal label.
    pub refused: BTreeMap<String, u64>,
}

/// The links of one hub, kept up until cancelled.
#[derive(Debug)]
pub struct LinkSupervisor {
    counters: Arc<Mutex<SupervisorCounters>>,
    tasks: JoinSet<()>,
}

/// The links this hub dials: those to peers whose id sorts after its own.
pub fn dialed_links(peers: &Peers) -> Vec<LinkKey> {
    let own = peers.own_hub();
    peers
        .iter()
        .filter(|agreement| own < agreement.hub())
        .flat_map(|agreement| {
            agreement.links().iter().map(|link| LinkKey {
                peer: agreement.hub().clone(),
                link: link.id,
            })
        })
        .collect()
}

impl LinkSupervisor {
    /// Accepts on every endpoint and dials this hub's share of the links (the first endpoint of
    /// the peer address's family dials); hands each link up to `up`.
    pub fn start(
        endpoints: &[Arc<LinkEndpoint>],
        peers: &Peers,
        up: mpsc::Sender<Link>,
        cancel: CancellationToken,
    ) -> Self {
        let counters = Arc::new(Mutex::new(SupervisorCounters::default()));
        let mut tasks = JoinSet::new();
        for endpoint in endpoints {
            tasks.spawn(accept_loop(
                Arc::clone(endpoint),
                up.clone(),
                Arc::clone(&counters),
                cancel.clone(),
            ));
        }
        for key in dialed_links(peers) {
            let Some(address) = address_of(peers, &key) else {
                continue;
            };
            let Some(endpoint) = dialing_endpoint(endpoints, address) else {
                tracing::error!(link = %key, %address, "no endpoint to dial this link from");
                continue;
            };
            tasks.spawn(dial_loop(
                endpoint,
                key,
                up.clone(),
                Arc::clone(&counters),
                cancel.clone(),
            ));
        }
        Self { counters, tasks }
    }

    /// What has happened so far.
    pub fn counters(&self) -> SupervisorCounters {
        lock(&self.counters).clone()
    }

    /// Waits for every loop to end (after the cancel token fired).
    pub async fn stopped(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

fn lock(counters: &Mutex<SupervisorCounters>) -> std::sync::MutexGuard<'_, SupervisorCounters> {
    counters.lock().unwrap_or_else(PoisonError::into_inner)
}

fn address_of(peers: &Peers, key: &LinkKey) -> Option<SocketAddr> {
    peers
        .get(&key.peer)?
        .links()
        .iter()
        .find(|link| link.id == key.link)
        .map(|link| link.address)
}

/// The first endpoint bound to the same address family as `address`, else the first.
fn dialing_endpoint(
    endpoints: &[Arc<LinkEndpoint>],
    address: SocketAddr,
) -> Option<Arc<LinkEndpoint>> {
    endpoints
        .iter()
        .find(|endpoint| {
            endpoint
                .local_addr()
                .is_ok_and(|local| local.is_ipv4() == address.is_ipv4())
        })
        .or_else(|| endpoints.first())
        .cloned()
}

async fn accept_loop(
    endpoint: Arc<LinkEndpoint>,
    up: mpsc::Sender<Link>,
    counters: Arc<Mutex<SupervisorCounters>>,
    cancel: CancellationToken,
) {
    let mut admitting = JoinSet::new();
    loop {
        let incoming = tokio::select! {
            () = cancel.cancelled() => break,
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
            Some(_) = admitting.join_next(), if !admitting.is_empty() => continue,
        };
        let up = up.clone();
        let counters = Arc::clone(&counters);
        // Each knock on its own task: a slow or hostile peer delays only itself.
        admitting.spawn(async move {
            match incoming.admit().await {
                Ok(link) => {
                    lock(&counters).up += 1;
                    let _ = up.send(link).await;
                }
                Err(error) => {
                    let label = error
                        .refusal()
                        .map_or_else(|| failure_label(&error), |r| r.label().to_owned());
                    *lock(&counters).refused.entry(label).or_default() += 1;
                }
            }
        });
    }
    admitting.abort_all();
}

async fn dial_loop(
    endpoint: Arc<LinkEndpoint>,
    key: LinkKey,
    up: mpsc::Sender<Link>,
    counters: Arc<Mutex<SupervisorCounters>>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(&key.peer);
    let mut failing = false;
    loop {
        let dialed = tokio::select! {
            () = cancel.cancelled() => return,
            dialed = endpoint.dial(&key.peer, key.link) => dialed,
        };
        match dialed {
            Ok(link) => {
                if failing {
                    tracing::info!(link = %key, "link dialed again after failures");
                }
                failing = false;
                backoff.reset();
                lock(&counters).up += 1;
                let streams = link.streams();
                if up.send(link).await.is_err() {
                    return;
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = streams.closed() => {}
                }
                tracing::info!(link = %key, "link down; dialing it again");
            }
            Err(error) => {
                let label = failure_label(&error);
                if !failing {
                    tracing::warn!(link = %key, reason = %label, "cannot bring the link up: {error}; retrying");
                }
                failing = true;
                *lock(&counters).dial_failures.entry(label).or_default() += 1;
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(backoff.next_pause()) => {}
        }
    }
}

/// A stable label for a failed link attempt.
fn failure_label(error: &LinkError) -> String {
    match error {
        LinkError::Refused(refusal) => format!("refused:{}", refusal.label()),
        LinkError::TimedOut(_) => "timed_out".into(),
        LinkError::Lost(_) => "lost".into(),
        LinkError::Connect(_) => "connect".into(),
        LinkError::NotAPeer(_) | LinkError::NotALink { .. } => "not_in_peering".into(),
        LinkError::Tls(_) | LinkError::Quic(_) | LinkError::Bind { .. } => "local_setup".into(),
    }
}

/// The pause between attempts at one link: none after a link that was up went down, then
/// 100 ms doubling to 5 s while attempts keep failing, each ±25 % (jitter seeded by the peer).
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The next attempt is the first since the link was up: at once.
    at_once: bool,
    pauses: backoff::Backoff,
}

impl Backoff {
    /// First pause after a failure.
    pub const FIRST: Duration = Duration::from_millis(100);
    /// Longest pause.
    pub const MOST: Duration = Duration::from_secs(5);

    /// A backoff for the links to `peer`.
    pub fn new(peer: &HubId) -> Self {
        let seed = peer
            .as_str()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            });
        Self {
            at_once: true,
            pauses: backoff::Backoff::new(Self::FIRST, Self::MOST, seed),
        }
    }

    /// The link came up: the next failure starts from [`FIRST`](Self::FIRST) again.
    pub fn reset(&mut self) {
        self.at_once = true;
        self.pauses.reset();
    }

    /// The pause before the next attempt.
    pub fn next_pause(&mut self) -> Duration {
        if std::mem::replace(&mut self.at_once, false) {
            return Duration::ZERO;
        }
        self.pauses.next_pause()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::hub;

    #[test]
    fn the_backoff_grows_to_its_ceiling_with_jitter_and_resets() {
        let mut backoff = Backoff::new(&hub("paris-1"));
        assert_eq!(
            backoff.next_pause(),
            Duration::ZERO,
            "a link that went down is redialed at once"
        );
        let pauses: Vec<Duration> = (0..10).map(|_| backoff.next_pause()).collect();
        assert!(
            (Duration::from_millis(75)..=Duration::from_millis(125)).contains(&pauses[0]),
            "{pauses:?}"
        );
        assert!(
            (Duration::from_millis(150)..=Duration::from_millis(250)).contains(&pauses[1]),
            "{pauses:?}"
        );
        for pause in &pauses[6..] {
            assert!(
                (Duration::from_millis(3750)..=Duration::from_millis(6250)).contains(pause),
                "{pauses:?}"
            );
        }
        backoff.reset();
        assert_eq!(backoff.next_pause(), Duration::ZERO);
        let other: Vec<Duration> = {
            let mut other = Backoff::new(&hub("lisbon-1"));
            (0..11).map(|_| other.next_pause()).skip(1).collect()
        };
        assert_ne!(other, pauses, "two peers do not knock in step");
    }
}
