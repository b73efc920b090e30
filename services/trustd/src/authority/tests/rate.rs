//! Issuance rate through [`Authority::issue`] against the raw TPM signature rate, measured in
//! the same run on the same swtpm (a benchmark: it prints, it asserts nothing about time).
//!
//! Run: `cargo test --release -p trustd bench_issuance -- --ignored --nocapture`.

use std::fs::File;
use std::time::Instant;

use super::*;
use crate::ca::Profile;
use crate::ca_key::CaKey as _;

const COUNT: usize = 200;
const THREADS: usize = 4;

#[test]
#[ignore = "a benchmark (make bench): run with --ignored --nocapture"]
fn bench_issuance_rate_against_raw_tpm_signatures() {
    let site = Site::start();
    let authority = site.open_root();
    // Client work (key generation, CSR encoding) is not the CA's; prepare it first.
    let requests: Vec<Vec<u8>> = (0..COUNT * 2)
        .map(|i| csr(&[&format!("bench-{i}.{SITE}")]))
        .collect();
    issue(&authority, "warm-up");

    let raw_before = raw_rate(&authority);
    let sequential = rate(COUNT, || {
        for request in &requests[..COUNT] {
            authority
                .issue(request, Profile::Service, None, "bench")
                .unwrap();
        }
    });
    let concurrent = rate(COUNT, || {
        std::thread::scope(|scope| {
            for chunk in requests[COUNT..].chunks(COUNT / THREADS) {
                let authority = &authority;
                scope.spawn(move || {
                    for request in chunk {
                        authority
                            .issue(request, Profile::Service, None, "bench")
                            .unwrap();
                    }
                });
            }
        });
    });
    let raw_after = raw_rate(&authority);
    let raw = (raw_before + raw_after) / 2.0;
    let fsync = fsync_rate(&site);

    println!(
        "raw TPM signatures (policy session): {raw:.1}/s (before {raw_before:.1}, after {raw_after:.1})"
    );
    println!(
        "Authority::issue, 1 thread:  {sequential:.1}/s = {:.0} % of raw",
        100.0 * sequential / raw
    );
    println!(
        "Authority::issue, {THREADS} threads: {concurrent:.1}/s = {:.0} % of raw",
        100.0 * concurrent / raw
    );
    println!("fdatasync of a small append in the state directory: {fsync:.1}/s");
    assert_eq!(authority.status().unwrap().issued as usize, 2 * COUNT + 1);
}

/// Operations per second of `work`, which performs `count` of them.
fn rate(count: usize, work: impl FnOnce()) -> f64 {
    let start = Instant::now();
    work();
    count as f64 / start.elapsed().as_secs_f64()
}

/// Signatures per second of the CA key alone, each in its own policy session as issuance does.
fn raw_rate(authority: &Authority) -> f64 {
    rate(COUNT, || {
        for i in 0..COUNT {
            authority.key.sign(format!("bench {i}").as_bytes()).unwrap();
        }
    })
}

/// What the disk under the state directory allows for durable appends, for reading the other
/// figures: issuance flushes twice (the serial reservation and the log append).
fn fsync_rate(site: &Site) -> f64 {
    use std::io::Write as _;
    let path = site.state.path().join("fsync-probe");
    let mut file = File::create(&path).unwrap();
    let rate = rate(COUNT, || {
        for _ in 0..COUNT {
            file.write_all(&[0u8; 1024]).unwrap();
            file.sync_data().unwrap();
        }
    });
    std::fs::remove_file(path).unwrap();
    rate
}
