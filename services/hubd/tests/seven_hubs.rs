//! The hub network as the issue asks to see it: seven real `hubd` processes, each in a network
//! namespace of its own and each of its own site (one certified by a real `trustd` with its key
//! in a software TPM), six countries, two cables between Malaga and Madrid, and a hostile eighth
//! hub that presents another site's certificate.
//!
//! ```text
//!            ┌─#1,#2─ madrid-1 (ES) ─── paris-1 (FR) ───┐
//! malaga-1 ──┤            │  └── zurich-1 (rogue)        sao-paulo-1 (BR)
//!   (ES)     │            └── geneva-1 (CH, trustd) ── bogota-1 (CO) ─┘
//!            └──── lisbon-1 (PT) ────────────────────────┘
//! ```
//!
//! Shown: Malaga → São Paulo with Portugal excluded never touches Lisbon (the session's path as
//! proven by the receipts, and Lisbon's transit counter, which stays at zero while iperf3 runs
//! over the TUN path); a policy no path satisfies is refused; a link cut with `ip link set down`
//! during a long iperf3 transfer moves it to the backup path and the transfer completes; the
//! rogue hub is refused (`wrong_root`); a lockdown at the remaining transit hub withdraws its
//! transit, leaving no compliant path.

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use appliance::dbus::Bus;
use appliance::dbus::contracts::{Hub1Proxy, SiteState};
use appliance::testtrustd::Trustd;
use common::netns::{self, Namespaces};
use common::{CONVERGE, Hub, Site};

/// The hubs: namespace short name, hub id, country.
const HUBS: [(&str, &str, &str); 8] = [
    ("sma", "malaga-1", "ES"),
    ("smd", "madrid-1", "ES"),
    ("sli", "lisbon-1", "PT"),
    ("spa", "paris-1", "FR"),
    ("sge", "geneva-1", "CH"),
    ("sbo", "bogota-1", "CO"),
    ("ssp", "sao-paulo-1", "BR"),
    ("szu", "zurich-1", "CH"),
];
const MALAGA: usize = 0;
const MADRID: usize = 1;
const LISBON: usize = 2;
const PARIS: usize = 3;
const GENEVA: usize = 4;
const SAO_PAULO: usize = 6;
const ZURICH: usize = 7;

/// The cables: the two hubs and the link number; cable `k` is the veth pair 10.98.k.1 — 10.98.k.2.
const CABLES: [(usize, usize, u16); 10] = [
    (0, 1, 1),
    (0, 1, 2),
    (0, 2, 1),
    (1, 3, 1),
    (1, 4, 1),
    (2, 6, 1),
    (3, 6, 1),
    (4, 5, 1),
    (5, 6, 1),
    (1, 7, 1),
];

const POLICIES: &str = "[path_policy.no-portugal]\nexcluded_jurisdictions = [\"PT\"]\n\
                        [path_policy.nowhere]\nexcluded_jurisdictions = [\"PT\", \"FR\", \"CO\"]\n";

/// The network: namespaces (dropped last), the hubs, the sites and trustd.
struct Network {
    spaces: Namespaces,
    names: Vec<String>,
    hubs: Vec<Hub>,
    _trustd: Trustd,
    _sites: Vec<Site>,
}

fn address(cable: usize, end: usize) -> String {
    format!("10.98.{}.{}", cable + 1, end + 1)
}

