//! Test support: Debian's real Prometheus Alertmanager on loopback, serving HTTPS with mutual
//! TLS (`--web.config.file`, `RequireAndVerifyClientCert`), with a throwaway PKI: the control
//! centre's CA (Alertmanager's certificate), the site's CA (sited's client certificate) and a
//! stranger's CA (a client certificate Alertmanager must refuse).
#![allow(dead_code)] // each test file uses part of it

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use appliance::config::{Bounded, DurationSecs};
use appliance::tls::{Identity, PinnedRoot};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::Value;
use sited::uplink::{
    AlertmanagerClient, ClientIdentitySource, Notification, Outbox, OutboxStatus, UplinkSettings,
};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
/// Bound that separates "worked" from "hung" (Alertmanager starts in well under a second,
/// deliveries retry every second or two).
pub const LIMIT: Duration = Duration::from_secs(30);
/// The port every test's Alertmanager listens on, each test on its own 127.72.x.y address (not 9093: a
/// packaged Alertmanager service may hold that one on every address).
pub const PORT: u16 = 29093;

/// A CA that signs leaf certificates.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    /// A leaf for `san` (an IP address or a DNS name) with `usage`: (chain PEM, key PEM).
    pub fn leaf(&self, san: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, san);
        params.subject_alt_names = vec![match san.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(san.try_into().unwrap()),
        }];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A running Alertmanager (stopped by PID on drop) and the files the tests need.
pub struct Alertmanager {
    dir: tempfile::TempDir,
    ip: Ipv4Addr,
    child: Option<Child>,
    pub control_centre: Ca,
    pub site: Ca,
}

