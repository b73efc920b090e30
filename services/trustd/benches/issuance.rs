//! `make bench` for trustd: certificate issuance measured against the raw TPM signature rate in
//! the same run, on the same software TPM (machines here are noisy: only the ratio travels).
//!
//! Baseline: ECDSA P-256 signatures by the CA key, one policy session each — the physical limit,
//! since every certificate costs exactly one. Measured: `Authority::issue` (CSR checks, serial
//! reservation, the TPM signature, the transparency-log append with fsync, the store row).
//! Then trustd's memory after issuing many more certificates.
//!
//! Environment: BENCH_SIGNATURES (default 300) per rate, BENCH_CERTS (default 5000; the issue
//! asks for 100000 — set it for the full figure, about 10 minutes here).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use appliance::state::StateDir;
use appliance::testtpm::Swtpm;
use trustd::authority::{Authority, AuthorityConfig};
use trustd::ca::{DnsName, IssuancePolicy, Profile, SiteIdentity};
use trustd::ca_key::CaKey;
use trustd::tpm::{PolicyMode, TpmCaKey, TpmConnection};

const SITE: &str = "bench.bunker.test";

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of this process in KiB, from /proc.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A P-256 CSR for a service name under the site, made by openssl as a client would.
fn csr(dir: &std::path::Path) -> Vec<u8> {
    let out = dir.join("bench.csr");
    let made = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-keyout", "/dev/null", "-subj", &format!("/CN=api.{SITE}")])
        .args(["-addext", &format!("subjectAltName=DNS:api.{SITE}"), "-out"])
        .arg(&out)
        .output()
        .expect("openssl runs (Debian package openssl)");
    assert!(
        made.status.success(),
        "openssl made no CSR: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::read(out).expect("the CSR was written")
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn main() {
    let signatures = env_count("BENCH_SIGNATURES", 300);
    let certs = env_count("BENCH_CERTS", 5000);
    let tpm = Swtpm::start().expect("swtpm starts (Debian package swtpm)");
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let state = StateDir::new(dir.path().join("trustd")).expect("a state directory");
    let connection = Arc::new(TpmConnection::open_tcti(&tpm.tcti()).expect("the TPM answers"));
    let mode = PolicyMode::from_current_pcrs(&connection, &[7, 11]).expect("PCRs read");
    let key = Arc::new(TpmCaKey::create(connection, &state, mode).expect("CA key created"));

    println!("trustd issuance benchmark: swtpm, release build, {signatures} operations per rate");
    let message = b"bunkeros bench message";
    key.sign(message).expect("warm-up signature");
    let started = Instant::now();
    for _ in 0..signatures {
        key.sign(message).expect("the TPM signs");
    }
    let raw = rate(signatures, started.elapsed());
    println!("  baseline  raw TPM ECDSA P-256 signatures (policy session each)   {raw:8.1} /s");

    let policy = IssuancePolicy::for_site(DnsName::parse(SITE).expect("a valid site domain"));
    let authority = Authority::open(Arc::clone(&key), state, policy, AuthorityConfig::default())
        .expect("the authority opens");
    authority
        .create_root(&SiteIdentity::new("Bench", "BunkerOS bench").expect("a site identity"))
        .expect("the root is created");
    let request = csr(dir.path());
    let started = Instant::now();
    for _ in 0..signatures {
        authority
            .issue(&request, Profile::Service, None, "bench")
            .expect("issued");
    }
    let issued = rate(signatures, started.elapsed());
    println!(
        "  measured  Authority::issue (checks, TPM signature, log fsync, store) {issued:8.1} /s   ratio {:.2} of the TPM rate (goal >= 0.90)",
        issued / raw
    );

    let before = rss_kib();
    let started = Instant::now();
    for _ in 0..certs {
        authority
            .issue(&request, Profile::Service, None, "bench")
            .expect("issued");
    }
    let after = rss_kib();
    println!(
        "  memory    RSS {:.1} MiB before, {:.1} MiB after {certs} more certificates ({:.0} B each; {:.0} s)",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before) * 1024) as f64 / certs.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    let status = authority
        .status()
        .expect("the authority reports its status");
    println!(
        "  log       {} entries in the transparency log",
        status.log_size
    );
}
