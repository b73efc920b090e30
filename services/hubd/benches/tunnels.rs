//! `make bench`: hubd against tunnels. One iperf3 TCP stream through each path, in network
//! namespaces this bench creates (and removes, on a panic or Ctrl-C too), all in the same run so
//! the ratios hold on a noisy machine:
//!
//! ```text
//!   A ── 10.10.1.0/24 ── B ── 10.10.2.0/24 ── C        B forwards IP (for the plain routed path
//!   └──────────── 10.10.3.0/24 (direct) ──────┘        and boringtun's hub)
//! ```
//!
//! - **plain**: veth A—C direct, and A→B→C routed by B's kernel: no crypto, the ceiling;
//! - **hubd IP over TUN**: `madrid-1` (A) → `paris-1` (C), linked directly, then through
//!   `lisbon-1` (B, no TUN: it relays the circuit's ciphertext only);
//! - **hubd service forward** (`[[service]]`): the iperf3 client connects to the listener of hub A,
//!   hub C connects to the iperf3 server; 1 hop and through the transit hub (stunnel's analogue);
//! - **boringtun-cli** (userspace WireGuard, its default `-t 4`): A↔C, and A→B→C with one
//!   interface in B that has both as peers (B's kernel hairpins);
//! - **stunnel4**: TLS 1.3 `TLS_AES_256_GCM_SHA384`, mutual authentication (a throw-away P-256 CA),
//!   A→C;
//! - **`openssl speed -seconds 2 -evp aes-256-gcm`**, one core, 16384- and 1024-byte blocks.
//!
//! Every path is set up first (hubd through the transit hub in a second set of namespaces, so its
//! TUNs and metrics listeners do not meet the direct pair's), then measured in 3 rounds, each
//! running every path once for BENCH_SECONDS (default 5) and openssl speed once: a change in the
//! machine's load reaches all paths alike. The figure is the receiver's rate, median (min–max).
//! "CPU" is the utime+stime (/proc/PID/stat) of the tunnel's processes during a run, in % of one
//! core, summed over them (median). No assertions on the figures: this is a report.
//!
//! Needs root (namespaces, TUN), iperf3, ping, stunnel4, wg (wireguard-tools) and boringtun-cli
//! (BORINGTUN, default `build/tools/bin/boringtun-cli`; `make bench` installs them all). A path
//! whose tool is missing is reported as not measured.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::netns::{self, Namespaces};
use common::{CONVERGE, Hub, Running, Site};
use tempfile::TempDir;

/// Runs per path.
const RUNS: usize = 3;
/// iperf3's port in C (every server of this bench; one at a time).
const IPERF3_PORT: u16 = 5201;
/// The hubd service listener in A (forwarding to C's iperf3).
const HUBD_LISTEN: u16 = 15201;
/// The stunnel client's listener in A.
const STUNNEL_LISTEN: u16 = 15202;
/// The stunnel server in C.
const STUNNEL_ACCEPT: &str = "10.10.3.2:8443";
/// What the end hubs grant each other (or the transit hub between them).
const A_GRANT: &str = "prefixes = [\"10.77.1.0/24\"]";
const C_GRANT: &str = "prefixes = [\"10.77.3.0/24\"]\nservices = [\"iperf3\"]";

/// The paths measured, in the order they run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Subject {
    VethDirect,
    VethRouted,
    HubdIpDirect,
    HubdServiceDirect,
    HubdIpTransit,
    HubdServiceTransit,
    BoringtunDirect,
    BoringtunHub,
    Stunnel,
}

impl Subject {
    fn label(self) -> &'static str {
        match self {
            Self::VethDirect => "plain veth A—C direct",
            Self::VethRouted => "plain routed A→B→C (B forwards)",
            Self::HubdIpDirect => "hubd IP over TUN, 1 hop A→C",
            Self::HubdServiceDirect => "hubd service forward, 1 hop A→C",
            Self::HubdIpTransit => "hubd IP over TUN, A→B(transit)→C",
            Self::HubdServiceTransit => "hubd service forward, A→B(transit)→C",
            Self::BoringtunDirect => "boringtun -t 4, A↔C",
            Self::BoringtunHub => "boringtun -t 4, hub A→B→C",
            Self::Stunnel => "stunnel TLS 1.3 AES-256-GCM, mTLS, A→C",
        }
    }
}

