//! `make bench` for trustd: certificate issuance measured against the raw TPM signature rate in
//! the same run, on the same software TPM (see `common` for how the two are interleaved).
//!
//! Baseline: ECDSA P-256 signatures by the CA key, one policy session each — the physical limit,
//! since every certificate costs exactly one. Measured: `Authority::issue` (CSR checks, a serial
//! from the durably reserved block, the TPM signature, the transparency-log append with
//! `fdatasync`, the store row), from one caller and from several at once, with the CPU time
//! each costs here and in swtpm. Then trustd's memory while it issues many more certificates,
//! and the comparison once more at the end: does issuance slow as the store and log grow?
//!
//! Environment: BENCH_SIGNATURES (default 300) operations per rate, BENCH_CLIENTS (default 4)
//! concurrent callers, BENCH_CERTS (default 5000; the issue asks for 100000 — about a quarter of
//! an hour here) for the memory figure.

mod common;

use std::time::Instant;

use common::{CpuUse, Lab, SITE, env_count, openssl_csr, rss_kib, same_run};
use trustd::authority::Authority;
use trustd::ca::Profile;

fn issue(authority: &Authority, request: &[u8], count: usize) {
    for _ in 0..count {
        authority
            .issue(request, Profile::Service, None, "bench")
            .expect("issued");
    }
}

fn main() {
    let signatures = env_count("BENCH_SIGNATURES", 300);
    let clients = env_count("BENCH_CLIENTS", 4);
    let certs = env_count("BENCH_CERTS", 5000);
    let lab = Lab::start();
    let authority = lab.authority();
    let request = openssl_csr(lab.dir.path(), &format!("api.{SITE}")).into_bytes();
    issue(&authority, &request, 1);

    println!(
        "trustd issuance benchmark: swtpm, release build, {signatures} operations per rate, raw \
         TPM signatures interleaved"
    );
    let swtpm = lab.tpm.pid();
    let (mut raw_cpu, mut issue_cpu) = (CpuUse::default(), CpuUse::default());
    same_run(
        signatures,
        25,
        |n| raw_cpu.add(swtpm, || lab.raw_signatures(n)),
        |n| issue_cpu.add(swtpm, || issue(&authority, &request, n)),
    )
    .print("Authority::issue, one caller");
    same_run(
        signatures,
        25 * clients,
        |n| lab.raw_signatures(n),
        |n| {
            std::thread::scope(|scope| {
                for worker in 0..clients {
                    let share = n / clients + usize::from(worker < n % clients);
                    let (authority, request) = (&authority, &request);
                    scope.spawn(move || issue(authority, request, share));
                }
            });
        },
    )
    .print(&format!("Authority::issue, {clients} callers at once"));
    println!("  (goal: issuance >= 0.90 of the raw TPM rate)");
    raw_cpu.print("raw TPM signature", signatures);
    issue_cpu.print("Authority::issue", signatures);

    memory(&authority, &request, certs);
    // Does issuance slow down as the store and the log grow? The same comparison again.
    same_run(
        signatures,
        25,
        |n| lab.raw_signatures(n),
        |n| issue(&authority, &request, n),
    )
    .print(&format!("Authority::issue, one caller, after {certs} more"));
}

/// RSS while `certs` more certificates are issued, at five checkpoints, with the issuance
/// rate of each stretch (a store or log that slows as it grows shows here).
fn memory(authority: &Authority, request: &[u8], certs: usize) {
    let before = rss_kib();
    let first = authority.status().expect("status").log_size;
    println!(
        "  memory    RSS {:.1} MiB with {first} certificates issued",
        before as f64 / 1024.0
    );
    let stretch = certs.div_ceil(5);
    let mut done = 0;
    while done < certs {
        let n = stretch.min(certs - done);
        let started = Instant::now();
        issue(authority, request, n);
        done += n;
        let rss = rss_kib();
        println!(
            "            RSS {:.1} MiB after {done} more ({:+.0} B per certificate so far; this \
             stretch {:.1} /s)",
            rss as f64 / 1024.0,
            (rss as f64 - before as f64) * 1024.0 / done as f64,
            n as f64 / started.elapsed().as_secs_f64()
        );
    }
    let status = authority.status().expect("status");
    println!("  log       {} entries", status.log_size);
}
