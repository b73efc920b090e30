//! What the trustd benchmarks share: a software TPM holding the CA key, an authority with a
//! site root, CSRs made by openssl as a client would make them, and the comparison with raw TPM
//! signatures measured in the same run.
//!
//! The machines here are small and noisy (other builds share the two cores and the disk), so
//! the baseline and the measured operation are run in alternating rounds ([`same_run`]): a
//! burst of load then slows both sides alike, and the ratio stays meaningful. Only the ratio
//! travels between machines; the absolute rates are printed beside it.

#![allow(dead_code)] // each benchmark uses its own part

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use appliance::state::StateDir;
use appliance::testtpm::{Swtpm, SwtpmError};
use trustd::authority::{Authority, AuthorityConfig};
use trustd::ca::{DnsName, IssuancePolicy, SiteIdentity};
use trustd::ca_key::CaKey;
use trustd::tpm::{PolicyMode, TpmCaKey, TpmConnection};

/// The site every benchmark issues for.
pub const SITE: &str = "bench.bunker.test";

/// A count from the environment, or `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// Resident memory of this process in KiB, from /proc.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user and system, all threads) process `pid` has used so far, from /proc (whose
/// unit, USER_HZ, is 1/100 s on Linux).
pub fn cpu_time(pid: u32) -> Duration {
    cpu_time_at(&format!("/proc/{pid}/stat"))
}

fn cpu_time_at(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// CPU time used so far by this process's threads whose name starts with `prefix` (threads
/// that ended are not counted: keep them alive while measuring).
pub fn threads_cpu_time(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.starts_with(prefix))
        })
        .filter_map(|task| task.file_name().to_str()?.parse::<u32>().ok())
        .map(|tid| cpu_time_at(&format!("/proc/self/task/{tid}/stat")))
        .sum()
}

/// CPU time used by this process and by swtpm while some work ran.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub this_process: Duration,
    pub swtpm: Duration,
}

impl CpuUse {
    /// Runs `work`, adding the CPU time it cost here and in `swtpm`.
    pub fn add<T>(&mut self, swtpm: u32, work: impl FnOnce() -> T) -> T {
        let (own, tpm) = (cpu_time(std::process::id()), cpu_time(swtpm));
        let result = work();
        self.this_process += cpu_time(std::process::id()).saturating_sub(own);
        self.swtpm += cpu_time(swtpm).saturating_sub(tpm);
        result
    }

    /// One line: milliseconds of CPU per operation, here and in swtpm.
    pub fn print(&self, what: &str, count: usize) {
        let per = |d: Duration| d.as_secs_f64() * 1000.0 / count as f64;
        println!(
            "  cpu       {what}: {:.2} ms in this process, {:.2} ms in swtpm (CPU time per \
             operation; {} cores)",
            per(self.this_process),
            per(self.swtpm),
            std::thread::available_parallelism().map_or(1, usize::from)
        );
    }
}

/// A P-256 CSR (PEM) for `name`, made by openssl as a client would.
pub fn openssl_csr(dir: &std::path::Path, name: &str) -> String {
    let out = dir.join("bench.csr");
    let made = Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
        .args(["-keyout", "/dev/null", "-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name}"), "-out"])
        .arg(&out)
        .output()
        .expect("openssl runs (Debian package openssl)");
    assert!(
        made.status.success(),
        "openssl made no CSR: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::read_to_string(out).expect("the CSR was written")
}

/// A software TPM with the CA key in it (bound to PCRs 7 and 11, one policy session per
/// signature, as on the appliance), and a state directory.
pub struct Lab {
    pub tpm: Swtpm,
    pub dir: tempfile::TempDir,
    pub key: Arc<TpmCaKey>,
    state: StateDir,
}