/// One iperf3 run: the receiver's rate, the sender's retransmits, the tunnel's CPU.
struct Run {
    gbps: f64,
    retransmits: u64,
    /// % of one core, summed over the tunnel's processes (none: no tunnel process).
    cpu: Option<f64>,
}

/// The runs of one path.
struct Figure {
    subject: Subject,
    runs: Vec<Run>,
}

impl Figure {
    fn rates(&self) -> Vec<f64> {
        let mut rates: Vec<f64> = self.runs.iter().map(|run| run.gbps).collect();
        rates.sort_by(f64::total_cmp);
        rates
    }

    fn median(&self) -> f64 {
        median(self.runs.iter().map(|run| run.gbps).collect())
    }

    fn line(&self) -> String {
        let rates = self.rates();
        let cpu = self
            .runs
            .iter()
            .map(|run| run.cpu)
            .collect::<Option<Vec<f64>>>()
            .map_or_else(|| "–".to_owned(), |cpu| format!("{:.0} %", median(cpu)));
        let retransmits = median(self.runs.iter().map(|r| r.retransmits as f64).collect());
        format!(
            "   {:<42} {:>6.2} Gbit/s ({:.2}–{:.2})   CPU {cpu:>6}   retrans {retransmits:>7.0}",
            self.subject.label(),
            self.median(),
            rates[0],
            rates[rates.len() - 1],
        )
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// What the run measured, and why a path was not.
#[derive(Default)]
struct Results {
    figures: Vec<Figure>,
    missing: Vec<(Subject, String)>,
}

impl Results {
    fn get(&self, subject: Subject) -> Option<f64> {
        self.figures
            .iter()
            .find(|figure| figure.subject == subject)
            .map(Figure::median)
    }

    fn add(&mut self, figure: Figure) {
        println!("{}", figure.line());
        self.figures.push(figure);
    }

    fn skip(&mut self, subjects: &[Subject], why: &str) {
        for &subject in subjects {
            println!("   {:<42} NOT MEASURED: {why}", subject.label());
            self.missing.push((subject, why.to_owned()));
        }
    }
}

fn seconds() -> u64 {
    std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&s| s > 0)
        .unwrap_or(5)
}

/// Waits for `child` without blocking the runtime (so Ctrl-C is seen); kills it after `limit`.
async fn wait(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `ip netns exec NS program args…`, which must succeed: its stdout.
fn run_in(ns: &str, program: &str, args: &[&str]) -> String {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    netns::stdout_of("ip", &all)
}

/// Whether `program` can be run (`--version` or similar answers).
fn available(program: &str, arg: &str) -> Result<String, String> {
    match Command::new(program).arg(arg).output() {
        Ok(output) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            // The line that names the program (stunnel starts with other chatter).
            let stem = Path::new(program).file_name().unwrap().to_string_lossy();
            let stem = stem.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
            let lines = || text.lines().map(str::trim);
            let line = lines()
                .find(|line| line.to_lowercase().starts_with(&stem.to_lowercase()))
                .or_else(|| lines().next())
                .unwrap_or_default();
            Ok(line.to_owned())
        }
        Err(error) => Err(format!("cannot run {program}: {error}")),
    }
}

/// Clock ticks per second (utime and stime in /proc/PID/stat count these).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime+stime of the processes `pids` (all their threads), in clock ticks.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the command's closing parenthesis: state is the first, utime the 12th.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map_or("", |(_, rest)| rest)
                .split_whitespace()
                .collect();
            let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            field(11).unwrap_or(0) + field(12).unwrap_or(0)
        })
        .sum()
}

/// Three namespaces and their cables.
struct Topology {
    _spaces: Namespaces,
    a: String,
    b: String,
    c: String,
}

/// The namespaces `<short>-<pid>` for A, B and C, cabled as in the module's picture.
fn three_namespaces([a, b, c]: [&str; 3]) -> Topology {
    let mut spaces = Namespaces::default();
    let (a, b, c) = (spaces.add(a), spaces.add(b), spaces.add(c));
    spaces.veth((&a, "10.10.1.1/24"), (&b, "10.10.1.2/24"));
    spaces.veth((&b, "10.10.2.1/24"), (&c, "10.10.2.2/24"));
    spaces.veth((&a, "10.10.3.1/24"), (&c, "10.10.3.2/24"));
    spaces.ip(&a, &["route", "add", "10.10.2.0/24", "via", "10.10.1.2"]);
    spaces.ip(&c, &["route", "add", "10.10.1.0/24", "via", "10.10.2.1"]);
    run_in(&b, "sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"]);
    Topology {
        _spaces: spaces,
        a,
        b,
        c,
    }
}

