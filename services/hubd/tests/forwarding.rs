//! TCP services carried between real `hubd` processes: a client at one hub reaches a service
//! published at another through transit hubs; the path follows the policy or the client is
//! refused; when a transit hub dies mid-stream the session moves to the backup path and the
//! client's connection carries on, every byte in order.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use appliance::dbus::contracts::SiteState;
use common::{CONVERGE, Hub, Site, free_tcp};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo service on loopback: what it reads it writes back.
async fn echo_service() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    address
}

/// `madrid-1` (ES) reaches `echo` at `paris-1` (FR); transit hubs in between are given by the
/// caller. Paris grants the service to every transit hub; transit hubs grant Madrid transit.
struct Network {
    madrid: Hub,
    paris: Hub,
    transits: Vec<Hub>,
    client_listen: SocketAddr,
    _sites: Vec<Site>,
}

async fn network(transits: &[(&'static str, &str)], policy: &str) -> Network {
    let madrid_site = Site::new("madrid");
    let paris_site = Site::new("paris");
    let madrid = Hub::new("madrid-1", "ES", &madrid_site).await;
    let paris = Hub::new("paris-1", "FR", &paris_site).await;
    let mut sites = vec![];
    let mut hubs = vec![];
    for (id, code) in transits {
        let site = Site::new(id);
        let hub = Hub::new(id, code, &site).await;
        madrid.peer_with(&hub, code, &site.root_pem, false);
        paris.peer_with_grant(&hub, code, &site.root_pem, "services = [\"echo\"]");
        hub.peer_with(&madrid, "ES", &madrid_site.root_pem, true);
        hub.peer_with(&paris, "FR", &paris_site.root_pem, true);
        sites.push(site);
        hubs.push(hub);
    }
    let echo = echo_service().await;
    paris.configure(&format!(
        "[[service]]\nname = \"echo\"\npublish = \"{echo}\"\n"
    ));
    let client_listen = free_tcp();
    madrid.configure(&format!(
        "{policy}[[service]]\nname = \"echo\"\nhub = \"paris-1\"\nlisten = \"{client_listen}\"\n"
    ));
    if !policy.is_empty() {
        madrid.configure("path_policy = \"only\"\n");
    }
    sites.push(madrid_site);
    sites.push(paris_site);
    Network {
        madrid,
        paris,
        transits: hubs,
        client_listen,
        _sites: sites,
    }
}

impl Network {
    fn start(&mut self) {
        self.madrid.start();
        self.paris.start();
        for hub in &mut self.transits {
            hub.start();
        }
    }

    /// Waits until Madrid trusts Paris (through a transit hub's voucher).
    async fn converged(&self, trusted: f64) {
        self.madrid
            .wait_for("hubd_hubs_trusted", "madrid trusts every hub", |n| {
                n >= trusted
            })
            .await;
        self.paris
            .wait_for("hubd_hubs_trusted", "paris trusts every hub", |n| {
                n >= trusted
            })
            .await;
    }

    /// A client connection through Madrid, retried while the control plane settles.
    async fn connect(&self) -> TcpStream {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let mut stream = TcpStream::connect(self.client_listen).await.unwrap();
            // A refused session is reset at once; an accepted one echoes.
            stream.write_all(b"ping").await.unwrap();
            let mut answer = [0u8; 4];
            let echoed =
                tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut answer)).await;
            if matches!(echoed, Ok(Ok(_))) && &answer == b"ping" {
                return stream;
            }
            assert!(
                Instant::now() < deadline,
                "no session within {CONVERGE:?}; madrid:\n{}",
                self.madrid.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Sends `total` bytes in chunks while reading the echo; returns the hash of what came back
/// and the longest wait between two reads.
async fn stream_through(stream: TcpStream, total: usize, pace: Duration) -> ([u8; 32], Duration) {
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let mut hash = Sha256::new();
        let mut sent = 0usize;
        let mut counter = 0u64;
        while sent < total {
            let chunk: Vec<u8> = (0..16 * 1024)
                .map(|_| {
                    counter = counter
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (counter >> 56) as u8
                })
                .collect();
            write.write_all(&chunk).await.unwrap();
            hash.update(&chunk);
            sent += chunk.len();
            tokio::time::sleep(pace).await;
        }
        write.shutdown().await.unwrap();
        <[u8; 32]>::from(hash.finalize())
    });
    let mut hash = Sha256::new();
    let mut received = 0usize;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    while received < total {
        let n = tokio::time::timeout(Duration::from_secs(30), read.read(&mut buffer))
            .await
            .expect("the echo keeps coming")
            .expect("the client's connection is never reset");
        assert!(
            n > 0,
            "the connection ended after {received} of {total} bytes"
        );
        longest = longest.max(last.elapsed());
        last = Instant::now();
        hash.update(&buffer[..n]);
        received += n;
    }
    let sent = writer.await.unwrap();
    let got = <[u8; 32]>::from(hash.finalize());
    assert_eq!(got, sent, "the bytes echoed are the bytes sent, in order");
    (got, longest)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_is_reached_through_a_transit_hub() {
    let mut net = network(&[("lisbon-1", "PT")], "").await;
    net.start();
    net.converged(2.0).await;
    let stream = net.connect().await;
    stream_through(stream, 2 << 20, Duration::ZERO).await;
    let log = net.madrid.log();
    assert!(
        log.contains("madrid-1 (ES) → lisbon-1 (PT) → paris-1 (FR)"),
        "the session's path is logged as proven by the receipts:\n{log}"
    );
    assert!(net.paris.log().contains("session started"));
    let lisbon = &net.transits[0];
    lisbon
        .wait_for(
            "hubd_transit_bytes_total",
            "lisbon forwarded the ciphertext",
            |n| n > 4.0 * 1024.0 * 1024.0,
        )
        .await;
    assert_eq!(
        lisbon.metric("hubd_circuits_established_total{role=\"transit\"}"),
        Some(1.0)
    );
    net.madrid
        .wait_for(
            "hubd_sessions_started_total",
            "one session at madrid",
            |n| n == 1.0,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_with_no_compliant_path_refuses_the_client() {
    // Madrid may not cross Portugal, and Lisbon is the only way to Paris.
    let policy = "[path_policy.only]\nexcluded_jurisdictions = [\"PT\"]\n";
    let mut net = network(&[("lisbon-1", "PT")], policy).await;
    net.start();
    net.converged(2.0).await;
    // The reset may come before the connect returns, or on the first read.
    if let Ok(mut stream) = TcpStream::connect(net.client_listen).await {
        let _ = stream.write_all(b"ping").await;
        let mut answer = [0u8; 4];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
            .await
            .expect("refused promptly");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "no byte crosses a non-compliant path: {read:?}"
        );
    }
    let log = net.madrid.log();
    assert!(
        log.contains("client refused") && log.contains("PT"),
        "{log}"
    );
    assert!(!net.paris.log().contains("session started"));
    net.madrid
        .wait_for("hubd_sessions_refused_total", "the refusal counted", |n| {
            n >= 1.0
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_survives_the_death_of_its_transit_hub() {
    let mut net = network(&[("lisbon-1", "PT"), ("geneva-1", "CH")], "").await;
    net.start();
    net.converged(3.0).await;
    let stream = net.connect().await;
    // The session's path shows which transit hub carries it; that one is killed mid-stream.
    let log = net.madrid.log();
    let carrier = if log.contains("→ lisbon-1 (PT) →") {
        0
    } else {
        1
    };
    let streaming = tokio::spawn(stream_through(stream, 8 << 20, Duration::from_millis(2)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    net.transits[carrier].kill();
    let (_, longest) = streaming.await.unwrap();
    let log = net.madrid.log();
    assert!(log.contains("session moved"), "{log}");
    let other = &net.transits[1 - carrier];
    assert!(
        log.contains(&format!("→ {} (", other.id)),
        "the session moved through the other transit hub:\n{log}"
    );
    println!("longest pause in the echo across the failover: {longest:?}");
    assert!(net.paris.log().contains("session resumed on a new circuit"));
    net.madrid
        .wait_for(
            "hubd_session_failovers_total",
            "the failover counted",
            |n| n >= 1.0,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_in_lockdown_is_routed_around() {
    let mut net = network(&[("lisbon-1", "PT"), ("geneva-1", "CH")], "").await;
    net.start();
    net.converged(3.0).await;
    // Both transit hubs in turn: whichever is in lockdown carries no new session.
    for locked in [0, 1] {
        let site = net.transits[locked].site.as_ref().unwrap();
        site.set(SiteState::Lockdown, "intrusion").await.unwrap();
        net.transits[locked]
            .wait_for("hubd_transit", "transit withdrawn", |n| n == 0.0)
            .await;
        let other = net.transits[1 - locked].id;
        // Madrid's topology learns the flag from the flooded advertisement.
        let deadline = Instant::now() + CONVERGE;
        loop {
            let stream = net.connect().await;
            drop(stream);
            let log = net.madrid.log();
            let last = log
                .lines()
                .filter(|line| line.contains("session started"))
                .next_back()
                .unwrap_or_default()
                .to_owned();
            if last.contains(&format!("→ {other} (")) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sessions still cross the hub in lockdown: {last}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        site.set(SiteState::Normal, "").await.unwrap();
        net.transits[locked]
            .wait_for("hubd_transit", "transit back", |n| n == 1.0)
            .await;
    }
}