async fn network() -> Network {
    let mut spaces = Namespaces::default();
    let names: Vec<String> = HUBS.iter().map(|hub| spaces.add(hub.0)).collect();
    for (k, &(a, b, _)) in CABLES.iter().enumerate() {
        let a_address = format!("{}/24", address(k, 0));
        let b_address = format!("{}/24", address(k, 1));
        spaces.veth((&names[a], &a_address), (&names[b], &b_address));
    }
    let sites: Vec<Site> = HUBS.iter().map(|hub| Site::new(hub.1)).collect();
    let mut hubs = Vec::new();
    for (i, &(_, id, code)) in HUBS.iter().enumerate() {
        let listen = "0.0.0.0:7400".parse().unwrap();
        hubs.push(Hub::in_netns(id, code, &sites[i], &names[i], listen).await);
    }
    // Geneva's certificate comes from a real trustd; the rogue Zurich presents a certificate
    // of Bogota's site instead of its own.
    let (trustd, geneva_root) = Trustd::start(hubs[GENEVA].bus.address(), "").await;
    hubs[GENEVA].certificate_from_trustd();
    let (chain, key) = sites[5].hub("zurich-1");
    fs::write(hubs[ZURICH].dir.path().join("chain.pem"), chain).unwrap();
    fs::write(hubs[ZURICH].dir.path().join("key.pem"), key).unwrap();
    let root_of = |i: usize| {
        if i == GENEVA {
            geneva_root.clone()
        } else {
            sites[i].root_pem.clone()
        }
    };
    // Every peer gets transit; each end grants its peers what reaches it.
    for (i, hub) in hubs.iter().enumerate() {
        let mut peers: Vec<usize> = Vec::new();
        for &(a, b, _) in &CABLES {
            let other = if a == i {
                b
            } else if b == i {
                a
            } else {
                continue;
            };
            if !peers.contains(&other) {
                peers.push(other);
            }
        }
        for other in peers {
            let links: Vec<(u16, String)> = CABLES
                .iter()
                .enumerate()
                .filter(|(_, cable)| {
                    (cable.0, cable.1) == (i, other) || (cable.0, cable.1) == (other, i)
                })
                .map(|(k, &(a, _, id))| {
                    let end = if a == other { 0 } else { 1 };
                    (id, format!("{}:7400", address(k, end)))
                })
                .collect();
            let grant = match i {
                MALAGA => "transit = true\nprefixes = [\"10.77.1.0/24\"]",
                SAO_PAULO => "transit = true\nprefixes = [\"10.77.5.0/24\"]\nservices = [\"sink\"]",
                _ => "transit = true",
            };
            hub.peer_over(HUBS[other].1, HUBS[other].2, &root_of(other), &links, grant);
        }
    }
    hubs[MALAGA].configure(&format!(
        "{POLICIES}[tun]\naddress = \"10.77.1.1/16\"\nannounce = [\"10.77.1.0/24\"]\n\
         [[route]]\nprefix = \"10.77.5.0/24\"\npath_policy = \"no-portugal\"\n"
    ));
    hubs[SAO_PAULO].configure(&format!(
        "{POLICIES}[tun]\naddress = \"10.77.5.1/16\"\nannounce = [\"10.77.5.0/24\"]\n\
         [[route]]\nprefix = \"10.77.1.0/24\"\npath_policy = \"no-portugal\"\n"
    ));
    Network {
        spaces,
        names,
        hubs,
        _trustd: trustd,
        _sites: sites,
    }
}

/// The test network's sink service ([`common::network::sink_on`]), inside São Paulo's namespace.
fn sink_in(netns: &str) -> std::net::SocketAddr {
    let listener = netns::within(netns, || {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap()
    })
    .expect("the namespace exists");
    common::network::sink_on(listener)
}

/// `bytes` sent from Malaga's namespace to `listen` (its local service listener); the count
/// the sink answered.
fn push_from(netns: &str, listen: std::net::SocketAddr, bytes: usize) -> Option<u64> {
    netns::within(netns, move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(listen).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .ok()?;
        // The sink answers its first 4 bytes: the session is up.
        let mut hello = *b"ping";
        stream.write_all(&hello).ok()?;
        stream.read_exact(&mut hello).ok()?;
        let chunk = vec![7u8; 64 * 1024];
        let mut sent = 0;
        while sent < bytes {
            stream.write_all(&chunk).ok()?;
            sent += chunk.len();
        }
        stream.shutdown(std::net::Shutdown::Write).ok()?;
        let mut count = [0u8; 8];
        stream.read_exact(&mut count).ok()?;
        Some(u64::from_be_bytes(count))
    })
    .flatten()
}

impl Network {
    fn start(&mut self) {
        for hub in &mut self.hubs {
            hub.start();
        }
    }