/// iperf3 from namespace `client` to `target:port`, its server in `server` on [`IPERF3_PORT`].
struct Iperf3<'a> {
    client: &'a str,
    server: &'a str,
    target: &'a str,
    port: u16,
}

impl Iperf3<'_> {
    /// One run; retried while the path is not ready (the server not listening yet, a forward
    /// whose session is still being set up).
    async fn run(&self, subject: Subject, scratch: &Path, seconds: u64, pids: &[u32]) -> Run {
        let deadline = Instant::now() + CONVERGE;
        let port = IPERF3_PORT.to_string();
        let ticks = clock_ticks();
        loop {
            let server = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    self.server,
                    "iperf3",
                    "-s",
                    "-1",
                    "-p",
                    &port,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("iperf3 starts");
            let _server = Running(server);
            tokio::time::sleep(Duration::from_millis(300)).await;
            let report_path = scratch.join("iperf3.json");
            let before = cpu_ticks(pids);
            let started = Instant::now();
            let client = Command::new("ip")
                .args(["netns", "exec", self.client, "iperf3", "-c", self.target])
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-t",
                    &seconds.to_string(),
                    "-J",
                ])
                .stdout(File::create(&report_path).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .expect("iperf3 starts");
            let mut client = Running(client);
            let limit = Duration::from_secs(seconds + 30);
            let status = wait(&mut client.0, limit).await;
            let elapsed = started.elapsed().as_secs_f64();
            let used = cpu_ticks(pids).saturating_sub(before) as f64 / ticks;
            let report: serde_json::Value =
                serde_json::from_slice(&fs::read(&report_path).unwrap_or_default())
                    .unwrap_or_default();
            let rate = report["end"]["sum_received"]["bits_per_second"].as_f64();
            if let (Some(status), Some(rate)) = (status, rate)
                && status.success()
            {
                return Run {
                    gbps: rate / 1e9,
                    retransmits: report["end"]["sum_sent"]["retransmits"]
                        .as_u64()
                        .unwrap_or(0),
                    cpu: (!pids.is_empty()).then(|| used / elapsed * 100.0),
                };
            }
            assert!(
                Instant::now() < deadline,
                "{}: iperf3 did not complete within {CONVERGE:?}: {}",
                subject.label(),
                report["error"]
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Pings `address` from `ns` until a reply comes (a tunnel's first packet sets it up); `logs`
/// says what to show if none comes.
async fn ping_until_answered(ns: &str, address: &str, logs: impl Fn() -> String) {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let answered = Command::new("ip")
            .args([
                "netns", "exec", ns, "ping", "-n", "-q", "-c", "1", "-W", "1",
            ])
            .arg(address)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if answered {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no ping reply from {address} in {ns} within {CONVERGE:?}:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The hubs of one measurement: madrid-1 (A) and paris-1 (C), linked directly or through
/// lisbon-1 (B), which relays only. Both ends have a TUN; paris-1 publishes its iperf3 server as
/// the service `iperf3`, which madrid-1 reaches on 127.0.0.1:[`HUBD_LISTEN`].
struct Hubs {
    hubs: Vec<Hub>,
    _sites: Vec<Site>,
}

impl Hubs {
    async fn start(topology: &Topology, transit: bool) -> Self {
        let sites = vec![Site::new("madrid"), Site::new("lisbon"), Site::new("paris")];
        let (a_link, c_link) = if transit {
            ("10.10.1.1:7400", "10.10.2.2:7400")
        } else {
            ("10.10.3.1:7400", "10.10.3.2:7400")
        };
        let a = Hub::in_netns(
            "madrid-1",
            "ES",
            &sites[0],
            &topology.a,
            a_link.parse().unwrap(),
        );
        let c = Hub::in_netns(
            "paris-1",
            "FR",
            &sites[2],
            &topology.c,
            c_link.parse().unwrap(),
        );
        let (a, c) = (a.await, c.await);
        let mut hubs = if transit {
            let b = Hub::in_netns(
                "lisbon-1",
                "PT",
                &sites[1],
                &topology.b,
                "10.10.1.2:7400".parse().unwrap(),
            )
            .await;
            a.peer_with_grant(&b, "PT", &sites[1].root_pem, A_GRANT);
            c.peer_with_grant(&b, "PT", &sites[1].root_pem, C_GRANT);
            b.peer_with(&a, "ES", &sites[0].root_pem, true);
            b.peer_with(&c, "FR", &sites[2].root_pem, true);
            vec![a, c, b]
        } else {
            a.peer_with_grant(&c, "FR", &sites[2].root_pem, A_GRANT);
            c.peer_with_grant(&a, "ES", &sites[0].root_pem, C_GRANT);
            vec![a, c]
        };
        hubs[0].configure(&format!(
            "[tun]\naddress = \"10.77.1.1/16\"\nannounce = [\"10.77.1.0/24\"]\n\
             [[service]]\nname = \"iperf3\"\nhub = \"paris-1\"\nlisten = \"127.0.0.1:{HUBD_LISTEN}\"\n"
        ));
        hubs[1].configure(&format!(
            "[tun]\naddress = \"10.77.3.1/16\"\nannounce = [\"10.77.3.0/24\"]\n\
             [[service]]\nname = \"iperf3\"\npublish = \"127.0.0.1:{IPERF3_PORT}\"\n"
        ));
        for hub in &mut hubs {
            hub.start();
        }
        let others = (hubs.len() - 1) as f64;
        for hub in &hubs[..2] {
            hub.wait_for("hubd_hubs_trusted", "every hub trusted", |n| n >= others)
                .await;
        }
        let this = Self {
            hubs,
            _sites: sites,
        };
        ping_until_answered(&topology.a, "10.77.3.1", || this.logs()).await;
        this
    }

    fn pids(&self) -> Vec<u32> {
        self.hubs
            .iter()
            .filter_map(|hub| hub.child.as_ref().map(Child::id))
            .collect()
    }

    fn logs(&self) -> String {
        self.hubs
            .iter()
            .map(|hub| format!("--- {}:\n{}", hub.id, hub.log()))
            .collect()
    }
}

/// A boringtun-cli process; its UAPI socket (global, not per namespace) is removed with it.
struct Boringtun {
    child: Child,
    socket: PathBuf,
}

impl Drop for Boringtun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.socket);
    }
}

/// A WireGuard key pair (private key file, public key).
fn wg_keys(scratch: &Path, name: &str) -> (PathBuf, String) {
    let private = netns::stdout_of("wg", &["genkey"]);
    let path = scratch.join(format!("{name}.key"));
    fs::write(&path, &private).unwrap();
    let mut pubkey = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("wg runs");
    std::io::Write::write_all(&mut pubkey.stdin.take().unwrap(), private.as_bytes()).unwrap();
    let output = pubkey.wait_with_output().unwrap();
    (
        path,
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    )
}

/// One boringtun endpoint: interface `name` in `ns` with `address` (`10.20.0.1/24`), listening on
/// UDP `port`, its peers (public key, endpoint, allowed IPs); `-t 4`, its default.
async fn boringtun(
    binary: &Path,
    scratch: &Path,
    ns: &str,
    (name, key, address, port): (&str, &Path, &str, &str),
    peers: &[(&str, &str, &str)],
) -> Boringtun {
    let socket = PathBuf::from(format!("/var/run/wireguard/{name}.sock"));
    let log = File::create(scratch.join(format!("{name}.log"))).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(binary)
        .args(["-f", "--disable-drop-privileges", "-t", "4", "-l"])
        .arg(scratch.join(format!("{name}.out")))
        .arg(name)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("boringtun-cli starts");
    let endpoint = Boringtun {
        child,
        socket: socket.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "boringtun-cli made no {} within 10 s",
            socket.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let key = key.to_str().unwrap();
    let mut args = vec!["set", name, "private-key", key, "listen-port", port];
    for (public, endpoint, allowed) in peers {
        args.extend_from_slice(&["peer", public, "endpoint", endpoint, "allowed-ips", allowed]);
    }
    run_in(ns, "wg", &args);
    netns::stdout_of("ip", &["-n", ns, "addr", "add", address, "dev", name]);
    netns::stdout_of("ip", &["-n", ns, "link", "set", name, "mtu", "1420", "up"]);
    endpoint
}

/// A stunnel4 process.
struct Stunnel(Running);

/// A throw-away P-256 CA and its server (`server`) and client certificates, in `dir`.
fn certificates(dir: &Path) {
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    netns::stdout_of(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &path("ca.key"),
            "-out",
            &path("ca.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=hubd bench throw-away CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    for (name, usage, serial) in [("server", "serverAuth", "2"), ("client", "clientAuth", "3")] {
        netns::stdout_of(
            "openssl",
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &path(&format!("{name}.key")),
                "-out",
                &path(&format!("{name}.csr")),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        fs::write(
            dir.join(format!("{name}.ext")),
            format!(
                "subjectAltName = DNS:{name}\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = {usage}\n"
            ),
        )
        .unwrap();
        netns::stdout_of(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &path(&format!("{name}.csr")),
                "-CA",
                &path("ca.pem"),
                "-CAkey",
                &path("ca.key"),
                "-set_serial",
                serial,
                "-days",
                "2",
                "-extfile",
                &path(&format!("{name}.ext")),
                "-out",
                &path(&format!("{name}.pem")),
            ],
        );
    }
}

/// stunnel in `ns` with `config` (the service section's body), logging to `dir/<name>.log`.
fn stunnel(dir: &Path, ns: &str, name: &str, config: &str) -> Stunnel {
    let conf = dir.join(format!("{name}.conf"));
    let d = dir.display();
    fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\ndebug = info\n[iperf3]\n{config}\
             cert = {d}/{name}.pem\nkey = {d}/{name}.key\nCAfile = {d}/ca.pem\nverifyChain = yes\n\
             sslVersion = TLSv1.3\nciphersuites = TLS_AES_256_GCM_SHA384\n"
        ),
    )
    .unwrap();
    let log = File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "stunnel4"])
        .arg(&conf)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("stunnel4 starts");
    Stunnel(Running(child))
}