impl Alertmanager {
    /// Prepares the PKI and configuration for an Alertmanager on `ip`, without starting it.
    pub fn prepare(ip: Ipv4Addr) -> Alertmanager {
        assert!(
            Path::new(ALERTMANAGER).exists(),
            "{ALERTMANAGER} is missing: the uplink tests need Debian's prometheus-alertmanager \
             (`make deps` installs it)"
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        let am = Alertmanager {
            dir,
            ip,
            child: None,
            control_centre: Ca::new("control centre CA"),
            site: Ca::new("bunker-7 site CA"),
        };
        am.write_files();
        am
    }

    /// Prepares and starts an Alertmanager on `ip`.
    pub async fn start(ip: Ipv4Addr) -> Alertmanager {
        let mut am = Alertmanager::prepare(ip);
        am.launch().await;
        am
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_files(&self) {
        let (server_pem, server_key) = self
            .control_centre
            .leaf(&self.ip.to_string(), ExtendedKeyUsagePurpose::ServerAuth);
        let (client_pem, client_key) = self.site.leaf(
            "sited.bunker-7.example",
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        for (name, text) in [
            ("server.pem", server_pem.as_str()),
            ("server.key", server_key.as_str()),
            ("client.pem", client_pem.as_str()),
            ("client.key", client_key.as_str()),
            ("cc-ca.pem", self.control_centre.pem.as_str()),
            ("site-ca.pem", self.site.pem.as_str()),
        ] {
            fs::write(self.path(name), text).unwrap();
        }
        fs::write(
            self.path("web.yml"),
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  \
                 client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
                self.path("server.pem").display(),
                self.path("server.key").display(),
                self.path("site-ca.pem").display(),
            ),
        )
        .unwrap();
        fs::write(
            self.path("alertmanager.yml"),
            "route:\n  receiver: control-room\nreceivers:\n  - name: control-room\n",
        )
        .unwrap();
        fs::create_dir_all(self.path("data")).unwrap();
    }

    /// Makes Alertmanager accept client certificates of the CA `pem` too (e.g. trustd's site
    /// root); before [`Alertmanager::launch`].
    pub fn trust_clients_of(&self, pem: &str) {
        let mut cas = fs::read_to_string(self.path("site-ca.pem")).unwrap();
        cas.push_str(pem);
        fs::write(self.path("site-ca.pem"), cas).unwrap();
    }

    /// Starts the process and waits until it answers over mutual TLS.
    pub async fn launch(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = fs::File::create(self.path("alertmanager.log")).unwrap();
        let child = Command::new(ALERTMANAGER)
            .arg(format!(
                "--config.file={}",
                self.path("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", self.path("data").display()))
            .arg(format!("--web.listen-address={}:{PORT}", self.ip))
            .arg("--cluster.listen-address=")
            .arg(format!(
                "--web.config.file={}",
                self.path("web.yml").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start alertmanager");
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + LIMIT;
        let client = self.client();
        loop {
            if client.alerts().await.is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("alertmanager exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager did not answer within {LIMIT:?}: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the process (by its PID) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.path("alertmanager.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("https://{}:{PORT}", self.ip)
    }

    /// Uplink settings for this Alertmanager with the site's client certificate, retrying
    /// every second or two.
    pub fn settings(&self) -> UplinkSettings {
        UplinkSettings {
            alertmanager: self.url(),
            server_ca: self.path("cc-ca.pem"),
            client: ClientIdentitySource::Pem {
                chain: self.path("client.pem"),
                key: self.path("client.key"),
            },
            retry_first: DurationSecs::from_const(1),
            retry_max: DurationSecs::from_const(2),
            resend_every: DurationSecs::from_const(60),
            queue_limit: Bounded::from_const(10_000),
            batch: Bounded::from_const(2),
            timeout: DurationSecs::from_const(5),
        }
    }

    /// A client presenting `identity`, trusting the control centre's CA.
    pub fn client_as(&self, identity: &Identity) -> AlertmanagerClient {
        let root = PinnedRoot::from_pem(self.control_centre.pem.as_bytes()).unwrap();
        let tls = appliance::tls::client_config(identity, &root).unwrap();
        let endpoint = self.settings().endpoint().unwrap();
        AlertmanagerClient::new(endpoint, Arc::new(tls), Duration::from_secs(5))
    }

    /// A client with the site's certificate, to read back what arrived.
    pub fn client(&self) -> AlertmanagerClient {
        let identity = Identity::from_pem(
            &fs::read(self.path("client.pem")).unwrap(),
            &fs::read(self.path("client.key")).unwrap(),
        )
        .unwrap();
        self.client_as(&identity)
    }

    /// The alerts Alertmanager holds now, by `alertname`.
    pub async fn alerts(&self) -> Vec<Value> {
        self.client().alerts().await.expect("read alerts back")
    }

    /// Waits until the alerts Alertmanager holds satisfy `done`, and returns them.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + LIMIT;
        loop {
            let alerts = self.alerts().await;
            if done(&alerts) {
                return alerts;
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager never held {what} within {LIMIT:?}; it holds {alerts:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The alert named `name` among `alerts`.
pub fn alert<'a>(alerts: &'a [Value], name: &str) -> Option<&'a Value> {
    alerts.iter().find(|a| a["labels"]["alertname"] == name)
}

/// A notification as the rules would make it.
pub fn notification(alarm: &str, change: &str, severity: &str, at: SystemTime) -> Notification {
    Notification {
        alarm: alarm.into(),
        change: change.into(),
        severity: severity.into(),
        summary: if change == "cleared" {
            String::new()
        } else {
            format!("{alarm}: {change}")
        },
        site: "bunker-7".into(),
        notify: Vec::new(),
        at,
        active: change != "cleared",
    }
}

/// A time `secs` seconds ago, to the millisecond (as Alertmanager keeps times).
pub fn ago(secs: u64) -> SystemTime {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_millis(now.as_millis() as u64)
        - Duration::from_secs(secs)
}

/// Waits until the outbox's status satisfies `done`.
pub async fn wait_status(
    outbox: &Outbox,
    what: &str,
    done: impl Fn(&OutboxStatus) -> bool,
) -> OutboxStatus {
    let deadline = Instant::now() + LIMIT;
    loop {
        let status = outbox.status();
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the outbox never reached {what} within {LIMIT:?}: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The outbox's journal file in `dir`.
pub fn journal_path(dir: &Path) -> PathBuf {
    dir.join(sited::uplink::journal::JOURNAL_FILE)
}
