//! IP traffic between real `hubd` processes, each in a network namespace of its own with a TUN
//! interface: `madrid-1` (ES) — `lisbon-1` (PT) — `paris-1` (FR) on veth links, Lisbon the only
//! way between the others (it forwards no IP itself and has no TUN). Ordinary tools cross:
//! `ping` and an `iperf3` TCP run from Madrid's namespace to an address behind Paris; Lisbon's
//! relay forwards the ciphertext; a packet for a prefix Paris announces but does not grant to
//! Lisbon is dropped at Paris and counted. With a second transit hub (Rome) beside Lisbon, pings
//! move to it when the transit hub that carries them is SIGKILLed; unless a `[[route]]` path
//! policy excludes Rome's country: then nothing is sent rather than sent through it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::{self, Namespaces};
use common::{CONVERGE, Hub, Running, Site};

/// The namespaces and hubs: `madrid-1` first, `paris-1` last, transit hubs between them
/// (namespaces are removed after the hubs stop: declared first, dropped last).
struct Line {
    spaces: Namespaces,
    names: Vec<String>,
    hubs: Vec<Hub>,
    _sites: Vec<Site>,
}

/// One hub of a test network: namespace short name, hub id, country, link address.
type Spec = (&'static str, &'static str, &'static str, &'static str);

/// Hubs in namespaces joined by `veths` (`(a, a address, b, b address)`, by index into
/// `specs`) with the static `routes` (namespace index, `ip route add` arguments); every hub
/// between the first and the last is a transit hub of both, which grant it only their own /24.
async fn network(
    specs: &[Spec],
    veths: &[(usize, &str, usize, &str)],
    routes: &[(usize, &[&str])],
) -> Line {
    let mut spaces = Namespaces::default();
    let names: Vec<String> = specs.iter().map(|spec| spaces.add(spec.0)).collect();
    for (a, a_address, b, b_address) in veths {
        spaces.veth((&names[*a], a_address), (&names[*b], b_address));
    }
    for (index, route) in routes {
        let mut args = vec!["route", "add"];
        args.extend_from_slice(route);
        spaces.ip(&names[*index], &args);
    }
    let sites: Vec<Site> = specs.iter().map(|spec| Site::new(spec.1)).collect();
    let mut hubs = Vec::new();
    for (spec, (site, name)) in specs.iter().zip(sites.iter().zip(&names)) {
        let link = spec.3.parse().unwrap();
        hubs.push(Hub::in_netns(spec.1, spec.2, site, name, link).await);
    }
    let last = specs.len() - 1;
    let ends = [(0, "10.77.1.0/24"), (last, "10.77.3.0/24")];
    for transit in 1..last {
        let code = specs[transit].2;
        for (end, granted) in ends {
            let grant = format!("prefixes = [\"{granted}\"]");
            hubs[end].peer_with_grant(&hubs[transit], code, &sites[transit].root_pem, &grant);
            hubs[transit].peer_with(&hubs[end], specs[end].2, &sites[end].root_pem, true);
        }
    }
    hubs[0].configure("[tun]\naddress = \"10.77.1.1/16\"\nannounce = [\"10.77.1.0/24\"]\n");
    hubs[last].configure(
        "[tun]\naddress = \"10.77.3.1/16\"\nannounce = [\"10.77.3.0/24\", \"10.77.4.0/24\"]\n",
    );
    Line {
        spaces,
        names,
        hubs,
        _sites: sites,
    }
}

/// `madrid-1` (ES) — `lisbon-1` (PT) — `paris-1` (FR). Lisbon's links all use its first
/// address; Paris reaches it through Lisbon's other leg. Lisbon does not forward IP (a new
/// namespace's default): only the hubs carry traffic.
async fn line() -> Line {
    network(
        &[
            ("ipa", "madrid-1", "ES", "10.99.1.1:7400"),
            ("ipb", "lisbon-1", "PT", "10.99.1.2:7400"),
            ("ipc", "paris-1", "FR", "10.99.2.2:7400"),
        ],
        &[
            (0, "10.99.1.1/24", 1, "10.99.1.2/24"),
            (1, "10.99.2.1/24", 2, "10.99.2.2/24"),
        ],
        &[
            (0, &["10.99.2.0/24", "via", "10.99.1.2"]),
            (2, &["10.99.1.0/24", "via", "10.99.2.1"]),
        ],
    )
    .await
}