/// `openssl speed -seconds 2 -bytes <block> -evp aes-256-gcm` (one process, one core): Gbit/s.
async fn openssl_speed(scratch: &Path, block: u32) -> f64 {
    let out = scratch.join("speed.txt");
    let child = Command::new("openssl")
        .args(["speed", "-seconds", "2", "-bytes", &block.to_string()])
        .args(["-evp", "aes-256-gcm"])
        .stdout(File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl runs");
    let mut child = Running(child);
    let status = wait(&mut child.0, Duration::from_secs(60)).await;
    assert!(status.is_some_and(|s| s.success()), "openssl speed failed");
    let text = fs::read_to_string(&out).unwrap();
    // "AES-256-GCM    4296511.25k": thousands of bytes per second.
    let thousands: f64 = text
        .lines()
        .find(|line| line.starts_with("AES-256-GCM"))
        .and_then(|line| line.split_whitespace().last())
        .and_then(|value| value.trim_end_matches('k').parse().ok())
        .unwrap_or_else(|| panic!("no AES-256-GCM line in openssl speed's output:\n{text}"));
    thousands * 1000.0 * 8.0 / 1e9
}

/// The boringtun-cli binary: BORINGTUN, else the workspace's build/tools, else PATH.
fn boringtun_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("BORINGTUN") {
        return path.into();
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/tools/bin/boringtun-cli");
    if built.exists() {
        built
    } else {
        "boringtun-cli".into()
    }
}

/// A path to measure: iperf3 through it, and the tunnel processes to time.
struct Measured<'a> {
    subject: Subject,
    iperf3: Iperf3<'a>,
    pids: Vec<u32>,
}

