//! The miner actions as cgminer API command sequences, against a small in-test cgminer that
//! keeps a pool list and answers like the real one (`addpool`, `switchpool`, `removepool`
//! refusing the active pool, renumbering after a removal). These move to the simulator
//! (`hardware/sim`, with its firmware personalities and privileged-command refusal) when it
//! lands; the simulator also proves the miner then really mines on the sanctioned pool.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appliance::audit_log::{AuditLog, VerifyOptions, verify_file};
use minerd::cgminer::{ClientConfig, FirmwareKind};
use minerd::hijack::SanctionedPool;
use minerd::operations::{
    ActionError, BulkLimits, MinerAction, MinerTarget, run_on_miners, set_pools::set_pools,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const HUNG: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
struct Pool {
    url: String,
    user: String,
}

#[derive(Debug)]
struct Miner {
    description: &'static str,
    pools: Vec<Pool>,
    active: usize,
    deny_writes: bool,
    commands: Vec<String>,
}

fn status(kind: &str, code: u32, msg: &str, description: &str) -> Value {
    json!([{"STATUS": kind, "When": 1_700_000_000, "Code": code, "Msg": msg,
            "Description": description}])
}

impl Miner {
    fn answer(&mut self, request: &Value) -> Value {
        let command = request["command"].as_str().unwrap_or_default().to_owned();
        let parameter = request["parameter"].as_str().unwrap_or_default().to_owned();
        self.commands.push(match parameter.as_str() {
            "" => command.clone(),
            p => format!("{command}|{p}"),
        });
        let d = self.description;
        let privileged = !matches!(command.as_str(), "pools" | "version" | "summary");
        if privileged && self.deny_writes {
            let msg = format!("Access denied to '{command}' command");
            return json!({"STATUS": status("E", 45, &msg, d), "id": 1});
        }
        let index = parameter.parse::<usize>().ok();
        match command.as_str() {
            "pools" => self.pools_reply(),
            "addpool" => {
                let fields: Vec<&str> = parameter.split(',').collect();
                self.pools.push(Pool {
                    url: fields[0].into(),
                    user: fields[1].into(),
                });
                let msg = format!("Added pool {}: '{}'", self.pools.len() - 1, fields[0]);
                json!({"STATUS": status("S", 55, &msg, d), "id": 1})
            }
            "switchpool" if index.is_some_and(|i| i < self.pools.len()) => {
                self.active = index.unwrap();
                json!({"STATUS": status("S", 27, "Switching to pool", d), "id": 1})
            }
            "removepool" if index == Some(self.active) => {
                json!({"STATUS": status("E", 67, "Cannot remove active pool", d), "id": 1})
            }
            "removepool" if index.is_some_and(|i| i < self.pools.len()) => {
                let i = index.unwrap();
                self.pools.remove(i);
                if self.active > i {
                    self.active -= 1;
                }
                json!({"STATUS": status("S", 68, "Removed pool", d), "id": 1})
            }
            "restart" => json!({"STATUS": status("S", 0, "Restart", d), "id": 1}),
            "pause" | "resume" if d.starts_with("BOSminer") => {
                let key = command.to_ascii_uppercase();
                json!({"STATUS": status("S", 0, &command, d), key: [{}], "id": 1})
            }
            _ => json!({"STATUS": status("E", 14, "Invalid command", d), "id": 1}),
        }
    }

    fn pools_reply(&self) -> Value {
        let pools: Vec<Value> = self
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({"POOL": i, "URL": p.url, "User": p.user, "Status": "Alive",
                       "Priority": i, "Stratum Active": i == self.active,
                       "Accepted": 0, "Rejected": 0, "Stale": 0})
            })
            .collect();
        let msg = format!("{} Pool(s)", pools.len());
        json!({"STATUS": status("S", 7, &msg, self.description), "POOLS": pools, "id": 1})
    }
}

