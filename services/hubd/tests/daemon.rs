//! The real `hubd` daemon, several of them on loopback: each hub of its own site (its own root,
//! its own private bus with a stand-in for its sited), peering files pinning the neighbours'
//! roots. What an operator would check from the outside: links come up, trust reaches hubs
//! that are not direct peers, a hub killed with SIGKILL rejoins, a peer presenting another
//! site's certificate is refused and counted, a lockdown withdraws transit. Observed through
//! the metrics endpoint, as Prometheus would.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use appliance::dbus::Bus;
use appliance::dbus::contracts::SiteState;
use appliance::dbus::testbus::TestBus;
use appliance::dbus::testsite::StandInSite;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use tempfile::TempDir;

/// How long anything may take to converge on a busy 2-core machine.
const CONVERGE: Duration = Duration::from_secs(30);

/// A site: its root certificate and key.
struct Site {
    params: CertificateParams,
    key: KeyPair,
    root_pem: String,
}

impl Site {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} site root"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root_pem = params.self_signed(&key).unwrap().pem();
        Self {
            params,
            key,
            root_pem,
        }
    }

    /// A hub certificate chain (hub certificate, root) and its key, as PEM.
    fn hub(&self, id: &str) -> (String, String) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, id);
        params.subject_alt_names = vec![SanType::URI(
            format!("bunkeros:hub:{id}").try_into().unwrap(),
        )];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let issuer = Issuer::from_params(&self.params, &self.key);
        let leaf = params.signed_by(&key, &issuer).unwrap();
        (
            format!("{}{}", leaf.pem(), self.root_pem),
            key.serialize_pem(),
        )
    }
}

fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn free_tcp() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One hub: its files, its bus and stand-in sited, and the running daemon.
struct Hub {
    id: &'static str,
    dir: TempDir,
    link_address: SocketAddr,
    metrics: SocketAddr,
    bus: TestBus,
    site: Option<StandInSite>,
    child: Option<Child>,
}

impl Hub {
    async fn new(id: &'static str, code: &str, site: &Site) -> Self {
        let dir = TempDir::new().unwrap();
        let (chain, key) = site.hub(id);
        fs::write(dir.path().join("chain.pem"), chain).unwrap();
        fs::write(dir.path().join("key.pem"), key).unwrap();
        fs::create_dir(dir.path().join("peers")).unwrap();
        fs::create_dir(dir.path().join("state")).unwrap();
        let link_address = free_udp();
        let metrics = free_tcp();
        fs::write(
            dir.path().join("hubd.toml"),
            format!(
                "[hub]\nid = \"{id}\"\njurisdiction = \"{code}\"\nlisten = [\"{link_address}\"]\n\
                 peers_dir = \"{peers}\"\n\
                 [certificate]\nsource = \"pem\"\nchain = \"{dir}/chain.pem\"\nkey = \"{dir}/key.pem\"\n\
                 [metrics]\nlisten = \"{metrics}\"\n",
                peers = dir.path().join("peers").display(),
                dir = dir.path().display(),
            ),
        )
        .unwrap();
        let bus = TestBus::start().unwrap();
        let site = StandInSite::start(
            &Bus::Address(bus.address().to_owned()),
            SiteState::Normal,
            "",
        )
        .await
        .unwrap();
        Self {
            id,
            dir,
            link_address,
            metrics,
            bus,
            site: Some(site),
            child: None,
        }
    }

    /// Writes the peering file for `other` (pinning `root_pem`, link 1).
    fn peer_with(&self, other: &Hub, code: &str, root_pem: &str, transit: bool) {
        let peers = self.dir.path().join("peers");
        fs::write(peers.join(format!("{}.pem", other.id)), root_pem).unwrap();
        fs::write(
            peers.join(format!("{}.toml", other.id)),
            format!(
                "hub = \"{}\"\njurisdiction = \"{code}\"\nroot = \"{}.pem\"\n\
                 [[link]]\nid = 1\naddress = \"{}\"\n[grant]\ntransit = {transit}\n",
                other.id, other.id, other.link_address
            ),
        )
        .unwrap();
    }