/// The plain paths on `topology`: veth A—C, and A→B→C routed by B's kernel.
fn plain_paths(topology: &Topology) -> Vec<Measured<'_>> {
    [
        (Subject::VethDirect, "10.10.3.2"),
        (Subject::VethRouted, "10.10.2.2"),
    ]
    .into_iter()
    .map(|(subject, target)| Measured {
        subject,
        iperf3: Iperf3 {
            client: &topology.a,
            server: &topology.c,
            target,
            port: IPERF3_PORT,
        },
        pids: Vec::new(),
    })
    .collect()
}

/// hubd's paths (IP over TUN, the service forward) on `topology`: A and C linked directly, or
/// through B.
async fn hubd_paths(topology: &Topology, transit: bool) -> (Hubs, Vec<Measured<'_>>) {
    let (ip, service) = if transit {
        (Subject::HubdIpTransit, Subject::HubdServiceTransit)
    } else {
        (Subject::HubdIpDirect, Subject::HubdServiceDirect)
    };
    let hubs = Hubs::start(topology, transit).await;
    let pids = hubs.pids();
    let paths = [
        (ip, "10.77.3.1", IPERF3_PORT),
        (service, "127.0.0.1", HUBD_LISTEN),
    ]
    .into_iter()
    .map(|(subject, target, port)| Measured {
        subject,
        iperf3: Iperf3 {
            client: &topology.a,
            server: &topology.c,
            target,
            port,
        },
        pids: pids.clone(),
    })
    .collect();
    (hubs, paths)
}