/// Serves `miner` on a loopback port: one request per connection, reply, NUL, close.
async fn serve(miner: Miner) -> (SocketAddr, Arc<Mutex<Miner>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let miner = Arc::new(Mutex::new(miner));
    let shared = Arc::clone(&miner);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let miner = Arc::clone(&shared);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                // The client sends one JSON object and no newline, and keeps the socket open.
                let request = loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                        break v;
                    }
                };
                let reply = miner.lock().unwrap().answer(&request);
                let mut bytes = reply.to_string().into_bytes();
                bytes.push(0);
                let _ = stream.write_all(&bytes).await;
            });
        }
    });
    (addr, miner)
}

fn miner(description: &'static str, pools: &[(&str, &str)], active: usize) -> Miner {
    Miner {
        description,
        pools: pools
            .iter()
            .map(|(url, user)| Pool {
                url: (*url).into(),
                user: (*user).into(),
            })
            .collect(),
        active,
        deny_writes: false,
        commands: Vec::new(),
    }
}

const PROXY_A: &str = "stratum+tcp://127.0.0.1:3333";
const PROXY_B: &str = "stratum+tcp://127.0.0.1:3334";
const USER: &str = "client7.m1";

fn sanctioned() -> Vec<SanctionedPool> {
    [PROXY_A, PROXY_B]
        .iter()
        .map(|url| SanctionedPool {
            url: (*url).into(),
            user: USER.into(),
        })
        .collect()
}

fn client() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

