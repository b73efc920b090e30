//! `make bench` for trustd's D-Bus edge: certificates issued per second through
//! `org.bunkeros.Trust1` (a real `dbus-daemon`, trustd's own interface object, the client proxy
//! `bunkerctl` uses), against the raw TPM signature rate measured in the same run on the same
//! software TPM. Only the ratio travels between machines.
//!
//! Environment: BENCH_SIGNATURES (default 300) operations per rate.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use appliance::dbus::contracts::{TRUST, Trust1Proxy};
use appliance::dbus::testbus::TestBus;
use appliance::state::StateDir;
use appliance::testtpm::Swtpm;
use trustd::authority::{Authority, AuthorityConfig};
use trustd::ca::{DnsName, IssuancePolicy, SiteIdentity};
use trustd::ca_key::CaKey;
use trustd::dbus::Trust1;
use trustd::metrics::TrustMetrics;
use trustd::tpm::{PolicyMode, TpmCaKey, TpmConnection};

const SITE: &str = "bench.bunker.test";

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// A P-256 CSR (PEM) for a service name under the site, made by openssl as a client would.
fn csr(dir: &std::path::Path) -> String {
    let out = dir.join("bench.csr");
    let made = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-keyout",
            "/dev/null",
            "-subj",
            &format!("/CN=api.{SITE}"),
        ])
        .args(["-addext", &format!("subjectAltName=DNS:api.{SITE}"), "-out"])
        .arg(&out)
        .output()
        .expect("openssl runs (Debian package openssl)");
    assert!(made.status.success(), "openssl made no CSR");
    std::fs::read_to_string(out).expect("the CSR was written")
}

fn main() {
    let count = std::env::var("BENCH_SIGNATURES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300usize);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(count));
}

async fn run(count: usize) {
    let tpm = Swtpm::start().expect("swtpm starts (Debian package swtpm)");
    let bus = TestBus::start().expect("dbus-daemon starts (Debian package dbus-daemon)");
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let state = StateDir::new(dir.path().join("trustd")).expect("a state directory");
    let connection = Arc::new(TpmConnection::open_tcti(&tpm.tcti()).expect("the TPM answers"));
    let mode = PolicyMode::from_current_pcrs(&connection, &[7, 11]).expect("PCRs read");
    let key = Arc::new(TpmCaKey::create(connection, &state, mode).expect("CA key created"));

    println!(
        "trustd D-Bus issuance benchmark: swtpm, dbus-daemon, release build, {count} operations per rate"
    );
    let message = b"bunkeros bench message";
    key.sign(message).expect("warm-up signature");
    let started = Instant::now();
    for _ in 0..count {
        key.sign(message).expect("the TPM signs");
    }
    let raw = rate(count, started.elapsed());
    println!("  baseline  raw TPM ECDSA P-256 signatures (policy session each)     {raw:8.1} /s");

    let policy = IssuancePolicy::for_site(DnsName::parse(SITE).expect("a valid site domain"));
    let authority = Authority::open(key, state, policy, AuthorityConfig::default())
        .expect("the authority opens");
    authority
        .create_root(&SiteIdentity::new("Bench", "BunkerOS bench").expect("a site identity"))
        .expect("the root is created");
    let _served = appliance::dbus::serve(
        &bus.bus(),
        TRUST.bus_name,
        TRUST.object_path,
        Trust1::new(Arc::new(authority), TrustMetrics::default()),
    )
    .await
    .expect("Trust1 is served");
    let client = appliance::dbus::connect(&bus.bus())
        .await
        .expect("a client connection");
    let trust = Trust1Proxy::new(&client).await.expect("a Trust1 proxy");
    let request = csr(dir.path());
    trust
        .issue(&request, "service", "")
        .await
        .expect("warm-up issuance");
    let started = Instant::now();
    for _ in 0..count {
        trust
            .issue(&request, "service", "")
            .await
            .expect("issued over D-Bus");
    }
    let issued = rate(count, started.elapsed());
    println!(
        "  measured  Issue over D-Bus (bus round trip, checks, TPM, log fsync)  {issued:8.1} /s   ratio {:.2} of the TPM rate (goal >= 0.90)",
        issued / raw
    );
}
