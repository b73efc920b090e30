//! The real `minerd` over a simulated site: two owners' fleets (127.60.0.x for client-a,
//! 127.60.1.x for client-b), each owner mining on its own test pool through minerd's proxy, a
//! private bus with a stand-in sited. What an operator checks from the outside: READY=1 with a
//! readable status line; miners discovered and polled; shares flowing miners → proxy → pools
//! and accounted per owner; Mining1 answering Status, Miners, Miner, Scan and refusing
//! nonsense; a reboot of two miners as a job with progress signals, finished, in the audit
//! log with the caller as actor; `minerd_` series on the metrics endpoint; kill -9 and a
//! restart with the inventory and the share accounting intact; SIGTERM → STOPPING=1, exit 0.

mod daemon_support;

use std::future::poll_fn;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use appliance::audit_log::{VerifyOptions, verify_file};
use appliance::dbus::contracts::{Mining1Proxy, SiteState, mining_errors};
use appliance::dbus::testbus::TestBus;
use appliance::dbus::testsite::StandInSite;
use daemon_support::{CONVERGE, eventually, free_port, minerd};
use serde_json::Value;
use sim::fleet::{Fault, Fleet, FleetSpec, SimPool, raise_fd_limit};
use sim::pool::{PoolSpec, TestPool};
use zbus::export::futures_core::Stream;

const PER_OWNER: usize = 4;
/// Tiny share difficulty: shares come every few hundred milliseconds at a small hash budget.
const DIFFICULTY: f64 = 1.0 / 4_194_304.0;

async fn pool() -> TestPool {
    let mut spec = PoolSpec::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    spec.difficulty = DIFFICULTY;
    spec.job_interval = Duration::from_millis(700);
    TestPool::start(spec).await.unwrap()
}

async fn fleet(first: Ipv4Addr, owner: &str, proxy_url: &str) -> Fleet {
    let mut spec = FleetSpec::new(first, PER_OWNER);
    spec.pools = vec![SimPool {
        url: proxy_url.to_owned(),
        user: format!("{owner}.{{ip-with-dashes}}"),
        password: "x".into(),
    }];
    spec.hash_budget = 20_000.0;
    spec.restart_time = Duration::from_secs(2);
    Fleet::start(spec).await.unwrap()
}

fn config(pool_a: &str, pool_b: &str, proxy_port: u16, metrics: SocketAddr) -> String {
    format!(
        r#"
[[layout.range]]
cidr = "127.60.0.0/24"
owner = "client-a"
location = "hall A"
[[layout.range]]
cidr = "127.60.1.0/24"
owner = "client-b"
location = "hall B"
[[layout.owner]]
name = "client-a"
identity = "{{owner}}.{{ip-dashes}}"
[[layout.owner.pools]]
url = "{pool_a}"
user = "client-a"
[[layout.owner]]
name = "client-b"
identity = "{{owner}}.{{ip-dashes}}"
[[layout.owner.pools]]
url = "{pool_b}"
user = "client-b"

[proxy]
listen = "127.0.0.1:{proxy_port}"
miners_per_upstream = 8
batch_window_ms = 3
[proxy.vardiff]
shares_per_minute = 240.0
retarget_ms = 2000
initial_difficulty = {DIFFICULTY:e}
min_difficulty = {min:e}
max_difficulty = 1.0

[sanctioned]
proxy_urls = ["stratum+tcp://127.0.0.1:{proxy_port}"]

[discovery]
deadline_ms = 1000
interval_secs = 600

[telemetry]
interval_secs = 1
deadline_ms = 800

[audit]
every_records = 10
every = 2

[operations]
concurrency = 4
per_target_deadline = 10

[metrics]
listen = "{metrics}"
"#,
        min = DIFFICULTY / 16.0
    )
}

async fn status(mining: &Mining1Proxy<'_>) -> Value {
    serde_json::from_str(&mining.status().await.unwrap()).unwrap()
}