#[tokio::test]
async fn set_pools_replaces_a_hijacked_list_and_verifies_it() {
    let (addr, state) = serve(miner(
        "cgminer 4.11.1",
        &[
            ("stratum+tcp://evil.example:4444", "thief.1"),
            (PROXY_A, USER),
        ],
        0,
    ))
    .await;
    let done = tokio::time::timeout(HUNG, set_pools(addr, &client(), &sanctioned(), "x"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((done.added, done.removed), (1, 1));
    assert_eq!(done.switched_to.as_deref(), Some(PROXY_A));
    let m = state.lock().unwrap();
    let urls: Vec<&str> = m.pools.iter().map(|p| p.url.as_str()).collect();
    assert_eq!(urls, [PROXY_A, PROXY_B]);
    assert_eq!(m.pools[m.active].url, PROXY_A);
    assert_eq!(
        m.commands,
        [
            "pools",
            &format!("addpool|{PROXY_B},{USER},x"),
            "pools",
            "switchpool|1",
            // set_pools waits for the switch to take before removing the old pool
            "pools",
            "removepool|0",
            "pools"
        ]
    );
}

#[tokio::test]
async fn set_pools_on_a_clean_miner_only_reads() {
    let (addr, state) = serve(miner(
        "bmminer 1.0.0",
        &[(PROXY_A, USER), (PROXY_B, USER)],
        0,
    ))
    .await;
    let done = set_pools(addr, &client(), &sanctioned(), "x")
        .await
        .unwrap();
    assert_eq!((done.added, done.removed, done.switched_to), (0, 0, None));
    assert_eq!(state.lock().unwrap().commands, ["pools", "pools", "pools"]);
}

#[tokio::test]
async fn a_changed_user_on_a_sanctioned_url_is_replaced() {
    let (addr, state) = serve(miner("cgminer 4.11.1", &[(PROXY_A, "someone.else")], 0)).await;
    set_pools(addr, &client(), &sanctioned()[..1], "x")
        .await
        .unwrap();
    let m = state.lock().unwrap();
    assert_eq!(m.pools.len(), 1);
    assert_eq!(m.pools[0].user, USER);
}

#[tokio::test]
async fn a_miner_that_refuses_writes_is_access_denied_and_unchanged() {
    let mut m = miner(
        "cgminer 4.11.1",
        &[("stratum+tcp://evil.example:4444", "thief")],
        0,
    );
    m.deny_writes = true;
    let (addr, state) = serve(m).await;
    let err = set_pools(addr, &client(), &sanctioned(), "x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("access denied"), "{err}");
    assert_eq!(state.lock().unwrap().pools.len(), 1);
}

#[tokio::test]
async fn sleep_and_wake_are_pause_and_resume_on_bosminer_only() {
    let (bos, bos_state) = serve(miner("BOSminer+ 0.2.0", &[(PROXY_A, USER)], 0)).await;
    let (bm, bm_state) = serve(miner("bmminer 1.0.0", &[(PROXY_A, USER)], 0)).await;
    let target = |api, firmware| MinerTarget {
        id: "m".into(),
        api,
        firmware,
    };
    let bos_target = target(bos, FirmwareKind::Bosminer);
    MinerAction::Sleep
        .perform(&bos_target, &client())
        .await
        .unwrap();
    MinerAction::Wake
        .perform(&bos_target, &client())
        .await
        .unwrap();
    assert_eq!(bos_state.lock().unwrap().commands, ["pause", "resume"]);

    let err = MinerAction::Sleep
        .perform(&target(bm, FirmwareKind::Bmminer), &client())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ActionError::Unsupported { what: "sleep", .. }
    ));
    let err = MinerAction::SetPowerTarget { watts: 2000 }
        .perform(&bos_target, &client())
        .await
        .unwrap_err();
    assert!(matches!(err, ActionError::Unsupported { .. }));
    assert!(bm_state.lock().unwrap().commands.is_empty(), "nothing sent");
}

#[tokio::test]
async fn a_bulk_reboot_reaches_every_live_miner_and_is_audited() {
    let mut addrs = Vec::new();
    let mut states = Vec::new();
    for _ in 0..3 {
        let (addr, state) = serve(miner("cgminer 4.11.1", &[(PROXY_A, USER)], 0)).await;
        addrs.push(addr);
        states.push(state);
    }
    // A miner that is switched off: nothing listens on its port.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    addrs.push(dead_addr);
    let targets: Vec<MinerTarget> = addrs
        .iter()
        .map(|a| MinerTarget {
            id: a.to_string(),
            api: *a,
            firmware: FirmwareKind::Cgminer,
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let (log, _) = AuditLog::open(&path, "minerd").await.unwrap();
    let audit = Arc::new(tokio::sync::Mutex::new(log));
    let run = run_on_miners(
        "operator:alice",
        MinerAction::Reboot,
        targets,
        BulkLimits::default(),
        client(),
        &audit,
        None,
    );
    let report = tokio::time::timeout(HUNG, run).await.unwrap().unwrap();
    assert_eq!((report.done, report.failed), (3, 1));
    let failed = report.results.iter().find(|r| !r.ok).unwrap();
    assert_eq!(failed.target, dead_addr.to_string());
    assert!(failed.sentence.contains("refused"), "{}", failed.sentence);
    for state in &states {
        assert_eq!(state.lock().unwrap().commands, ["restart"]);
    }
    let verified = verify_file(&path, &VerifyOptions::default()).await.unwrap();
    assert_eq!(verified.records, 5);
}

#[tokio::test]
async fn the_audit_log_never_holds_the_pool_password() {
    let (addr, _state) = serve(miner("cgminer 4.11.1", &[(PROXY_A, USER)], 0)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let (log, _) = AuditLog::open(&path, "minerd").await.unwrap();
    let audit = Arc::new(tokio::sync::Mutex::new(log));
    let action = MinerAction::SetPools {
        pools: sanctioned(),
        password: "s3cret-pool-pass".into(),
    };
    let target = MinerTarget {
        id: "m1".into(),
        api: addr,
        firmware: FirmwareKind::Cgminer,
    };
    let report = run_on_miners(
        "operator:alice",
        action,
        vec![target],
        BulkLimits::default(),
        client(),
        &audit,
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.done, 1, "{:?}", report.results);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(PROXY_B));
    assert!(!text.contains("s3cret-pool-pass"));
}

#[test]
fn curtailment_actions_become_miner_actions() {
    use minerd::curtailment::CurtailAction;
    let sleep = CurtailAction::Sleep { id: "m".into() };
    assert_eq!(MinerAction::from(&sleep), MinerAction::Sleep);
    let target = CurtailAction::SetPowerTarget {
        id: "m".into(),
        watts: 2599.6,
    };
    assert_eq!(
        MinerAction::from(&target),
        MinerAction::SetPowerTarget { watts: 2600 }
    );
}