/// Madrid and Paris joined through Lisbon and, apart, through Rome: two link-disjoint paths.
async fn diamond() -> Line {
    network(
        &[
            ("ipa", "madrid-1", "ES", "10.99.1.1:7400"),
            ("ipb", "lisbon-1", "PT", "10.99.1.2:7400"),
            ("ipd", "rome-1", "IT", "10.99.3.2:7400"),
            ("ipc", "paris-1", "FR", "10.99.2.2:7400"),
        ],
        &[
            (0, "10.99.1.1/24", 1, "10.99.1.2/24"),
            (1, "10.99.2.1/24", 3, "10.99.2.2/24"),
            (0, "10.99.3.1/24", 2, "10.99.3.2/24"),
            (2, "10.99.4.1/24", 3, "10.99.4.2/24"),
        ],
        &[
            (2, &["10.99.1.0/24", "via", "10.99.3.1"]),
            (2, &["10.99.2.0/24", "via", "10.99.4.2"]),
            (3, &["10.99.1.0/24", "via", "10.99.2.1"]),
            (3, &["10.99.3.0/24", "via", "10.99.4.1"]),
        ],
    )
    .await
}

/// Whether the test cannot run here (said why): namespaces need root and `ip netns`.
fn skipped() -> bool {
    let reason = netns::unavailable();
    if let Some(reason) = &reason {
        eprintln!("SKIPPED ip_routing: {reason}");
    }
    reason.is_some()
}

impl Line {
    /// Starts every hub, waits until Madrid and Paris trust all the others, and until Paris
    /// answers Madrid's pings.
    async fn run(&mut self) {
        for hub in &mut self.hubs {
            hub.start();
        }
        let others = (self.hubs.len() - 1) as f64;
        for hub in [&self.hubs[0], self.paris()] {
            hub.wait_for("hubd_hubs_trusted", "every hub trusted", |n| n >= others)
                .await;
        }
        self.ping_until_answered("10.77.3.1").await;
    }

    fn paris(&self) -> &Hub {
        self.hubs.last().unwrap()
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
                self.paris().log()
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
                self.names.last().unwrap(),
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
            if output.status.success() && report["end"]["sum_received"]["bytes"].is_number() {
                return report;
            }
            eprintln!("iperf3 again after: {report}");
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
    if skipped() {
        return;
    }
    let mut line = line().await;
    line.run().await;
    let (madrid, lisbon, paris) = (&line.hubs[0], &line.hubs[1], line.paris());
    let b = &line.names[1];

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
    paris
        .wait_for(
            "hubd_ip_drops_total{reason=\"not_granted\"}",
            "the drop in Paris's metrics",
            |n| n >= 3.0,
        )
        .await;
    assert!(
        madrid
            .metric("hubd_ip_packets_total{direction=\"out\"}")
            .is_some_and(|n| n > 0.0)
    );
    assert!(
        paris
            .metric("hubd_ip_packets_total{direction=\"in\"}")
            .is_some_and(|n| n > 0.0)
    );

    // An address in the TUN's network that no hub announces: answered at once, as a router
    // would, from the TUN network's first address.
    let unrouted = line.spaces.exec(
        &line.names[0],
        "ping",
        &["-n", "-c", "1", "-W", "5", "10.77.9.9"],
    );
    let said = String::from_utf8_lossy(&unrouted.stdout);
    assert!(
        said.contains("From 10.77.0.1") && said.contains("Destination Net Unreachable"),
        "{said}"
    );

    // A hub with a TUN and live packet circuits stops cleanly on SIGTERM; its TUN goes with it.
    assert_eq!(line.hubs[0].stop(), Some(0), "{}", line.hubs[0].log());
    assert!(
        !line
            .spaces
            .ip(&line.names[0], &["link", "show"])
            .contains("hub0")
    );
}

/// The transit hub whose id the latest "packet circuit to paris-1 opened" line of Madrid's log
/// names on its path.
fn carrying_transit(madrid: &Hub) -> Option<&'static str> {
    let log = madrid.log();
    let opened = log
        .lines()
        .rfind(|line| line.contains("packet circuit to paris-1 opened"))?;
    ["lisbon-1", "rome-1"]
        .into_iter()
        .find(|transit| opened.contains(transit))
}

