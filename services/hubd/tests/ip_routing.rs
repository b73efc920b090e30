//! IP traffic between real `hubd` processes, each in a network namespace of its own with a TUN
//! interface: `madrid-1` (ES) — `lisbon-1` (PT) — `paris-1` (FR) on veth links, Lisbon the only
//! way between the others (it forwards no IP itself and has no TUN). Ordinary tools cross:
//! `ping` and an `iperf3` TCP run from Madrid's namespace to an address behind Paris; Lisbon's
//! relay forwards the ciphertext; a packet for a prefix Paris announces but does not grant to
//! Lisbon is dropped at Paris and counted.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::{self, Namespaces};
use common::{CONVERGE, Hub, Site};

/// A process ended by PID when dropped (an iperf3 server that never got its client).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The three namespaces and hubs; namespaces are removed after the hubs stop (declared first,
/// dropped last).
struct Line {
    spaces: Namespaces,
    names: [String; 3],
    hubs: [Hub; 3],
    _sites: [Site; 3],
}

async fn line() -> Line {
    let mut spaces = Namespaces::default();
    let names = ["ipa", "ipb", "ipc"].map(|short| spaces.add(short));
    let [a, b, c] = &names;
    spaces.veth((a, "10.99.1.1/24"), (b, "10.99.1.2/24"));
    spaces.veth((b, "10.99.2.1/24"), (c, "10.99.2.2/24"));
    // Lisbon's links all use its first address; Paris reaches it through Lisbon's other leg.
    // Lisbon does not forward IP (a new namespace's default): only the hubs carry traffic.
    spaces.ip(a, &["route", "add", "10.99.2.0/24", "via", "10.99.1.2"]);
    spaces.ip(c, &["route", "add", "10.99.1.0/24", "via", "10.99.2.1"]);
    let sites = [Site::new("madrid"), Site::new("lisbon"), Site::new("paris")];
    let address = |text: &str| text.parse().unwrap();
    let madrid = Hub::in_netns("madrid-1", "ES", &sites[0], a, address("10.99.1.1:7400")).await;
    let lisbon = Hub::in_netns("lisbon-1", "PT", &sites[1], b, address("10.99.1.2:7400")).await;
    let paris = Hub::in_netns("paris-1", "FR", &sites[2], c, address("10.99.2.2:7400")).await;
    // Each end grants the peer its packets arrive through (Lisbon) its own /24 only.
    madrid.peer_with_grant(
        &lisbon,
        "PT",
        &sites[1].root_pem,
        "prefixes = [\"10.77.1.0/24\"]",
    );
    lisbon.peer_with(&madrid, "ES", &sites[0].root_pem, true);
    lisbon.peer_with(&paris, "FR", &sites[2].root_pem, true);
    paris.peer_with_grant(
        &lisbon,
        "PT",
        &sites[1].root_pem,
        "prefixes = [\"10.77.3.0/24\"]",
    );
    madrid.configure("[tun]\naddress = \"10.77.1.1/16\"\nannounce = [\"10.77.1.0/24\"]\n");
    paris.configure(
        "[tun]\naddress = \"10.77.3.1/16\"\nannounce = [\"10.77.3.0/24\", \"10.77.4.0/24\"]\n",
    );
    Line {
        spaces,
        names,
        hubs: [madrid, lisbon, paris],
        _sites: sites,
    }
}

impl Line {
    fn start(&mut self) {
        for hub in &mut self.hubs {
            hub.start();
        }
    }

    async fn converged(&self) {
        for hub in [&self.hubs[0], &self.hubs[2]] {
            hub.wait_for("hubd_hubs_trusted", "every hub trusted", |n| n >= 2.0)
                .await;
        }
    }

    /// `ping` from Madrid's namespace; whether every reply came.
    fn ping(&self, address: &str, count: &str) -> bool {
        let output = self.spaces.exec(
            &self.names[0],
            "ping",
            &["-n", "-q", "-c", count, "-i", "0.2", "-W", "2", address],
        );
        output.status.success()
    }

    /// Pings until a reply comes (the first packet opens the circuit; the control plane may
    /// still be settling), then a clean run of 5.
    async fn ping_until_answered(&self, address: &str) {
        let deadline = Instant::now() + CONVERGE;
        while !self.ping(address, "1") {
            assert!(
                Instant::now() < deadline,
                "no ping reply from {address} within {CONVERGE:?}; madrid log:\n{}\nparis log:\n{}",
                self.hubs[0].log(),
                self.hubs[2].log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            self.ping(address, "5"),
            "a ping was lost after the first reply"
        );
    }

    /// An iperf3 TCP run of `seconds` from Madrid to `address` (Paris), as iperf3's JSON.
    fn iperf3(&self, address: &str, seconds: u32) -> serde_json::Value {
        let server = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.names[2],
                "iperf3",
                "-s",
                "-1",
                "-B",
                address,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 starts (apt-get install iperf3, or make deps)");
        let _server = Running(server);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let output = self.spaces.exec(
                &self.names[0],
                "iperf3",
                &["-c", address, "-t", &seconds.to_string(), "-J"],
            );
            let report: serde_json::Value =
                serde_json::from_slice(&output.stdout).unwrap_or_default();
            if output.status.success() {
                return report;
            }
            // The server may not listen yet.
            assert!(
                Instant::now() < deadline,
                "iperf3 failed: {report}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ping_and_iperf3_cross_a_transit_hub_that_forwards_only_ciphertext() {
    if let Some(reason) = netns::unavailable() {
        eprintln!("SKIPPED ip_routing: {reason}");
        return;
    }
    let mut line = line().await;
    line.start();
    line.converged().await;
    let [madrid, lisbon, paris] = &line.hubs;
    let [_, b, _] = &line.names;

    line.ping_until_answered("10.77.3.1").await;

    // Lisbon has no TUN and no route into 10.77.0.0/16: what it forwards for the others it can
    // only carry as the circuits' bytes, never route as packets.
    assert!(!line.spaces.ip(b, &["link", "show"]).contains("hub0"));
    let unroutable = line.spaces.exec(b, "ip", &["route", "get", "10.77.3.1"]);
    assert!(
        !unroutable.status.success(),
        "Lisbon has no route to 10.77.3.1"
    );
    let transit_before = lisbon.metric("hubd_transit_bytes_total").unwrap_or(0.0);

    let report = line.iperf3("10.77.3.1", 5);
    let received = &report["end"]["sum_received"];
    let bits_per_second = received["bits_per_second"].as_f64().unwrap();
    let bytes = received["bytes"].as_f64().unwrap();
    println!(
        "iperf3 madrid-1 → lisbon-1 (transit) → paris-1 through TUN and circuits: {:.1} Mbit/s ({bytes} bytes in 5 s)",
        bits_per_second / 1e6
    );
    assert!(bytes > 0.0, "{report}");
    lisbon
        .wait_for(
            "hubd_transit_bytes_total",
            "Lisbon carried the iperf3 bytes as transit",
            |after| after - transit_before >= bytes,
        )
        .await;

    // 10.77.4.0/24 is announced by Paris, so Madrid routes it there; Paris grants Lisbon, the
    // peer it arrives through, only 10.77.3.0/24: dropped at Paris, counted, never answered.
    assert!(
        !line.ping("10.77.4.1", "3"),
        "a packet not granted was answered"
    );
    let deadline = Instant::now() + CONVERGE;
    while !paris.log().contains("reason=\"not_granted\"") {
        assert!(
            Instant::now() < deadline,
            "Paris did not count the packet not granted; log:\n{}",
            paris.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(madrid.log().contains("packet circuit to paris-1 opened"));
}
