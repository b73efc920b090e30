//! The real `bunkerctl mining` binary against an in-test `org.bunkeros.Mining1` on a private
//! `dbus-daemon`.
//!
//! minerd's daemon is written in parallel, so the stand-in here serves recorded documents
//! (`tests/mining/*.json`) shaped exactly as the contract describes them
//! (`appliance::dbus::contracts::Mining1Proxy`: documents, `JobProgress`, `mining_errors`);
//! minerd's own tests check that it serves those shapes. The subject here is the operator's
//! tool: its text at 80 columns, a bulk action followed to the end, exit statuses, the
//! sentences of refusals, and the audit log verified offline.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appliance::dbus::contracts::MINING;
use appliance::dbus::testbus::TestBus;
use serde_json::{Value, json};
use zbus::object_server::SignalEmitter;

const STATUS: &str = include_str!("mining/status.json");
const MINERS: &str = include_str!("mining/miners.json");
const MINER: &str = include_str!("mining/miner.json");
const HIJACKS: &str = include_str!("mining/hijacks.json");
const SCAN: &str = include_str!("mining/scan.json");

/// The miner whose actions fail in the stand-in, and why.
const FAILING: &str = "10.1.0.7";
const FAILING_SENTENCE: &str = "the miner refused: Access denied to 'restart' command";

/// minerd's refusals, named as in `mining_errors`.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.bunkeros.Mining1.Error")]
enum MiningError {
    #[zbus(error)]
    ZBus(zbus::Error),
    InvalidArgument(String),
    NotFound(String),
}

type Jobs = Arc<Mutex<BTreeMap<String, Value>>>;

/// A minerd that answers from recorded documents and runs jobs over the recorded miners.
struct StandInMinerd {
    jobs: Jobs,
    /// Whether `JobProgress` is emitted (off: the client must follow the job by polling).
    signals: bool,
    /// How long each miner's step of a job takes.
    step: Duration,
    released: Arc<Mutex<Vec<(String, String)>>>,
}

/// The recorded miners `selection` picks (only the terms these tests use).
fn select(selection: &str) -> Result<Vec<String>, MiningError> {
    let miners: Value = serde_json::from_str(MINERS).unwrap();
    let mut picked: Vec<String> = Vec::new();
    for miner in miners.as_array().unwrap() {
        let ip = miner["ip"].as_str().unwrap();
        let keep = match selection.split_once('=') {
            None if selection == "all" => true,
            Some(("owner", owner)) => miner["owner"] == owner,
            Some(("ip", address)) => ip == address,
            _ => {
                return Err(MiningError::InvalidArgument(format!(
                    "`{selection}` is not a selection: use all, or terms such as owner=NAME"
                )));
            }
        };
        if keep {
            picked.push(ip.to_owned());
        }
    }
    if picked.is_empty() {
        return Err(MiningError::NotFound(format!(
            "the selection `{selection}` picks no miner"
        )));
    }
    picked.sort_by_key(|ip| ip.parse::<std::net::Ipv4Addr>().unwrap());
    Ok(picked)
}

#[zbus::interface(name = "org.bunkeros.Mining1")]
impl StandInMinerd {
    fn status(&self) -> String {
        STATUS.to_owned()
    }