#[tokio::test(flavor = "multi_thread")]
async fn packets_move_to_the_other_transit_hub_when_theirs_is_killed() {
    if skipped() {
        return;
    }
    let mut net = diamond().await;
    net.run().await;
    let carrying = carrying_transit(&net.hubs[0]).expect("Madrid's circuit names its path");
    let index = net.hubs.iter().position(|hub| hub.id == carrying).unwrap();

    // 8 s of pings every 50 ms; the transit hub that carries them is SIGKILLed after 2 s.
    let pinger = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.names[0],
            "ping",
            "-n",
            "-i",
            "0.05",
            "-c",
            "160",
        ])
        .args(["-W", "1", "10.77.3.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    net.hubs[index].kill();
    let output = tokio::task::spawn_blocking(move || pinger.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let summary = String::from_utf8_lossy(&output.stdout);
    let received: u32 = summary
        .lines()
        .find_map(|line| {
            let (_, rest) = line.split_once("transmitted, ")?;
            rest.split_once(' ')?.0.parse().ok()
        })
        .unwrap_or_else(|| panic!("no ping summary: {summary}"));
    println!(
        "{carrying} killed under a 20/s ping through it: {} of 160 lost while the circuits moved",
        160 - received
    );

    net.ping_until_answered("10.77.3.1").await;
    let now = carrying_transit(&net.hubs[0]);
    assert!(
        now.is_some_and(|transit| transit != carrying),
        "Madrid's packets still on {now:?}; log:\n{}",
        net.hubs[0].log()
    );
    assert!(
        received > 40,
        "the pings after the move were answered: {summary}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_routes_path_policy_keeps_packets_out_of_a_jurisdiction_even_when_that_is_the_only_way() {
    if skipped() {
        return;
    }
    let mut net = diamond().await;
    // Each end chooses the path of what it sends: both keep out of Italy.
    for (index, prefix, hub) in [
        (0, "10.77.3.0/24", "paris-1"),
        (3, "10.77.1.0/24", "madrid-1"),
    ] {
        net.hubs[index].configure(&format!(
            "[path_policy.no-italy]\nexcluded_jurisdictions = [\"IT\"]\n\
             [[route]]\nprefix = \"{prefix}\"\nhub = \"{hub}\"\npath_policy = \"no-italy\"\n"
        ));
    }
    net.run().await;
    assert_eq!(carrying_transit(&net.hubs[0]), Some("lisbon-1"));

    // Without Lisbon, the only way left crosses Italy: Madrid sends nothing rather than that.
    net.hubs[1].kill();
    let deadline = Instant::now() + CONVERGE;
    while !net.hubs[0].log().contains("no packet circuit to paris-1") {
        assert!(
            Instant::now() < deadline,
            "Madrid never found itself without a compliant path; log:\n{}",
            net.hubs[0].log()
        );
        let _ = net.ping("10.77.3.1", "1");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!net.ping("10.77.3.1", "3"), "no compliant path, no reply");
    let rome = &net.hubs[2];
    assert_eq!(
        rome.metric("hubd_transit_bytes_total").unwrap_or(0.0),
        0.0,
        "Rome carried none of Madrid's packets"
    );
}

/// A hub with an IPv6 TUN and no peers: a packet for an address of the TUN's network that no hub
/// announces is answered at once, ICMPv6 "no route to destination" from the network's first
/// address that is not the TUN's own (here the second), as on IPv4.
#[tokio::test(flavor = "multi_thread")]
async fn an_ipv6_packet_without_a_route_is_answered_no_route() {
    if skipped() {
        return;
    }
    let mut spaces = Namespaces::default();
    let name = spaces.add("ip6");
    let site = Site::new("madrid-1");
    let link = "127.0.0.1:7400".parse().unwrap();
    let mut hub = Hub::in_netns("madrid-1", "ES", &site, &name, link).await;
    hub.configure("[tun]\naddress = \"fd77:1::1/32\"\nannounce = [\"fd77:1::/48\"]\n");
    hub.start();
    // The address is usable once the kernel's duplicate address detection has passed.
    let deadline = Instant::now() + CONVERGE;
    let said = loop {
        let ping = spaces.exec(
            &name,
            "ping",
            &["-6", "-n", "-c", "1", "-W", "2", "fd77:1:9::9"],
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&ping.stdout),
            String::from_utf8_lossy(&ping.stderr)
        );
        if said.contains("From") || Instant::now() > deadline {
            break said;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        said.contains("From fd77:1::2") && said.contains("Destination unreachable: No route"),
        "{said}\n{}\n{}\n{}",
        spaces.ip(&name, &["-6", "addr"]),
        spaces.ip(&name, &["-6", "route"]),
        hub.log()
    );
    assert_eq!(hub.stop(), Some(0), "{}", hub.log());
}
