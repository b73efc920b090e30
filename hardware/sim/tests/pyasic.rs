//! pyasic, the third-party miner library, reads the simulated miners like real ones: it
//! identifies make, model and firmware from the cgminer API alone, and its get_data() reads
//! hashrate, boards, temperatures, fans, power and pools that match the miners' ground truth.
//! pyasic lives in build/venv (`make pyasic-venv`); the reader is tests/pyasic_read.py.

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use common::{ANSWER_BOUND, eventually};
use serde_json::Value;
use sim::fleet::{Fleet, FleetSpec, MinerView, ModelMix, Personality};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn venv_python() -> PathBuf {
    let python = repo_root().join("build/venv/bin/python");
    assert!(
        python.exists(),
        "pyasic is not installed: {} is missing; run `make pyasic-venv` (make test-rust does it)",
        python.display()
    );
    python
}

/// Runs the reader over the addresses; one JSON object per miner.
async fn pyasic_read(ips: &[Ipv4Addr]) -> Vec<Value> {
    let script = repo_root().join("hardware/sim/tests/pyasic_read.py");
    let mut command = tokio::process::Command::new(venv_python());
    command
        .arg(script)
        .args(ips.iter().map(Ipv4Addr::to_string));
    command.kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("pyasic finishes within 60 s")
        .expect("python runs");
    assert!(
        output.status.success(),
        "pyasic_read.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn close(a: f64, b: f64, relative: f64) -> bool {
    (a - b).abs() <= relative * b.abs().max(1e-9)
}

fn assert_identity(read: &Value, class: &str, model: &str, firmware: &str) {
    assert_eq!(read["identified"], true, "{read}");
    assert_eq!(read["class"], class, "{read}");
    assert_eq!(read["make"], "AntMiner", "{read}");
    assert_eq!(read["model"], model, "{read}");
    assert_eq!(read["firmware"], firmware, "{read}");
}

fn assert_hashrate_and_pools(read: &Value, view: &MinerView) {
    let ths = read["hashrate_ths"].as_f64().expect("hashrate");
    assert!(view.hashrate_ths > 0.0);
    assert!(
        close(ths, view.hashrate_ths, 0.03),
        "{ths} vs {}",
        view.hashrate_ths
    );
    let pools = read["pools"].as_array().expect("pools");
    assert_eq!(pools.len(), view.pools.len(), "{read}");
    for (read, truth) in pools.iter().zip(&view.pools) {
        assert_eq!(read["url"], truth.url.as_str());
        assert_eq!(read["user"], truth.user.as_str());
        assert_eq!(read["active"], truth.active);
    }
}

/// Board hashrates, chip counts and the two temperatures of each board (pyasic and the
/// firmware disagree on which Antminer key is chip and which PCB, so compared as a pair;
/// within the firmware's whole-degree rounding).
fn assert_boards(read: &Value, view: &MinerView, chips: u64) {
    let boards = read["hashboards"].as_array().expect("hashboards");
    assert_eq!(boards.len(), view.board_hashrate_ths.len());
    for (b, board) in boards.iter().enumerate() {
        assert_eq!(board["missing"], false);
        assert_eq!(board["chips"], chips);
        let ths = board["hashrate_ths"].as_f64().unwrap();
        assert!(close(ths, view.board_hashrate_ths[b], 0.03), "board {b}");
        let mut read_temps = [
            board["chip_temp"].as_f64().unwrap(),
            board["temp"].as_f64().unwrap(),
        ];
        let mut true_temps = [view.chip_temp_c[b], view.pcb_temp_c[b]];
        read_temps.sort_by(f64::total_cmp);
        true_temps.sort_by(f64::total_cmp);
        for (r, t) in read_temps.iter().zip(true_temps) {
            assert!(
                (r - t).abs() <= 1.0,
                "board {b}: {read_temps:?} vs {true_temps:?}"
            );
        }
    }
}

fn fans(read: &Value) -> Vec<u64> {
    read["fans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyasic_identifies_and_reads_every_personality() {
    venv_python();
    let pool = common::test_pool().await;
    let mut fleets = Vec::new();
    let mut ips = Vec::new();
    for (i, personality) in Personality::ALL.into_iter().enumerate() {
        let ip = Ipv4Addr::new(127, 1, 50, 2 + i as u8);
        let mut spec = FleetSpec::new(ip, 1);
        spec.models = ModelMix::only(personality);
        spec.pools = common::sanctioned(std::slice::from_ref(&pool));
        spec.hash_budget = 2_000.0;
        let fleet = Fleet::start(spec).await.unwrap();
        let miner = fleet.miner(ip).unwrap();
        eventually("mining", ANSWER_BOUND, || {
            miner.view().active_pool().is_some()
        })
        .await;
        fleets.push((personality, fleet));
        ips.push(ip);
    }
    let reads = pyasic_read(&ips).await;
    assert_eq!(reads.len(), ips.len());
    for ((personality, fleet), (ip, read)) in fleets.iter().zip(ips.iter().zip(&reads)) {
        let view = fleet.miner(*ip).unwrap().view();
        match personality {
            Personality::S9Bmminer => {
                assert_identity(read, "BMMinerS9", "S9 (Stock)", "Stock");
                assert_hashrate_and_pools(read, &view);
                assert_eq!(read["expected_hashrate_ths"], 13.5);
                assert_boards(read, &view, 63);
                // A real S9 reports its two fans in slots 3 and 6; pyasic reads slots 1 and 2.
                assert_eq!(fans(read), vec![0, 0]);
            }
            Personality::S19ProBmminer => {
                assert_identity(read, "BMMinerS19Pro", "S19 Pro (Stock)", "Stock");
                assert_hashrate_and_pools(read, &view);
                assert_eq!(read["expected_hashrate_ths"], 110.0);
                let truth: Vec<u64> = view.fan_rpm.iter().map(|f| u64::from(*f)).collect();
                assert_eq!(fans(read), truth);
                // pyasic reads modern Antminer boards only from the web UI's stats.cgi
                let boards = read["hashboards"].as_array().unwrap();
                assert!(boards.iter().all(|b| b["missing"] == true));
            }
            Personality::S9Bosminer => {
                assert_identity(read, "BOSMinerS9", "S9 (BOS+)", "BOS+");
                assert_hashrate_and_pools(read, &view);
                assert_boards(read, &view, 63);
                let truth: Vec<u64> = view.fan_rpm.iter().map(|f| u64::from(*f)).collect();
                assert_eq!(fans(read), truth);
                let watts = read["wattage"].as_f64().unwrap();
                assert!((watts - view.power_w).abs() <= 1.0, "{watts} W");
                assert_eq!(read["wattage_limit"].as_f64(), Some(view.power_target_w));
            }
            Personality::S19jProBosminer => {
                // identified over the cgminer API; its data come from BOS+ gRPC (not simulated)
                assert_identity(read, "BOSMinerS19jPro", "S19j Pro (BOS+)", "BOS+");
                assert!(read["data_error"].is_string(), "{read}");
            }
            Personality::S19jProLuxos => {
                assert_identity(read, "LUXMinerS19jPro", "S19j Pro (LuxOS)", "LuxOS");
                assert_eq!(read["expected_hashrate_ths"], 104.0);
                assert_boards(read, &view, 126);
                let truth: Vec<u64> = view.fan_rpm.iter().map(|f| u64::from(*f)).collect();
                assert_eq!(fans(read), truth);
                let watts = read["wattage"].as_f64().unwrap();
                assert!((watts - view.power_w).abs() <= 1.0, "{watts} W");
                assert_eq!(read["wattage_limit"].as_f64(), Some(view.power_target_w));
                // pyasic 0.79's LuxOS hashrate parser returns before reading the summary, so
                // its total is the boards' sum
                assert_hashrate_and_pools(read, &view);
            }
            Personality::Cgminer => {
                // plain cgminer carries no make marker pyasic knows; it must not be misidentified
                assert_eq!(read["identified"], false, "{read}");
            }
        }
    }
    for (_, fleet) in fleets {
        fleet.stop().await;
    }
    pool.stop().await;
}

/// Runs one pyasic control call on a miner; pyasic reports whether it worked.
async fn pyasic_act(ip: Ipv4Addr, action: &[&str]) {
    let script = repo_root().join("hardware/sim/tests/pyasic_read.py");
    let mut command = tokio::process::Command::new(venv_python());
    command
        .arg(script)
        .arg("--act")
        .arg(ip.to_string())
        .args(action);
    command.kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("pyasic finishes within 60 s")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(r#""ok": true"#),
        "pyasic {action:?}: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyasic_sets_the_power_limit_and_curtails_a_luxos_miner() {
    venv_python();
    let pool = common::test_pool().await;
    let ip = Ipv4Addr::new(127, 1, 51, 2);
    let mut spec = FleetSpec::new(ip, 1);
    spec.models = ModelMix::only(Personality::S19jProLuxos);
    spec.pools = common::sanctioned(std::slice::from_ref(&pool));
    spec.hash_budget = 2_000.0;
    let fleet = Fleet::start(spec).await.unwrap();
    let miner = fleet.miner(ip).unwrap();
    eventually("mining", ANSWER_BOUND, || {
        miner.view().active_pool().is_some()
    })
    .await;
    let full = miner.view();

    // pyasic picks the highest LuxOS profile at or below the limit and sets it (profileset)
    pyasic_act(ip, &["power", "2500"]).await;
    let limited = miner.view();
    assert_eq!(limited.power_target_w, 2332.0);
    assert!(limited.power_w < full.power_w && limited.hashrate_ths < full.hashrate_ths);

    // stop_mining is LuxOS `curtail sleep`: idle power, fans on, no Stratum
    pyasic_act(ip, &["sleep"]).await;
    let asleep = miner.view();
    assert!(asleep.sleeping && asleep.hashrate_ths == 0.0);
    assert!(asleep.power_w < 150.0 && asleep.fan_rpm.iter().all(|r| *r > 0));
    eventually("off the pool", ANSWER_BOUND, || {
        miner.view().active_pool().is_none()
    })
    .await;

    pyasic_act(ip, &["wake"]).await;
    eventually("mining again", ANSWER_BOUND, || {
        miner.view().active_pool().is_some()
    })
    .await;
    assert!(!miner.view().sleeping);
    fleet.stop().await;
    pool.stop().await;
}