/// boringtun's paths on `topology`, both up at once: A↔C (UDP 51820, 10.20.0.0/24) and the hub
/// A→B→C (UDP 51821, 10.22.0.0/24: one interface in B with A and C as its peers).
async fn boringtun_paths<'a>(
    topology: &'a Topology,
    scratch: &Path,
) -> Result<(Vec<Boringtun>, Vec<Measured<'a>>), String> {
    let binary = boringtun_binary();
    available(binary.to_str().unwrap(), "--version")
        .map_err(|why| format!("{why} (make bench builds it)"))?;
    available("wg", "--version")
        .map_err(|why| format!("{why} (apt-get install wireguard-tools)"))?;
    let (a, b, c) = (&topology.a, &topology.b, &topology.c);
    // Interface names are global (the UAPI socket): unique to this process.
    let name = |end: &str| format!("tb{}{end}", std::process::id());
    let keys: Vec<(PathBuf, String)> = ["a", "b", "c"]
        .iter()
        .map(|end| wg_keys(scratch, end))
        .collect();
    let (a1, c1) = (name("a1"), name("c1"));
    let (a2, b2, c2) = (name("a2"), name("b2"), name("c2"));
    let endpoints = vec![
        boringtun(
            &binary,
            scratch,
            a,
            (&a1, &keys[0].0, "10.20.0.1/24", "51820"),
            &[(&keys[2].1, "10.10.3.2:51820", "10.20.0.2/32")],
        )
        .await,
        boringtun(
            &binary,
            scratch,
            c,
            (&c1, &keys[2].0, "10.20.0.2/24", "51820"),
            &[(&keys[0].1, "10.10.3.1:51820", "10.20.0.1/32")],
        )
        .await,
        boringtun(
            &binary,
            scratch,
            a,
            (&a2, &keys[0].0, "10.22.0.1/24", "51821"),
            &[(&keys[1].1, "10.10.1.2:51821", "10.22.0.0/24")],
        )
        .await,
        boringtun(
            &binary,
            scratch,
            b,
            (&b2, &keys[1].0, "10.22.0.254/24", "51821"),
            &[
                (&keys[0].1, "10.10.1.1:51821", "10.22.0.1/32"),
                (&keys[2].1, "10.10.2.2:51821", "10.22.0.3/32"),
            ],
        )
        .await,
        boringtun(
            &binary,
            scratch,
            c,
            (&c2, &keys[2].0, "10.22.0.3/24", "51821"),
            &[(&keys[1].1, "10.10.2.1:51821", "10.22.0.0/24")],
        )
        .await,
    ];
    ping_until_answered(a, "10.20.0.2", String::new).await;
    ping_until_answered(a, "10.22.0.3", String::new).await;
    let pids: Vec<u32> = endpoints.iter().map(|e| e.child.id()).collect();
    let paths = vec![
        Measured {
            subject: Subject::BoringtunDirect,
            iperf3: Iperf3 {
                client: a,
                server: c,
                target: "10.20.0.2",
                port: IPERF3_PORT,
            },
            pids: pids[..2].to_vec(),
        },
        Measured {
            subject: Subject::BoringtunHub,
            iperf3: Iperf3 {
                client: a,
                server: c,
                target: "10.22.0.3",
                port: IPERF3_PORT,
            },
            pids: pids[2..].to_vec(),
        },
    ];
    Ok((endpoints, paths))
}

/// stunnel's path on `topology`, its CA, certificates, configurations and logs in `dir`.
fn stunnel_path<'a>(
    topology: &'a Topology,
    dir: &Path,
) -> Result<(Vec<Stunnel>, Measured<'a>), String> {
    available("stunnel4", "-version").map_err(|why| format!("{why} (apt-get install stunnel4)"))?;
    fs::create_dir(dir).unwrap();
    certificates(dir);
    let server = stunnel(
        dir,
        &topology.c,
        "server",
        &format!(
            "accept = {STUNNEL_ACCEPT}\nconnect = 127.0.0.1:{IPERF3_PORT}\nrequireCert = yes\n"
        ),
    );
    let client = stunnel(
        dir,
        &topology.a,
        "client",
        &format!(
            "client = yes\naccept = 127.0.0.1:{STUNNEL_LISTEN}\nconnect = {STUNNEL_ACCEPT}\ncheckHost = server\n"
        ),
    );
    let path = Measured {
        subject: Subject::Stunnel,
        iperf3: Iperf3 {
            client: &topology.a,
            server: &topology.c,
            target: "127.0.0.1",
            port: STUNNEL_LISTEN,
        },
        pids: vec![client.0.0.id(), server.0.0.id()],
    };
    Ok((vec![client, server], path))
}

