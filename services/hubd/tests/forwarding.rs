//! TCP services carried between real `hubd` processes: a client at one hub reaches a service
//! published at another through transit hubs; the path follows the policy or the client is
//! refused; when a transit hub dies mid-stream the session moves to the backup path and the
//! client's connection carries on, every byte in order.

mod common;

use std::time::{Duration, Instant};

use appliance::dbus::Bus;
use appliance::dbus::contracts::{Hub1Proxy, SiteState};
use common::CONVERGE;
use common::network::network;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

    // What `bunkerctl hub path SESSION` shows: the hubs and jurisdictions crossed, proven.
    let bus = Bus::Address(net.madrid.bus.address().to_owned());
    let connection = appliance::dbus::connect(&bus).await.unwrap();
    let hub = Hub1Proxy::new(&connection).await.unwrap();
    let sessions: serde_json::Value = serde_json::from_str(&hub.sessions().await.unwrap()).unwrap();
    let id = sessions[0]["id"].as_str().unwrap().to_owned();
    let path: serde_json::Value =
        serde_json::from_str(&hub.session_path(&id).await.unwrap()).unwrap();
    assert_eq!(path["verified"], true);
    assert_eq!(
        path["path"],
        serde_json::json!(["madrid-1", "lisbon-1", "paris-1"])
    );
    assert_eq!(path["jurisdictions"], serde_json::json!(["ES", "PT", "FR"]));
    assert_eq!(path["hops"][1]["previous"], "madrid-1");
    assert_eq!(path["hops"][1]["next"], "paris-1");
    let unknown = hub
        .session_path("00000000000000000000000000000000")
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("NotFound"), "{unknown}");
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
                .rfind(|line| line.contains("session started"))
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