    async fn hub1(&self, index: usize) -> Hub1Proxy<'static> {
        let bus = Bus::Address(self.hubs[index].bus.address().to_owned());
        let connection = appliance::dbus::connect(&bus).await.unwrap();
        Hub1Proxy::new(&connection).await.unwrap()
    }

    /// iperf3 from Malaga's namespace to São Paulo's TUN address for `seconds`: (bytes
    /// received, iperf3's JSON), after the server in São Paulo's namespace answered.
    fn iperf3(&self, seconds: u32) -> (f64, serde_json::Value) {
        let server = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.names[SAO_PAULO],
                "iperf3",
                "-s",
                "-1",
                "-B",
                "10.77.5.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 starts (make deps installs it)");
        let _server = common::Running(server);
        std::thread::sleep(Duration::from_millis(500));
        let output = self.spaces.exec(
            &self.names[MALAGA],
            "iperf3",
            &[
                "-c",
                "10.77.5.1",
                "-t",
                &seconds.to_string(),
                "-J",
                "--connect-timeout",
                "5000",
            ],
        );
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
        let bytes = report["end"]["sum_received"]["bytes"]
            .as_f64()
            .unwrap_or(0.0);
        (bytes, report)
    }

    /// Pings São Paulo's TUN address from Malaga's namespace until it answers.
    async fn reach_sao_paulo(&self) {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let ping = self.spaces.exec(
                &self.names[MALAGA],
                "ping",
                &["-n", "-q", "-c", "1", "-W", "2", "10.77.5.1"],
            );
            if ping.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "São Paulo's TUN does not answer from Malaga; malaga log:\n{}",
                self.hubs[MALAGA].log()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn seven_hubs_six_countries_policies_failover_rogue_and_lockdown() {
    if let Some(reason) = netns::unavailable() {
        println!("skipped: {reason}");
        return;
    }
    let mut net = network().await;
    let sink = sink_in(&net.names[SAO_PAULO]);
    let listen = "127.0.0.1:17480".parse().unwrap();
    net.hubs[SAO_PAULO].configure(&format!(
        "[[service]]\nname = \"sink\"\npublish = \"{sink}\"\n"
    ));
    net.hubs[MALAGA].configure(&format!(
        "[[service]]\nname = \"sink\"\nhub = \"sao-paulo-1\"\nlisten = \"{listen}\"\npath_policy = \"no-portugal\"\n"
    ));
    net.start();

    // Every hub of the six sites trusts the other five, some only through vouchers; Geneva's
    // certificate came from trustd.
    for hub in &net.hubs[..ZURICH] {
        hub.wait_for("hubd_hubs_trusted", "every other honest hub trusted", |n| {
            n >= 6.0
        })
        .await;
    }
    assert!(
        net.hubs[GENEVA]
            .log()
            .contains("speaks with the certificate from trustd (serial ")
    );
    // The rogue is refused by Madrid, which dials it, and trusted by nobody.
    net.hubs[MADRID]
        .wait_for(
            "hubd_link_dial_failures_total{reason=\"refused:wrong_root\"}",
            "Madrid refuses the hub with another site's certificate",
            |n| n >= 1.0,
        )
        .await;
    assert_eq!(net.hubs[MALAGA].metric("hubd_hubs_trusted"), Some(6.0));

    // Malaga → São Paulo with Portugal excluded: the session's path, proven by receipts, never
    // touches Lisbon.
    let paths = net.hub1(MALAGA).await;
    // What Malaga would choose without the policy, for the record.
    let via = |path: &serde_json::Value| -> Vec<String> {
        path["hubs"].as_array().map_or_else(Vec::new, |hubs| {
            hubs.iter()
                .map(|hub| hub["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
    };
    let lisbon_way: serde_json::Value =
        serde_json::from_str(&paths.paths("sao-paulo-1", "").await.unwrap()).unwrap();
    println!(
        "Malaga → São Paulo without a policy: {:?}",
        via(&lisbon_way["primary"])
    );
    let deadline = Instant::now() + CONVERGE;
    let counted = loop {
        if let Some(count) = push_from(&net.names[MALAGA], listen, 4 << 20) {
            break count;
        }
        assert!(
            Instant::now() < deadline,
            "no session to the sink; malaga:\n{}",
            net.hubs[MALAGA].log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(counted, 4 << 20);
    let sessions: serde_json::Value =
        serde_json::from_str(&paths.sessions().await.unwrap()).unwrap();
    let id = sessions[0]["id"].as_str().unwrap().to_owned();
    let path: serde_json::Value =
        serde_json::from_str(&paths.session_path(&id).await.unwrap()).unwrap();
    assert_eq!(path["verified"], true, "{path}");
    let crossed = path["jurisdictions"].as_array().unwrap();
    assert!(!crossed.contains(&"PT".into()), "{path}");
    println!("Malaga → São Paulo without Portugal: {}", path["path"]);

    // The same policy for IP: iperf3 over the TUN path; Lisbon carries none of it.
    net.reach_sao_paulo().await;
    let (bytes, report) = net.iperf3(4);
    assert!(
        bytes > 0.0,
        "iperf3 over the TUN path moved nothing: {report}"
    );
    println!(
        "iperf3 malaga-1 → sao-paulo-1 over the TUN, Portugal excluded: {:.1} Mbit/s",
        report["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e6
    );
    assert_eq!(
        net.hubs[LISBON].metric("hubd_transit_bytes_total"),
        Some(0.0),
        "the excluded jurisdiction's hub carried bytes"
    );

    // A policy nothing satisfies is refused, with the reason.
    let refused = paths.paths("sao-paulo-1", "nowhere").await.unwrap_err();
    assert!(refused.to_string().contains("NoCompliantPath"), "{refused}");

    // A link cut during a long transfer: the cable from Madrid to whichever of Paris and Geneva
    // carried the first transfer goes down mid-transfer; the transfer moves to the other and
    // completes.
    let carried = |hub: usize| {
        net.hubs[hub]
            .metric("hubd_transit_bytes_total")
            .unwrap_or(0.0)
    };
    let (carrier, other) = if carried(PARIS) >= carried(GENEVA) {
        (PARIS, GENEVA)
    } else {
        (GENEVA, PARIS)
    };
    let other_before = carried(other);
    let cut = {
        let madrid = net.names[MADRID].clone();
        // The cable as Madrid's namespace names it.
        let interface = format!("to-{}", HUBS[carrier].0);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            Command::new("ip")
                .args(["-n", &madrid, "link", "set", &interface, "down"])
                .status()
                .unwrap()
        })
    };
    let (bytes, report) = net.iperf3(8);
    assert!(cut.join().unwrap().success(), "the cable was cut");
    assert!(
        bytes > 0.0 && report["error"].is_null(),
        "the transfer across the cut did not complete: {report}"
    );
    assert!(
        carried(other) > other_before,
        "{} took the traffic over from {}",
        HUBS[other].1,
        HUBS[carrier].1
    );
    assert_eq!(
        net.hubs[LISBON].metric("hubd_transit_bytes_total"),
        Some(0.0)
    );
    println!(
        "iperf3 across the cut of madrid-1—{}: {bytes} bytes, intact, moved to {}",
        HUBS[carrier].1, HUBS[other].1
    );

    // Lockdown at the remaining transit hub withdraws its transit: with the other cut off and
    // Portugal excluded, no compliant path is left, and Malaga says so rather than crossing
    // Portugal.
    let site = net.hubs[other].site.as_ref().unwrap();
    site.set(SiteState::Lockdown, "intrusion at the east door")
        .await
        .unwrap();
    net.hubs[other]
        .wait_for("hubd_transit", "transit withdrawn", |n| n == 0.0)
        .await;
    let deadline = Instant::now() + CONVERGE;
    loop {
        match paths.paths("sao-paulo-1", "no-portugal").await {
            Err(error) if error.to_string().contains("NoCompliantPath") => break,
            other_answer => assert!(
                Instant::now() < deadline,
                "Malaga still offers a path through the hub in lockdown: {other_answer:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let hubs: serde_json::Value = serde_json::from_str(&paths.hubs().await.unwrap()).unwrap();
    let locked = hubs
        .as_array()
        .unwrap()
        .iter()
        .find(|hub| hub["id"] == HUBS[other].1)
        .unwrap();
    assert_eq!(locked["transit"], false, "{locked}");
}