/// What stunnel negotiated, from its server's log in `dir`: TLS 1.3, the suite, the client's
/// certificate.
fn stunnel_negotiated(dir: &Path) -> String {
    let log = fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let suite = log
        .lines()
        .rfind(|line| line.contains("ciphersuite"))
        .and_then(|line| line.split_once("TLSv"))
        .map_or_else(
            || "not in the log".to_owned(),
            |(_, rest)| format!("TLSv{rest}"),
        );
    let client_verified = log.contains("Certificate accepted at depth=0: CN=client");
    format!(
        "negotiated {suite}; client certificate verified: {}",
        if client_verified { "yes" } else { "NO" }
    )
}

/// `a / b` as "0.73×", or "n/a" when one is missing.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "n/a".to_owned(),
    }
}

/// Whether `hubd ≥ factor × baseline`, said with the figures.
fn goal(hubd: Option<f64>, factor: f64, baseline: Option<f64>) -> String {
    match (hubd, baseline) {
        (Some(hubd), Some(baseline)) => format!(
            "{hubd:.2} Gbit/s vs {factor} × {baseline:.2} = {:.2} Gbit/s ({:.2}× the baseline): {}",
            factor * baseline,
            hubd / baseline,
            if hubd >= factor * baseline {
                "MET"
            } else {
                "NOT MET"
            }
        ),
        _ => "not measured".to_owned(),
    }
}

fn report(results: &Results, aes_16k: f64) {
    use Subject::*;
    let get = |subject| results.get(subject);
    println!(
        "== ratios (medians): each hubd figure against the baselines of the same topology, and AES-256-GCM on one core (16384 B blocks, {aes_16k:.1} Gbit/s)"
    );
    println!(
        "   {:<42} {:>9} {:>12} {:>12} {:>13}",
        "", "/ stunnel", "/ boringtun", "/ plain veth", "/ openssl AES"
    );
    for (hubd, boringtun, plain) in [
        (HubdIpDirect, BoringtunDirect, VethDirect),
        (HubdServiceDirect, BoringtunDirect, VethDirect),
        (HubdIpTransit, BoringtunHub, VethRouted),
        (HubdServiceTransit, BoringtunHub, VethRouted),
    ] {
        println!(
            "   {:<42} {:>9} {:>12} {:>12} {:>13}",
            hubd.label(),
            ratio(get(hubd), get(Stunnel)),
            ratio(get(hubd), get(boringtun)),
            ratio(get(hubd), get(plain)),
            ratio(get(hubd), Some(aes_16k)),
        );
    }
    println!("   (boringtun and plain veth: same topology, 1 hop or via B; stunnel: A→C)");
    println!("== goals, in this run");
    println!("   hubd 1 hop ≥ stunnel");
    for subject in [HubdServiceDirect, HubdIpDirect] {
        println!(
            "     {:<40} {}",
            subject.label(),
            goal(get(subject), 1.0, get(Stunnel))
        );
    }
    println!("   hubd through a transit hub ≥ 0.8 × stunnel");
    for subject in [HubdServiceTransit, HubdIpTransit] {
        println!(
            "     {:<40} {}",
            subject.label(),
            goal(get(subject), 0.8, get(Stunnel))
        );
    }
    println!("   hubd ≥ 10 × boringtun (same topology)");
    for (subject, boringtun) in [
        (HubdIpDirect, BoringtunDirect),
        (HubdServiceDirect, BoringtunDirect),
        (HubdIpTransit, BoringtunHub),
        (HubdServiceTransit, BoringtunHub),
    ] {
        println!(
            "     {:<40} {}",
            subject.label(),
            goal(get(subject), 10.0, get(boringtun))
        );
    }
}