impl Lab {
    pub fn start() -> Self {
        let tpm = start_swtpm();
        let dir = tempfile::TempDir::new().expect("a temporary directory");
        let state = StateDir::new(dir.path().join("trustd")).expect("a state directory");
        let connection = Arc::new(TpmConnection::open_tcti(&tpm.tcti()).expect("the TPM answers"));
        let mode = PolicyMode::from_current_pcrs(&connection, &[7, 11]).expect("PCRs read");
        let key = Arc::new(TpmCaKey::create(connection, &state, mode).expect("CA key created"));
        key.sign(b"warm-up").expect("the TPM signs");
        Self {
            tpm,
            dir,
            key,
            state,
        }
    }

    /// The site's issuance policy.
    pub fn policy(&self) -> IssuancePolicy {
        IssuancePolicy::for_site(DnsName::parse(SITE).expect("a valid site domain"))
    }

    /// The authority over the lab's key, with a site root.
    pub fn authority(&self) -> Authority {
        let authority = Authority::open(
            Arc::clone(&self.key),
            self.state.clone(),
            self.policy(),
            AuthorityConfig::default(),
        )
        .expect("the authority opens");
        authority
            .create_root(&SiteIdentity::new("Bench", "BunkerOS bench").expect("a site identity"))
            .expect("the root is created");
        authority
    }

    /// `count` raw signatures by the CA key, each in its own policy session: the baseline.
    pub fn raw_signatures(&self, count: usize) {
        for i in 0..count {
            self.key
                .sign(format!("bunkeros bench {i}").as_bytes())
                .expect("the TPM signs");
        }
    }
}

/// swtpm on two free consecutive loopback ports. Every TPM command is a TCP connection of its
/// own (tpm2-tss's swtpm TCTI), so a benchmark that just ran leaves tens of thousands of
/// ports in TIME_WAIT for a minute; wait for them rather than fail.
fn start_swtpm() -> Swtpm {
    let mut attempts = 0;
    loop {
        match Swtpm::start() {
            Ok(tpm) => return tpm,
            Err(error @ (SwtpmError::Ports(_) | SwtpmError::PortsTaken { .. }))
                if attempts < 12 =>
            {
                attempts += 1;
                eprintln!("swtpm: {error}; waiting for loopback ports to leave TIME_WAIT");
                std::thread::sleep(Duration::from_secs(5));
            }
            Err(error) => panic!("swtpm starts (Debian package swtpm): {error}"),
        }
    }
}

/// Operations done and the time they took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub count: usize,
    pub elapsed: Duration,
}

impl Tally {
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }

    fn add(&mut self, count: usize, elapsed: Duration) {
        self.count += count;
        self.elapsed += elapsed;
    }
}

/// The baseline and a measured operation, from the same run.
#[derive(Debug, Clone, Copy)]
pub struct SameRun {
    pub raw: Tally,
    pub measured: Tally,
}

impl SameRun {
    /// Measured rate over raw TPM signature rate.
    pub fn ratio(&self) -> f64 {
        self.measured.rate() / self.raw.rate()
    }

    /// One line: the measured rate, the baseline beside it, and their ratio.
    pub fn print(&self, what: &str) {
        println!(
            "  {what:<58} {:7.1} /s   raw TPM {:6.1} /s   ratio {:.2}",
            self.measured.rate(),
            self.raw.rate(),
            self.ratio()
        );
    }
}

/// Runs `total` raw signatures and `total` measured operations in alternating rounds of
/// `round` each (which side goes first alternates too), so both see the same machine.
pub fn same_run(
    total: usize,
    round: usize,
    mut raw: impl FnMut(usize),
    mut measured: impl FnMut(usize),
) -> SameRun {
    let mut result = SameRun {
        raw: Tally::default(),
        measured: Tally::default(),
    };
    let mut done = 0;
    let mut raw_first = true;
    while done < total {
        let n = round.min(total - done);
        for side in [raw_first, !raw_first] {
            let started = Instant::now();
            if side {
                raw(n);
                result.raw.add(n, started.elapsed());
            } else {
                measured(n);
                result.measured.add(n, started.elapsed());
            }
        }
        raw_first = !raw_first;
        done += n;
    }
    result
}
