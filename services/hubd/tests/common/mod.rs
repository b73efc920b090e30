//! What the daemon tests share: sites with their roots, hubs as real `hubd` processes each with
//! its own files, private bus and stand-in sited, and a Prometheus-like scrape of their metrics.

#![allow(dead_code)] // each test file uses a part

pub mod netns;
pub mod network;

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

/// A process ended by PID when dropped (an iperf3 server that never got its client).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How long anything may take to converge on a busy 2-core machine.
pub const CONVERGE: Duration = Duration::from_secs(30);

/// A site: its root certificate and key.
pub struct Site {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub root_pem: String,
}

impl Site {
    pub fn new(name: &str) -> Self {
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
    pub fn hub(&self, id: &str) -> (String, String) {
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

pub fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub fn free_tcp() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One hub: its files, its bus and stand-in sited, and the running daemon.
pub struct Hub {
    pub id: &'static str,
    pub dir: TempDir,
    pub link_address: SocketAddr,
    pub metrics: SocketAddr,
    pub bus: TestBus,
    pub site: Option<StandInSite>,
    pub child: Option<Child>,
    /// The network namespace the daemon runs in (none: this test's).
    pub netns: Option<String>,
}

impl Hub {
    pub async fn new(id: &'static str, code: &str, site: &Site) -> Self {
        Self::with_addresses(id, code, site, free_udp(), free_tcp(), None).await
    }

    /// A hub whose daemon runs in the network namespace `netns`, its links on `link_address`
    /// there, its metrics on that namespace's loopback.
    pub async fn in_netns(
        id: &'static str,
        code: &str,
        site: &Site,
        netns: &str,
        link_address: SocketAddr,
    ) -> Self {
        let metrics = "127.0.0.1:9102".parse().unwrap();
        Self::with_addresses(
            id,
            code,
            site,
            link_address,
            metrics,
            Some(netns.to_owned()),
        )
        .await
    }

    async fn with_addresses(
        id: &'static str,
        code: &str,
        site: &Site,
        link_address: SocketAddr,
        metrics: SocketAddr,
        netns: Option<String>,
    ) -> Self {
        let dir = TempDir::new().unwrap();
        let (chain, key) = site.hub(id);
        fs::write(dir.path().join("chain.pem"), chain).unwrap();
        fs::write(dir.path().join("key.pem"), key).unwrap();
        fs::create_dir(dir.path().join("peers")).unwrap();
        fs::create_dir(dir.path().join("state")).unwrap();
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
            netns,
        }
    }

    /// Appends `text` to this hub's hubd.toml (before it starts).
    pub fn configure(&self, text: &str) {
        let path = self.dir.path().join("hubd.toml");
        let mut config = fs::read_to_string(&path).unwrap();
        config.push_str(text);
        fs::write(path, config).unwrap();
    }

    /// Writes the peering file for hub `other` (pinning `root_pem`) with its `links` (number,
    /// the other hub's `IP:PORT` on that cable) and `grant` as its `[grant]` table's body.
    pub fn peer_over(
        &self,
        other: &str,
        code: &str,
        root_pem: &str,
        links: &[(u16, String)],
        grant: &str,
    ) {
        let peers = self.dir.path().join("peers");
        fs::write(peers.join(format!("{other}.pem")), root_pem).unwrap();
        let links: String = links
            .iter()
            .map(|(id, address)| format!("[[link]]\nid = {id}\naddress = \"{address}\"\n"))
            .collect();
        fs::write(
            peers.join(format!("{other}.toml")),
            format!(
                "hub = \"{other}\"\njurisdiction = \"{code}\"\nroot = \"{other}.pem\"\n{links}[grant]\n{grant}\n"
            ),
        )
        .unwrap();
    }

    /// Makes the hub ask the trustd on its bus for its certificate instead of reading PEM files.
    pub fn certificate_from_trustd(&self) {
        let path = self.dir.path().join("hubd.toml");
        let config = fs::read_to_string(&path).unwrap();
        let start = config.find("[certificate]").unwrap();
        let end = config[start..].find("[metrics]").unwrap() + start;
        let config = format!(
            "{}[certificate]\nsource = \"trustd\"\n{}",
            &config[..start],
            &config[end..]
        );
        fs::write(path, config).unwrap();
    }

    /// Writes the peering file for `other` (pinning `root_pem`, link 1), granting transit or not.
    pub fn peer_with(&self, other: &Hub, code: &str, root_pem: &str, transit: bool) {
        self.peer_with_grant(other, code, root_pem, &format!("transit = {transit}"));
    }

    /// Writes the peering file for `other` with `grant` as its `[grant]` table's body.
    pub fn peer_with_grant(&self, other: &Hub, code: &str, root_pem: &str, grant: &str) {
        let peers = self.dir.path().join("peers");
        fs::write(peers.join(format!("{}.pem", other.id)), root_pem).unwrap();
        fs::write(
            peers.join(format!("{}.toml", other.id)),
            format!(
                "hub = \"{}\"\njurisdiction = \"{code}\"\nroot = \"{}.pem\"\n\
                 [[link]]\nid = 1\naddress = \"{}\"\n[grant]\n{grant}\n",
                other.id, other.id, other.link_address
            ),
        )
        .unwrap();
    }

    pub fn start(&mut self) {
        let log = fs::File::create(self.log_path()).unwrap();
        let mut command = match &self.netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", netns])
                    .arg(env!("CARGO_BIN_EXE_hubd"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_hubd")),
        };
        let child = command
            .arg("--config")
            .arg(self.dir.path().join("hubd.toml"))
            .env("BUNKEROS_ROOT", self.dir.path())
            .env("STATE_DIRECTORY", self.dir.path().join("state"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.bus.address())
            // HUBD_TEST_LOG: other filter directives for the hubs a test runs (e.g. debug).
            .env(
                "RUST_LOG",
                std::env::var("HUBD_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("hubd starts");
        self.child = Some(child);
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("hubd.log")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILL, as a crash or a power cut would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, as systemd stops it; returns the exit status.
    pub fn stop(&mut self) -> Option<i32> {
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
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let text = match &self.netns {
            Some(netns) => netns::within(netns, || scrape(self.metrics))??,
            None => scrape(self.metrics)?,
        };
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == sample).then(|| value.parse().ok()).flatten()
            })
    }

    /// Waits until `sample` satisfies `check`; panics with the hub's log after [`CONVERGE`].
    pub async fn wait_for(&self, sample: &str, what: &str, check: impl Fn(f64) -> bool) {
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
pub fn scrape(address: SocketAddr) -> Option<String> {
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
pub async fn three_hubs() -> (Hub, Hub, Hub, [Site; 3]) {
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