    fn miners(&self, selection: &str) -> Result<String, MiningError> {
        let picked = select(selection)?;
        let miners: Value = serde_json::from_str(MINERS).unwrap();
        let chosen: Vec<&Value> = miners
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| picked.iter().any(|ip| m["ip"] == ip.as_str()))
            .collect();
        Ok(serde_json::to_string(&chosen).unwrap())
    }

    fn miner(&self, ip: &str) -> Result<String, MiningError> {
        match ip {
            FAILING => Ok(MINER.to_owned()),
            other => Err(MiningError::NotFound(format!("no miner at {other}"))),
        }
    }

    fn hijacks(&self) -> String {
        HIJACKS.to_owned()
    }

    async fn start_action(
        &mut self,
        action: &str,
        selection: &str,
        argument: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<String, MiningError> {
        if !["set-pools", "reboot", "sleep", "wake", "power-target"].contains(&action) {
            return Err(MiningError::InvalidArgument(format!(
                "`{action}` is not an action"
            )));
        }
        let picked = select(selection)?;
        let mut jobs = self.jobs.lock().unwrap();
        let id = (jobs.len() + 1).to_string();
        jobs.insert(
            id.clone(),
            json!({"id": id, "action": action, "argument": argument, "selection": selection,
                   "started_at": "2026-11-21T09:01:00Z", "finished_at": null,
                   "total": picked.len(), "done": 0, "failed": 0, "results": []}),
        );
        let run = JobRun {
            jobs: self.jobs.clone(),
            id: id.clone(),
            miners: picked,
            step: self.step,
            emitter: self.signals.then(|| emitter.into_owned()),
        };
        tokio::spawn(run.run());
        Ok(id)
    }

    fn job(&self, id: &str) -> Result<String, MiningError> {
        let jobs = self.jobs.lock().unwrap();
        jobs.get(id)
            .map(Value::to_string)
            .ok_or_else(|| MiningError::NotFound(format!("no job {id}")))
    }

    #[zbus(signal)]
    async fn job_progress(
        emitter: &SignalEmitter<'_>,
        id: &str,
        done: u32,
        failed: u32,
        total: u32,
    ) -> zbus::Result<()>;

    fn release(&self, ip: &str, note: &str) -> Result<(), MiningError> {
        if ip != FAILING {
            return Err(MiningError::InvalidArgument(format!(
                "{ip} is not quarantined"
            )));
        }
        self.released
            .lock()
            .unwrap()
            .push((ip.to_owned(), note.to_owned()));
        Ok(())
    }

    fn scan(&self) -> String {
        SCAN.to_owned()
    }
}

/// One job running in the stand-in: a step per miner, a result and a signal after each.
struct JobRun {
    jobs: Jobs,
    id: String,
    miners: Vec<String>,
    step: Duration,
    emitter: Option<SignalEmitter<'static>>,
}

impl JobRun {
    async fn run(self) {
        let total = self.miners.len() as u32;
        for ip in &self.miners {
            tokio::time::sleep(self.step).await;
            let (done, failed) = {
                let mut jobs = self.jobs.lock().unwrap();
                let job = jobs.get_mut(&self.id).unwrap();
                let ok = ip != FAILING;
                let message = if ok { "done" } else { FAILING_SENTENCE };
                job["results"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"ip": ip, "ok": ok, "message": message}));
                job["done"] = json!(job["done"].as_u64().unwrap() + 1);
                if !ok {
                    job["failed"] = json!(job["failed"].as_u64().unwrap() + 1);
                }
                (
                    job["done"].as_u64().unwrap() as u32,
                    job["failed"].as_u64().unwrap() as u32,
                )
            };
            if let Some(emitter) = &self.emitter {
                StandInMinerd::job_progress(emitter, &self.id, done, failed, total)
                    .await
                    .unwrap();
            }
        }
        let mut jobs = self.jobs.lock().unwrap();
        jobs.get_mut(&self.id).unwrap()["finished_at"] = json!("2026-11-21T09:01:10Z");
    }
}

/// The stand-in minerd on its own private bus.
struct Minerd {
    bus: TestBus,
    jobs: Jobs,
    released: Arc<Mutex<Vec<(String, String)>>>,
    _served: zbus::Connection,
}

impl Minerd {
    async fn start(signals: bool) -> Self {
        let bus = TestBus::start().expect("dbus-daemon starts (Debian package dbus-daemon)");
        let released = Arc::default();
        let jobs: Jobs = Arc::default();
        let stand_in = StandInMinerd {
            jobs: Arc::clone(&jobs),
            signals,
            step: Duration::from_millis(300),
            released: Arc::clone(&released),
        };
        let served =
            appliance::dbus::serve(&bus.bus(), MINING.bus_name, MINING.object_path, stand_in)
                .await
                .unwrap();
        Self {
            bus,
            jobs,
            released,
            _served: served,
        }
    }

    fn bunkerctl(&self, args: &[&str]) -> Output {
        tokio::task::block_in_place(|| bunkerctl(&self.bus, args))
    }
}

