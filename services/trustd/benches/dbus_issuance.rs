//! `make bench` for trustd's D-Bus edge: certificates issued per second through
//! `org.bunkeros.Trust1` (a real `dbus-daemon`, trustd's own interface object, the client proxy
//! `bunkerctl` uses), against the raw TPM signature rate measured in the same run on the same
//! software TPM (interleaved, see `common`). Only the ratio travels between machines.
//!
//! One caller waits for each reply before the next call (what `bunkerctl ca issue` in a loop
//! does); several callers at once show what the daemon sustains. For reading the difference:
//! the bus round trip alone (`org.freedesktop.DBus.Peer.Ping` to trustd), and the lookup of the
//! caller's uid that trustd makes on every call.
//!
//! Environment: BENCH_SIGNATURES (default 300) operations per rate, BENCH_CLIENTS (default 4)
//! concurrent callers.

mod common;

use std::sync::Arc;
use std::time::Instant;

use appliance::dbus::contracts::{TRUST, Trust1Proxy};
use appliance::dbus::testbus::TestBus;
use common::{Lab, SITE, env_count, openssl_csr, same_run};
use trustd::dbus::Trust1;
use trustd::metrics::TrustMetrics;

fn main() {
    let count = env_count("BENCH_SIGNATURES", 300);
    let clients = env_count("BENCH_CLIENTS", 4);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let lab = Lab::start();
    let bus = TestBus::start().expect("dbus-daemon starts (Debian package dbus-daemon)");
    let authority = Arc::new(lab.authority());
    let request = openssl_csr(lab.dir.path(), &format!("api.{SITE}"));
    let (_served, client) = runtime.block_on(async {
        let served = appliance::dbus::serve(
            &bus.bus(),
            TRUST.bus_name,
            TRUST.object_path,
            Trust1::new(authority, TrustMetrics::default()),
        )
        .await
        .expect("Trust1 is served");
        let client = appliance::dbus::connect(&bus.bus())
            .await
            .expect("a client connection");
        (served, client)
    });
    let trust = runtime.block_on(async {
        let trust = Trust1Proxy::new(&client).await.expect("a Trust1 proxy");
        trust
            .issue(&request, "service", "")
            .await
            .expect("warm-up issuance");
        trust
    });

    println!(
        "trustd D-Bus issuance benchmark: swtpm, dbus-daemon, release build, {count} operations \
         per rate, raw TPM signatures interleaved"
    );
    same_run(
        count,
        25,
        |n| lab.raw_signatures(n),
        |n| {
            runtime.block_on(async {
                for _ in 0..n {
                    trust
                        .issue(&request, "service", "")
                        .await
                        .expect("issued over D-Bus");
                }
            })
        },
    )
    .print("Issue over D-Bus, one caller");
    same_run(
        count,
        25 * clients,
        |n| lab.raw_signatures(n),
        |n| {
            runtime.block_on(async {
                let mut calls = tokio::task::JoinSet::new();
                for worker in 0..clients {
                    let share = n / clients + usize::from(worker < n % clients);
                    let (trust, request) = (trust.clone(), request.clone());
                    calls.spawn(async move {
                        for _ in 0..share {
                            trust
                                .issue(&request, "service", "")
                                .await
                                .expect("issued over D-Bus");
                        }
                    });
                }
                while let Some(done) = calls.join_next().await {
                    done.expect("a caller finished");
                }
            })
        },
    )
    .print(&format!("Issue over D-Bus, {clients} callers at once"));
    println!("  (goal: issuance >= 0.90 of the raw TPM rate)");

    let pings = 1000;
    let elapsed = runtime.block_on(async {
        let peer = zbus::fdo::PeerProxy::builder(&client)
            .destination(TRUST.bus_name)
            .and_then(|b| b.path(TRUST.object_path))
            .expect("a peer proxy")
            .build()
            .await
            .expect("a peer proxy");
        let started = Instant::now();
        for _ in 0..pings {
            peer.ping().await.expect("trustd answers a ping");
        }
        started.elapsed()
    });
    println!(
        "  context   bus round trip to trustd (Peer.Ping): {:.3} ms",
        elapsed.as_secs_f64() * 1000.0 / pings as f64
    );
    // What trustd does on every call to learn who asked (dbus.rs `caller_uid`).
    let elapsed = runtime.block_on(async {
        let me = client.unique_name().expect("a unique name").to_owned();
        let started = Instant::now();
        for _ in 0..pings {
            zbus::fdo::DBusProxy::new(&client)
                .await
                .expect("a bus proxy")
                .get_connection_unix_user(me.clone().into())
                .await
                .expect("the bus knows our uid");
        }
        started.elapsed()
    });
    println!(
        "  context   caller-uid lookup as Issue does it (DBusProxy::new + \
         GetConnectionUnixUser): {:.3} ms",
        elapsed.as_secs_f64() * 1000.0 / pings as f64
    );
}