fn owner_accepted(status: &Value, owner: &str) -> u64 {
    status["owners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["owner"] == owner)
        .and_then(|o| o["shares"]["accepted"].as_u64())
        .unwrap_or(0)
}

/// The next item of a stream (zbus exports the `Stream` trait but no combinators).
async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

fn error_name(error: &zbus::Error) -> String {
    match error {
        zbus::Error::MethodError(name, _, _) => name.as_str().to_owned(),
        other => format!("not a method error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minerd_runs_a_simulated_site_and_survives_kill_9() {
    raise_fd_limit().unwrap();
    let bus = TestBus::start().unwrap();
    let site = StandInSite::start(&bus.bus(), SiteState::Normal, "")
        .await
        .unwrap();
    let (pool_a, pool_b) = (pool().await, pool().await);
    let proxy_port = free_port();
    let proxy_url = format!("stratum+tcp://127.0.0.1:{proxy_port}");
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let fleet_a = fleet(Ipv4Addr::new(127, 60, 0, 2), "client-a", &proxy_url).await;
    let fleet_b = fleet(Ipv4Addr::new(127, 60, 1, 2), "client-b", &proxy_url).await;
    let mut minerd = minerd(
        &config(&pool_a.url(), &pool_b.url(), proxy_port, metrics),
        bus.address(),
        metrics,
    );
    minerd.start();
    let ready = minerd.wait_notify("READY=1");
    assert!(
        ready.contains("STATUS=fleet: ") && ready.contains("/8 miners up"),
        "{ready}"
    );

    let connection = appliance::dbus::connect(&bus.bus()).await.unwrap();
    let mining = Mining1Proxy::new(&connection).await.unwrap();

    // Discovered and polled: every miner up, with hashrate and power.
    // Up after a scan, polled once a poll cycle has finished: wait for both, not only the first.
    eventually("all 8 miners polled up", || async {
        let now = status(&mining).await;
        now["miners"]["up"] == 8 && now["poll"]["last_at"].is_string()
    })
    .await;
    let now = status(&mining).await;
    assert_eq!(now["miners"]["total"], 8);
    assert!(now["poll"]["last_at"].is_string(), "{now}");
    assert_eq!(now["discovery"]["found"], 8, "{now}");
    // The stand-in sited publishes a budget, and minerd follows it.
    assert_eq!(now["curtailment"]["source"], "sited", "{now}");

    // Shares flow miners → proxy → each owner's pool, and are accounted per owner.
    eventually(
        "shares accepted at both pools and in minerd's books",
        || async {
            let now = status(&mining).await;
            pool_a.stats().total.accepted > 0
                && pool_b.stats().total.accepted > 0
                && owner_accepted(&now, "client-a") > 0
                && owner_accepted(&now, "client-b") > 0
        },
    )
    .await;
    eventually("every miner hashing through the proxy", || async {
        let now = status(&mining).await;
        now["proxy"]["connected"] == 8 && now["hashrate_ths"].as_f64().unwrap_or(0.0) > 0.0
    })
    .await;

    // Miners and Miner answer from the snapshot; nonsense is refused with the contract's names.
    let a: Value = serde_json::from_str(&mining.miners("owner=client-a").await.unwrap()).unwrap();
    assert_eq!(a.as_array().unwrap().len(), PER_OWNER);
    assert!(
        a.as_array()
            .unwrap()
            .iter()
            .all(|m| m["owner"] == "client-a" && m["up"] == true)
    );
    let one: Value = serde_json::from_str(&mining.miner("127.60.1.3").await.unwrap()).unwrap();
    assert_eq!(one["owner"], "client-b");
    assert_eq!(one["proxy"]["connected"], true, "{one}");
    assert_eq!(one["proxy"]["user"], "client-b.127-60-1-3", "{one}");
    assert!(!one["pools"].as_array().unwrap().is_empty(), "{one}");
    let first_seen = one["first_seen_at"].clone();
    for (call, expected) in [
        (
            mining.miners("colour=red").await,
            mining_errors::INVALID_ARGUMENT,
        ),
        (mining.miner("127.60.9.9").await, mining_errors::NOT_FOUND),
        (
            mining.miner("not-an-ip").await,
            mining_errors::INVALID_ARGUMENT,
        ),
        (mining.job("job-999").await, mining_errors::NOT_FOUND),
        (
            mining.start_action("explode", "all", "").await,
            mining_errors::INVALID_ARGUMENT,
        ),
        (
            mining.start_action("reboot", "owner=nobody", "").await,
            mining_errors::NOT_FOUND,
        ),
    ] {
        assert_eq!(error_name(&call.unwrap_err()), expected);
    }

    // Scan now: the same 8 miners, nothing new.
    let scan: Value = serde_json::from_str(&mining.scan().await.unwrap()).unwrap();
    assert_eq!(scan["found"], 8, "{scan}");
    assert_eq!(scan["new"], 0, "{scan}");

    // A reboot of two miners: progress signals, then the finished job, then the audit log.
    let mut progress = mining.receive_job_progress().await.unwrap();
    let job = mining
        .start_action("reboot", "ip=127.60.0.2/31", "")
        .await
        .unwrap();
    let mut last = (0, 0, 0);
    while last.0 + last.1 < 2 {
        let signal = tokio::time::timeout(CONVERGE, next(&mut progress))
            .await
            .expect("JobProgress within the bound")
            .unwrap();
        let args = signal.args().unwrap();
        if args.id == job {
            last = (args.done, args.failed, args.total);
        }
    }
    assert_eq!(last, (2, 0, 2));
    eventually("the job finished", || async {
        let doc: Value = serde_json::from_str(&mining.job(&job).await.unwrap()).unwrap();
        doc["finished_at"].is_string()
    })
    .await;
    let doc: Value = serde_json::from_str(&mining.job(&job).await.unwrap()).unwrap();
    assert_eq!(
        (doc["done"].as_u64(), doc["failed"].as_u64()),
        (Some(2), Some(0)),
        "{doc}"
    );
    let untouched = fleet_a.miner(Ipv4Addr::new(127, 60, 0, 4)).unwrap().view();
    for ip in [Ipv4Addr::new(127, 60, 0, 2), Ipv4Addr::new(127, 60, 0, 3)] {
        let view = fleet_a.miner(ip).unwrap().view();
        assert!(
            view.rebooting || view.uptime_s < untouched.uptime_s,
            "{ip} was not rebooted"
        );
    }
    let audit = std::fs::read_to_string(minerd.state().join("audit.log")).unwrap();
    let reboots: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["action"] == "miner.reboot")
        .collect();
    assert!(
        reboots.len() >= 3,
        "the intent and one record per miner: {audit}"
    );
    assert!(
        reboots
            .iter()
            .all(|r| r["actor"].as_str().unwrap().starts_with("operator:")),
        "{audit}"
    );
    assert!(audit.contains("\"discovery.scan\""), "{audit}");

    // The metrics endpoint serves minerd's series.
    eventually("minerd_ series scraped", || async {
        minerd
            .metric("minerd_fleet_hashrate_terahashes")
            .is_some_and(|v| v > 0.0)
            && minerd
                .metric("minerd_owner_shares_accepted_total{owner=\"client-a\"}")
                .is_some_and(|v| v > 0.0)
    })
    .await;
    assert!(minerd.scrape().unwrap().contains("bunkeros_build_info"));

    // A miner hijacks itself: minerd finds it, alarms sited, quarantines it; the operator
    // releases it once it is clean again.
    let clean: Value = serde_json::from_str(&mining.hijacks().await.unwrap()).unwrap();
    assert_eq!(
        clean,
        Value::Array(Vec::new()),
        "a clean fleet has no findings"
    );
    let foreign = pool().await;
    let hijacked = Ipv4Addr::new(127, 60, 1, 4);
    fleet_b.miner(hijacked).unwrap().inject(Fault::SelfHijack {
        url: foreign.url(),
        user: "thief.1".into(),
    });
    eventually("the hijack found and the miner quarantined", || async {
        let found: Value = serde_json::from_str(&mining.hijacks().await.unwrap()).unwrap();
        found.as_array().unwrap().iter().any(|f| {
            f["ip"] == "127.60.1.4"
                && f["kind"] == "foreign_pool"
                && f["open"] == true
                && f["quarantined"] == true
        })
    })
    .await;
    assert!(status(&mining).await["hijacks_open"].as_u64().unwrap() >= 1);
    let alarms = site.alarms().await.unwrap();
    assert!(
        alarms
            .iter()
            .any(|a| a.key == "hijack/127.60.1.4" && a.severity.is_some()),
        "{alarms:?}"
    );
    for (call, expected) in [
        (
            mining.release("127.60.1.3", "looked at it").await,
            mining_errors::INVALID_ARGUMENT,
        ),
        (
            mining.release("127.60.1.4", " ").await,
            mining_errors::INVALID_ARGUMENT,
        ),
        (
            mining.release("127.60.9.9", "looked at it").await,
            mining_errors::NOT_FOUND,
        ),
    ] {
        assert_eq!(error_name(&call.unwrap_err()), expected);
    }
    fleet_b.miner(hijacked).unwrap().clear_faults();
    mining
        .release(
            "127.60.1.4",
            "foreign pool removed by hand, firmware reflashed",
        )
        .await
        .unwrap();
    let released: Value = serde_json::from_str(&mining.miner("127.60.1.4").await.unwrap()).unwrap();
    assert_eq!(released["state"], "active", "{released}");
    assert!(
        released["hijacks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["open"] == false),
        "{released}"
    );
    let audit = std::fs::read_to_string(minerd.state().join("audit.log")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"miner.release\"") && l.contains("\"operator:")),
        "{audit}"
    );

    // kill -9, then a restart: the inventory (first sighting) and the books survive.
    let before = status(&mining).await;
    minerd.kill();
    minerd.start();
    minerd.wait_notify("READY=1");
    let after = status(&mining).await;
    assert_eq!(after["miners"]["total"], 8, "{after}");
    for owner in ["client-a", "client-b"] {
        assert!(
            owner_accepted(&after, owner) >= owner_accepted(&before, owner),
            "{owner}: {before} then {after}"
        );
    }
    let again: Value = serde_json::from_str(&mining.miner("127.60.1.3").await.unwrap()).unwrap();
    assert_eq!(again["first_seen_at"], first_seen);
    eventually("shares flow again after the restart", || async {
        owner_accepted(&status(&mining).await, "client-b") > owner_accepted(&before, "client-b")
    })
    .await;

    // SIGTERM: STOPPING=1 and exit 0; the audit log verifies as a chain.
    assert_eq!(minerd.stop(), Some(0));
    minerd.wait_notify("STOPPING=1");
    let verified = verify_file(&minerd.state().join("audit.log"), &VerifyOptions::default())
        .await
        .unwrap();
    assert!(verified.records >= 6, "{verified:?}");
    fleet_a.stop().await;
    fleet_b.stop().await;
}