fn bunkerctl(bus: &TestBus, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bunkerctl"))
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .env_remove("NO_COLOR")
        .output()
        .expect("bunkerctl runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_fits_console(text: &str) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "too wide for the console: {line:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_reads_the_fleet_at_80_columns() {
    let minerd = Minerd::start(true).await;

    let status = minerd.bunkerctl(&["mining", "status"]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let text = stdout(&status);
    assert_fits_console(&text);
    assert!(
        text.starts_with(
            "minerd: 2/4 up, 1.21 PH/s, 36.42 kW, 30.1 J/TH, hottest 81.5 °C\n\
             \x20 miners        4: 2 up, 0 down, 1 sleeping, 1 quarantined, 0 missing\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "  curtailment   sited: budget 40.00 kW, effective 38.00 kW, headroom 12.0 °C\n\
             \x20               draw 36.42 kW; miners asleep: 1; at a lower power profile: 2\n\
             \x20 hijacks       1 open (bunkerctl mining hijacks)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("acme   2/3  1.11 PH/s   33.17 kW  48211     37        5\n"),
        "{text}"
    );
    assert!(
        text.contains("bravo  stratum+tcp://pool.bravo.example:3333  failover   0\n"),
        "{text}"
    );

    let miners = stdout(&minerd.bunkerctl(&["mining", "miners"]));
    assert_fits_console(&miners);
    let addresses: Vec<&str> = miners
        .lines()
        .filter(|line| line.starts_with("10."))
        .map(|line| line.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(addresses, ["10.1.0.2", "10.1.0.7", "10.1.0.9", "10.1.0.10"]);
    assert!(
        miners.contains(
            "10.1.0.9   bravo  hall-b/r4  active       -           -         -     -\n\
             \x20   Antminer S19j Pro, luxos; pool -; poll failed: no answer within 5 s\n"
        ),
        "{miners}"
    );
    let bravo = stdout(&minerd.bunkerctl(&["mining", "miners", "owner=bravo", "--json"]));
    let bravo: Value = serde_json::from_str(&bravo).unwrap();
    assert_eq!(bravo.as_array().unwrap().len(), 1);
    assert_eq!(bravo[0]["poll_failure"], json!("no answer within 5 s"));

    let miner = stdout(&minerd.bunkerctl(&["mining", "miner", "10.1.0.7"]));
    assert_fits_console(&miner);
    assert!(
        miner.starts_with(
            "10.1.0.7: Antminer S19j Pro, bosminer, owner acme at hall-a/r1, quarantined\n"
        ),
        "{miner}"
    );
    assert!(
        miner.contains("0     stratum+tcp://evil.example:4444  x9             active  210/0\n"),
        "{miner}"
    );

    let hijacks = stdout(&minerd.bunkerctl(&["mining", "hijacks"]));
    assert_fits_console(&hijacks);
    let first_row = hijacks.lines().nth(1).unwrap();
    assert_eq!(
        first_row, "10.1.0.7  acme   foreign_pool     critical  open, quarantined",
        "open findings come first: {hijacks}"
    );

    let scan = stdout(&minerd.bunkerctl(&["mining", "scan"]));
    assert_eq!(
        scan,
        "scanned 1024 addresses in 850 ms: 4 found, 1 new, 0 changed, 1 missing; errors:\n\
         \x20 refused 1019, timeout 1\n"
    );

    let release = minerd.bunkerctl(&["mining", "release", "10.1.0.7", "--note", "pools restored"]);
    assert_eq!(release.status.code(), Some(0), "{}", stderr(&release));
    assert_eq!(
        minerd.released.lock().unwrap().as_slice(),
        [("10.1.0.7".to_owned(), "pools restored".to_owned())]
    );
}

/// The progress lines of `output` (stdout is a pipe here: one line per change).
fn progress_lines<'a>(output: &'a str, label: &str) -> Vec<&'a str> {
    output
        .lines()
        .filter(|line| line.starts_with(&format!("{label}: ")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_action_is_followed_to_the_end_and_a_failed_miner_fails_the_command() {
    let minerd = Minerd::start(true).await;
    let reboot = minerd.bunkerctl(&["mining", "reboot", "owner=acme"]);
    let text = stdout(&reboot);
    assert_eq!(reboot.status.code(), Some(1), "{text}{}", stderr(&reboot));
    let progress = progress_lines(&text, "reboot");
    assert!(
        progress.ends_with(&[
            "reboot: 1/3 done, 0 failed",
            "reboot: 2/3 done, 1 failed",
            "reboot: 3/3 done, 1 failed",
        ]),
        "every signal is a line: {text}"
    );
    assert!(!text.contains('\r'), "no bar when stdout is not a terminal");
    assert!(
        text.ends_with(
            "reboot on owner=acme: 3 miners, 2 ok, 1 failed\n\
             \x20 job 1, finished 2026-11-21T09:01:10Z\n\
             FAILED MINER  WHY\n\
             10.1.0.7      the miner refused: Access denied to 'restart' command\n"
        ),
        "{text}"
    );

    let target = minerd.bunkerctl(&["mining", "power-target", "ip=10.1.0.2", "2500"]);
    let text = stdout(&target);
    assert_eq!(target.status.code(), Some(0), "{text}{}", stderr(&target));
    assert!(
        text.ends_with("power-target 2500 on ip=10.1.0.2: 1 miners, 1 ok, 0 failed\n  job 2, finished 2026-11-21T09:01:10Z\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_signals_the_job_is_followed_by_polling() {
    let minerd = Minerd::start(false).await;
    // the whole fleet with no terminal to ask on needs --yes
    let refused = minerd.bunkerctl(&["mining", "sleep", "all"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("needs --yes when there is no terminal to ask on"),
        "{}",
        stderr(&refused)
    );
    assert!(!stdout(&refused).contains("sleep:"), "no job was followed");
    let sleep = minerd.bunkerctl(&["mining", "sleep", "all", "--yes"]);
    let text = stdout(&sleep);
    assert_eq!(sleep.status.code(), Some(1), "{text}{}", stderr(&sleep));
    assert_eq!(
        progress_lines(&text, "sleep").last(),
        Some(&"sleep: 4/4 done, 1 failed"),
        "{text}"
    );
    assert!(
        text.contains("sleep on all: 4 miners, 3 ok, 1 failed\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn minerds_refusals_are_one_sentence_and_exit_1() {
    let minerd = Minerd::start(true).await;
    let cases: [(&[&str], &str); 4] = [
        (
            &["mining", "miner", "10.9.9.9"],
            "bunkerctl: minerd refused (NotFound): no miner at 10.9.9.9\n",
        ),
        (
            &["mining", "wake", "owner=nobody"],
            "bunkerctl: minerd refused (NotFound): the selection `owner=nobody` picks no miner\n",
        ),
        (
            &["mining", "reboot", "colour=red"],
            "bunkerctl: minerd refused (InvalidArgument): `colour=red` is not a selection: use \
             all, or terms such as owner=NAME\n",
        ),
        (
            &["mining", "release", "10.1.0.2", "--note", "looked fine"],
            "bunkerctl: minerd refused (InvalidArgument): 10.1.0.2 is not quarantined\n",
        ),
    ];
    for (args, sentence) in cases {
        let output = minerd.bunkerctl(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&output), sentence, "{args:?}");
    }
}

/// `bunkerctl args` on a terminal: util-linux `script` gives it a pseudo-terminal for stdin and
/// stdout, and types `typed` into it.
fn on_terminal(bus: &TestBus, args: &[&str], typed: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let command = std::iter::once(env!("CARGO_BIN_EXE_bunkerctl"))
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script runs (Debian package bsdutils)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(typed.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_all_is_confirmed_and_progress_is_a_bar() {
    let minerd = Minerd::start(true).await;
    let refused = tokio::task::block_in_place(|| {
        on_terminal(&minerd.bus, &["mining", "reboot", "all"], "n\n")
    });
    let text = stdout(&refused);
    assert!(
        text.contains("reboot on all 4 miners of the site? [y/N] "),
        "{text}"
    );
    assert!(text.contains("Nothing was done."), "{text}");
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(
        minerd.jobs.lock().unwrap().is_empty(),
        "no job was started without a yes"
    );

    let wake = tokio::task::block_in_place(|| {
        on_terminal(&minerd.bus, &["mining", "wake", "owner=acme"], "")
    });
    let text = stdout(&wake);
    assert_eq!(wake.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "\rwake [{}{}] 3/3 done, 1 failed",
            "#".repeat(20),
            "!".repeat(10)
        )),
        "{text:?}"
    );
    assert!(
        text.contains("wake on owner=acme: 3 miners, 2 ok, 1 failed"),
        "{text}"
    );
}

#[test]
fn without_minerd_the_operator_is_told_so() {
    let bus = TestBus::start().expect("dbus-daemon starts");
    for args in [
        &["mining", "status"][..],
        &["mining", "reboot", "owner=acme"],
        &["mining", "hijacks"],
    ] {
        let output = bunkerctl(&bus, args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr(&output),
            "bunkerctl: minerd is not running (org.bunkeros.Mining1 is not on the system bus)\n"
        );
    }
}