async fn bench() {
    if let Some(reason) = netns::unavailable() {
        println!("SKIPPED hubd against tunnels: {reason}");
        return;
    }
    if let Err(why) = available("iperf3", "--version") {
        println!("SKIPPED hubd against tunnels: {why} (apt-get install iperf3)");
        return;
    }
    let seconds = seconds();
    let hubd = env!("CARGO_BIN_EXE_hubd");
    let release = if hubd.contains("/release/") {
        "release build"
    } else {
        "NOT a release build: run through cargo bench"
    };
    println!(
        "== hubd against tunnels: iperf3 TCP, 1 stream, {RUNS} runs of {seconds} s per path, interleaved"
    );
    println!("   hubd: {hubd} ({release})");
    for (program, arg) in [
        ("iperf3", "--version"),
        ("stunnel4", "-version"),
        ("openssl", "version"),
    ] {
        if let Ok(version) = available(program, arg) {
            println!("   {program}: {version}");
        }
    }
    if let Ok(version) = available(boringtun_binary().to_str().unwrap(), "--version") {
        println!(
            "   boringtun-cli: {version} ({})",
            boringtun_binary().display()
        );
    }
    println!("   load average at the start: {}", load_average());
    let scratch = TempDir::new().unwrap();
    let scratch = scratch.path();

    // The namespaces are declared before what runs in them: dropped after it has ended. hubd
    // through a transit hub gets namespaces of its own (a second TUN and metrics listener in A
    // and C would clash with the direct pair's).
    let topology = three_namespaces(["tba", "tbb", "tbc"]);
    let transit_topology = three_namespaces(["tbd", "tbe", "tbf"]);
    let mut paths = plain_paths(&topology);
    let (_direct_hubs, direct) = hubd_paths(&topology, false).await;
    paths.extend(direct);
    let (_transit_hubs, transit) = hubd_paths(&transit_topology, true).await;
    paths.extend(transit);
    let mut missing = Vec::new();
    let _boringtun = match boringtun_paths(&topology, scratch).await {
        Ok((endpoints, measured)) => {
            paths.extend(measured);
            Some(endpoints)
        }
        Err(why) => {
            missing.push((vec![Subject::BoringtunDirect, Subject::BoringtunHub], why));
            None
        }
    };
    let tls = scratch.join("tls");
    let stunnel_processes = match stunnel_path(&topology, &tls) {
        Ok((processes, measured)) => {
            paths.push(measured);
            Some(processes)
        }
        Err(why) => {
            missing.push((vec![Subject::Stunnel], why));
            None
        }
    };

    // Every path is up: each round measures each once (and AES on one core), so a change in the
    // machine's load over the minutes of the run reaches every path alike.
    let mut runs: Vec<Vec<Run>> = paths.iter().map(|_| Vec::new()).collect();
    let mut aes = [Vec::new(), Vec::new()];
    for round in 1..=RUNS {
        for (i, block) in [16384, 1024].into_iter().enumerate() {
            aes[i].push(openssl_speed(scratch, block).await);
        }
        for (path, runs) in paths.iter().zip(&mut runs) {
            let run = path.iperf3.run(path.subject, scratch, seconds, &path.pids);
            runs.push(run.await);
        }
        eprintln!("   round {round} of {RUNS} done");
    }
    let [aes_16k, aes_1k] = aes.map(median);
    println!(
        "   openssl speed -seconds 2 -evp aes-256-gcm, one core (median of {RUNS}): \
         16384 B {aes_16k:.1} Gbit/s, 1024 B {aes_1k:.1} Gbit/s"
    );
    println!(
        "   {:<42} {:>6} median (min–max)   tunnel CPU (% of one core, median)   TCP retransmits",
        "path", "Gbit/s"
    );
    let mut results = Results::default();
    for (path, runs) in paths.iter().zip(runs) {
        results.add(Figure {
            subject: path.subject,
            runs,
        });
    }
    for (subjects, why) in &missing {
        results.skip(subjects, why);
    }
    if stunnel_processes.is_some() {
        println!("   {:<42} {}", "", stunnel_negotiated(&tls));
    }
    println!(
        "   load average at the end: {} (the machine is shared: compare ratios, not absolutes)",
        load_average()
    );
    report(&results, aes_16k);
}

/// The 1, 5 and 15 minute load averages (/proc/loadavg).
fn load_average() -> String {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main]
async fn main() {
    // Ctrl-C or SIGTERM drops the bench's future: its processes are killed, its namespaces removed.
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    let interrupted = tokio::select! {
        () = bench() => None,
        _ = tokio::signal::ctrl_c() => Some(("interrupted", 130)),
        _ = terminate.recv() => Some(("terminated", 143)),
    };
    // The bench's future has been dropped here, its guards with it.
    if let Some((what, code)) = interrupted {
        eprintln!("{what}: processes ended, namespaces removed");
        std::process::exit(code);
    }
}