    fn start(&mut self) {
        let log = fs::File::create(self.log_path()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hubd"))
            .arg("--config")
            .arg(self.dir.path().join("hubd.toml"))
            .env("BUNKEROS_ROOT", self.dir.path())
            .env("STATE_DIRECTORY", self.dir.path().join("state"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.bus.address())
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("hubd starts");
        self.child = Some(child);
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("hubd.log")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILL, as a crash or a power cut would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, as systemd stops it; returns the exit status.
    fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("{} did not stop on SIGTERM within 15 s", self.id);
    }

    /// The value of one metric sample (`name{labels}`), if present.
    fn metric(&self, sample: &str) -> Option<f64> {
        let text = scrape(self.metrics)?;
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == sample).then(|| value.parse().ok()).flatten()
            })
    }

    /// Waits until `sample` satisfies `check`; panics with the hub's log after [`CONVERGE`].
    async fn wait_for(&self, sample: &str, what: &str, check: impl Fn(f64) -> bool) {
        let deadline = Instant::now() + CONVERGE;
        loop {
            if self.metric(sample).is_some_and(&check) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: {what} ({sample} = {:?}) not reached within {CONVERGE:?}; log:\n{}",
                    self.id,
                    self.metric(sample),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `GET /metrics` over plain HTTP/1.1.
fn scrape(address: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some(body.to_owned())
}

/// Madrid (ES) — Lisbon (PT) — Paris (FR), each its own site; Lisbon gives both transit.
async fn three_hubs() -> (Hub, Hub, Hub, [Site; 3]) {
    let sites = [Site::new("madrid"), Site::new("lisbon"), Site::new("paris")];
    let madrid = Hub::new("madrid-1", "ES", &sites[0]).await;
    let lisbon = Hub::new("lisbon-1", "PT", &sites[1]).await;
    let paris = Hub::new("paris-1", "FR", &sites[2]).await;
    madrid.peer_with(&lisbon, "PT", &sites[1].root_pem, false);
    lisbon.peer_with(&madrid, "ES", &sites[0].root_pem, true);
    lisbon.peer_with(&paris, "FR", &sites[2].root_pem, true);
    paris.peer_with(&lisbon, "PT", &sites[1].root_pem, false);
    (madrid, lisbon, paris, sites)
}

fn up(count: f64) -> impl Fn(f64) -> bool {
    move |value| value == count
}

#[tokio::test(flavor = "multi_thread")]
async fn hubs_link_trust_through_a_neighbour_and_rejoin_after_sigkill() {
    let (mut madrid, mut lisbon, mut paris, _sites) = three_hubs().await;
    madrid.start();
    lisbon.start();
    paris.start();
    lisbon
        .wait_for("hubd_links_up", "both links up", up(2.0))
        .await;
    // Paris is not Madrid's peer: Madrid trusts it through Lisbon's voucher.
    madrid
        .wait_for("hubd_hubs_trusted", "madrid trusts lisbon and paris", |n| {
            n >= 2.0
        })
        .await;
    paris
        .wait_for("hubd_hubs_trusted", "paris trusts lisbon and madrid", |n| {
            n >= 2.0
        })
        .await;
    assert_eq!(madrid.metric("hubd_links_configured"), Some(1.0));
    assert_eq!(madrid.metric("hubd_transit"), Some(1.0));
    assert!(
        madrid
            .metric("hubd_link_rtt_seconds{peer=\"lisbon-1\",link=\"1\"}")
            .is_some()
    );

    // Lisbon dies without a word and comes back: both links return, trust converges again.
    lisbon.kill();
    madrid
        .wait_for("hubd_links_up", "madrid sees the link go", up(0.0))
        .await;
    lisbon.start();
    lisbon
        .wait_for("hubd_links_up", "both links back", up(2.0))
        .await;
    madrid
        .wait_for("hubd_links_up", "madrid's link back", up(1.0))
        .await;
    madrid
        .wait_for("hubd_hubs_trusted", "madrid trusts paris again", |n| {
            n >= 2.0
        })
        .await;
    assert!(
        lisbon.log().contains("READY=1"),
        "the status line is logged at READY: {}",
        lisbon.log()
    );

    // A clean stop closes the links at once and exits 0.
    assert_eq!(paris.stop(), Some(0));
    lisbon
        .wait_for("hubd_links_up", "paris's link closed", up(1.0))
        .await;
    assert_eq!(madrid.stop(), Some(0));
    assert_eq!(lisbon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_with_another_sites_certificate_is_refused_and_counted() {
    let (mut madrid, mut lisbon, _paris, sites) = three_hubs().await;
    // Lisbon presents a certificate from Paris's site; Madrid pinned Lisbon's root, not that.
    // Lisbon dials (its id sorts first), so Madrid refuses it at the handshake.
    let (chain, key) = sites[2].hub("lisbon-1");
    fs::write(lisbon.dir.path().join("chain.pem"), chain).unwrap();
    fs::write(lisbon.dir.path().join("key.pem"), key).unwrap();
    madrid.start();
    lisbon.start();
    madrid
        .wait_for(
            "hubd_link_refusals_total{reason=\"wrong_root\"}",
            "madrid refuses lisbon's foreign certificate",
            |n| n >= 1.0,
        )
        .await;
    lisbon
        .wait_for(
            "hubd_link_dial_failures_total{reason=\"refused:refused_by_peer\"}",
            "lisbon told it was refused",
            |n| n >= 1.0,
        )
        .await;
    assert_eq!(lisbon.metric("hubd_links_up"), Some(0.0));
    assert_eq!(madrid.metric("hubd_links_up"), Some(0.0));
    assert_eq!(
        madrid.metric("hubd_hubs_trusted"),
        Some(0.0),
        "no advertisement came through"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lockdown_at_the_site_withdraws_transit_and_survives_a_restart_without_sited() {
    let (_madrid, mut lisbon, _paris, _sites) = three_hubs().await;
    lisbon.start();
    lisbon
        .wait_for("hubd_transit", "transit offered", up(1.0))
        .await;
    let site = lisbon.site.as_ref().unwrap();
    site.set(SiteState::Lockdown, "intrusion at door 2")
        .await
        .unwrap();
    lisbon
        .wait_for("hubd_transit", "transit withdrawn", up(0.0))
        .await;

    // sited and hubd both go; hubd comes back alone: still out of transit.
    lisbon.site.take().unwrap().stop().await.unwrap();
    lisbon.kill();
    lisbon.start();
    lisbon
        .wait_for("hubd_links_configured", "hubd back", up(2.0))
        .await;
    assert_eq!(lisbon.metric("hubd_transit"), Some(0.0));
    assert!(lisbon.log().contains("lockdown"), "{}", lisbon.log());

    // sited is back and the site is normal: transit again.
    let bus = Bus::Address(lisbon.bus.address().to_owned());
    lisbon.site = Some(
        StandInSite::start(&bus, SiteState::Normal, "")
            .await
            .unwrap(),
    );
    lisbon
        .wait_for("hubd_transit", "transit offered again", up(1.0))
        .await;
}
