//! End to end over a temporary directory: a coordinator's desk and an agent per hub, in
//! process; the hubs sign their evidence with real P-256 keys the plan pins. The whole rollouts
//! run again between hubs: each hub of its own site, reaching the coordinator's exchange over
//! mutual TLS on loopback (what hubd carries between them).

use std::cell::RefCell;

use super::*;
use crate::rollout::agent::{AgentStep, GateOutcome, HubAgent};
use crate::rollout::messages::Instruction;
use crate::rollout::remote_exchange::test_pki::{TestCoordinator, TestSite};
use crate::rollout::test_evidence::{RELEASE_PCR11, SignatureJudge, TestHub, plan_text};

const SOAK: u64 = 300;

struct Site {
    _dir: tempfile::TempDir,
    exchange: DirectoryExchange,
    coordinator_state: StateDir,
    hubs: Vec<TestHub>,
    agents: Vec<HubAgent>,
    _coordinator: Option<TestCoordinator>,
}

impl Site {
    fn new(names: &[&str]) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let exchange = DirectoryExchange::new(dir.path().join("exchange"));
        let hubs: Vec<TestHub> = names.iter().map(|n| TestHub::new(n)).collect();
        let agents = hubs
            .iter()
            .map(|hub| {
                let state = StateDir::new(dir.path().join("hubs").join(&hub.id)).unwrap();
                HubAgent::new(hub.id.clone(), exchange.clone(), state)
            })
            .collect();
        Site {
            coordinator_state: StateDir::new(dir.path().join("coordinator")).unwrap(),
            exchange,
            hubs,
            agents,
            _coordinator: None,
            _dir: dir,
        }
    }

    /// The same hubs, each of its own site, following the coordinator over the exchange
    /// between hubs.
    async fn between_hubs(names: &[&str]) -> Site {
        let mut site = Site::new(names);
        let sites: Vec<TestSite> = names.iter().map(|name| TestSite::new(name)).collect();
        let pinned: Vec<(&str, &TestSite)> = names.iter().copied().zip(&sites).collect();
        let coordinator = TestCoordinator::serve(site.exchange.clone(), &pinned).await;
        site.agents = names
            .iter()
            .zip(&sites)
            .map(|(hub, hub_site)| {
                let state = StateDir::new(site._dir.path().join("remote").join(hub)).unwrap();
                HubAgent::new(*hub, coordinator.client(hub, hub_site), state)
            })
            .collect();
        site._coordinator = Some(coordinator);
        site
    }

    fn desk(&self) -> RolloutDesk {
        RolloutDesk::open(
            self.coordinator_state.clone(),
            self.exchange.clone(),
            Box::new(SignatureJudge),
        )
        .unwrap()
    }

    /// Every hub polls; those instructed install (recorded), "reboot" into `booted`, pass or
    /// fail their gate as `gate` says, and report with evidence signed by their own key.
    async fn hubs_act(
        &self,
        now: u64,
        booted: &str,
        gate: impl Fn(&str) -> GateOutcome,
    ) -> Vec<String> {
        let installed = RefCell::new(Vec::new());
        for (hub, agent) in self.hubs.iter().zip(&self.agents) {
            let step = agent
                .poll(now, async |i: &Instruction| {
                    assert_eq!(
                        (i.source.as_str(), i.release_version.as_str()),
                        ("usb", "0.2.0")
                    );
                    installed.borrow_mut().push(hub.id.clone());
                    Ok(())
                })
                .await
                .unwrap();
            if let AgentStep::Installed(_) = step {
                let report = agent
                    .report_after_gate(booted, gate(&hub.id), now + 60, async |i: &Instruction| {
                        Ok(hub.evidence(RELEASE_PCR11, &i.nonce))
                    })
                    .await
                    .unwrap();
                assert!(report.is_some());
            }
        }
        installed.into_inner()
    }
}

fn hub_states(status: &Json) -> Vec<(String, String)> {
    status["waves"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["hubs"].as_array().unwrap().clone())
        .map(|h| {
            (
                h["id"].as_str().unwrap().to_owned(),
                h["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_rollout_across_three_hubs_completes_wave_by_wave() {
    three_hubs_complete_wave_by_wave(Site::new(&["h1", "h2", "h3"])).await;
}

#[tokio::test]
async fn a_rollout_between_hubs_of_three_sites_completes_wave_by_wave() {
    three_hubs_complete_wave_by_wave(Site::between_hubs(&["h1", "h2", "h3"]).await).await;
}

async fn three_hubs_complete_wave_by_wave(site: Site) {
    let desk = site.desk();
    let plan = plan_text(&site.hubs, &[&[0], &[1, 2]], SOAK, 3600);
    desk.start(&plan, [1; 32], 1000).unwrap();
    assert_eq!(
        site.exchange.read_plan("spring").unwrap().as_deref(),
        Some(plan.as_str())
    );

    assert_eq!(
        site.hubs_act(1010, "0.2.0", |_| GateOutcome::Healthy).await,
        ["h1"]
    );
    desk.tick(1100).unwrap();
    assert_eq!(
        hub_states(&desk.status())[0],
        ("h1".into(), "reported-healthy".into())
    );
    assert!(
        site.hubs_act(1110, "0.2.0", |_| GateOutcome::Healthy)
            .await
            .is_empty(),
        "soaking"
    );
    desk.tick(1100 + SOAK).unwrap();
    assert_eq!(
        site.hubs_act(1500, "0.2.0", |_| GateOutcome::Healthy).await,
        ["h2", "h3"]
    );
    desk.tick(1600).unwrap();
    desk.tick(1600 + SOAK).unwrap();
    let status = desk.status();
    assert_eq!(status["state"], "completed", "{status:#}");
    assert!(
        hub_states(&status)
            .iter()
            .all(|(_, s)| s == "reported-healthy")
    );
    // Nothing is installed twice.
    assert!(
        site.hubs_act(5000, "0.2.0", |_| GateOutcome::Healthy)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_hub_failing_its_gate_halts_the_rollout_and_an_override_retries_it() {
    failing_gate_halts_and_override_retries(Site::new(&["h1", "h2", "h3", "h4"])).await;
}

#[tokio::test]
async fn between_hubs_a_failing_gate_halts_the_rollout_and_an_override_retries_it() {
    failing_gate_halts_and_override_retries(Site::between_hubs(&["h1", "h2", "h3", "h4"]).await)
        .await;
}

async fn failing_gate_halts_and_override_retries(site: Site) {
    let desk = site.desk();
    desk.start(
        &plan_text(&site.hubs, &[&[0], &[1, 2], &[3]], SOAK, 3600),
        [2; 32],
        1000,
    )
    .unwrap();
    site.hubs_act(1010, "0.2.0", |_| GateOutcome::Healthy).await;
    desk.tick(1100).unwrap();
    desk.tick(1100 + SOAK).unwrap();
    let gate = |hub: &str| match hub {
        "h3" => GateOutcome::Failed("unit:minerd.service: failed".to_owned()),
        _ => GateOutcome::Healthy,
    };
    assert_eq!(site.hubs_act(1500, "0.2.0", gate).await, ["h2", "h3"]);
    desk.tick(1600).unwrap();
    let status = desk.status();
    assert_eq!(status["state"], "halted");
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("hub h3 in wave w2 failed: the hub reported: unit:minerd.service: failed")
    );
    desk.tick(100_000).unwrap();
    assert!(
        site.exchange
            .read_instruction("spring", "h4")
            .unwrap()
            .is_none(),
        "wave 3 never instructed"
    );

    // A restarted coordinator still knows it is halted; resuming needs a reason.
    drop(desk);
    let desk = site.desk();
    assert_eq!(desk.status()["state"], "halted");
    assert!(matches!(
        desk.resume("", 100_100),
        Err(DeskError::Control(_))
    ));
    desk.resume("minerd fixed in 0.2.0-hotfix config", 100_200)
        .unwrap();
    assert_eq!(
        site.hubs_act(100_300, "0.2.0", |_| GateOutcome::Healthy)
            .await,
        ["h3"]
    );
    desk.tick(100_400).unwrap();
    desk.tick(100_400 + SOAK).unwrap();
    assert_eq!(
        site.hubs_act(101_000, "0.2.0", |_| GateOutcome::Healthy)
            .await,
        ["h4"]
    );
}

#[tokio::test]
async fn a_hub_that_fell_back_or_forged_its_evidence_halts_the_rollout() {
    let site = Site::new(&["h1", "h2"]);
    let desk = site.desk();
    desk.start(
        &plan_text(&site.hubs, &[&[0], &[1]], SOAK, 3600),
        [3; 32],
        1000,
    )
    .unwrap();
    // The gate passed, but the appliance runs the old image: the agent says so.
    site.hubs_act(1010, "0.1.0", |_| GateOutcome::Healthy).await;
    desk.tick(1100).unwrap();
    assert!(
        desk.status()["reason"]
            .as_str()
            .unwrap()
            .contains("runs BunkerOS 0.1.0, not the release 0.2.0")
    );

    let site = Site::new(&["h1", "h2"]);
    let desk = site.desk();
    desk.start(
        &plan_text(&site.hubs, &[&[0], &[1]], SOAK, 3600),
        [4; 32],
        1000,
    )
    .unwrap();
    let instruction = site
        .exchange
        .read_instruction("spring", "h1")
        .unwrap()
        .unwrap();
    // h2 (not instructed, other key) writes a healthy report in h1's name.
    let forged = crate::rollout::messages::Report {
        plan_id: "spring".into(),
        hub: "h1".into(),
        nonce: instruction.nonce.clone(),
        booted_version: "0.2.0".into(),
        outcome: crate::rollout::messages::ReportOutcome::Healthy,
        evidence: Some(site.hubs[1].evidence(RELEASE_PCR11, &instruction.nonce)),
        reported_at: 1050,
    };
    site.exchange.write_report(&forged).unwrap();
    desk.tick(1100).unwrap();
    let status = desk.status();
    assert_eq!(status["state"], "halted");
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("not by hub h1's CA key"),
        "{status:#}"
    );
}

#[tokio::test]
async fn malformed_reports_are_shown_and_change_nothing() {
    let site = Site::new(&["h1"]);
    let desk = site.desk();
    desk.start(&plan_text(&site.hubs, &[&[0]], SOAK, 3600), [5; 32], 1000)
        .unwrap();
    let reports = site.exchange.root().join("spring/reports");
    std::fs::create_dir_all(&reports).unwrap();
    std::fs::write(reports.join("h1.json"), b"{\"plan_id\": 7}").unwrap();
    let before = desk.status();
    desk.tick(1100).unwrap();
    let after = desk.status();
    assert_eq!(after["state"], "running");
    assert_eq!(after["waves"], before["waves"]);
    assert!(
        after["exchange_problems"][0]
            .as_str()
            .unwrap()
            .contains("hub h1"),
        "{after:#}"
    );
}

#[tokio::test]
async fn start_is_refused_while_a_rollout_runs_and_abort_withdraws_instructions() {
    let site = Site::new(&["h1", "h2"]);
    let desk = site.desk();
    assert_eq!(desk.status()["state"], "none");
    let plan = plan_text(&site.hubs, &[&[0], &[1]], SOAK, 3600);
    assert!(matches!(
        desk.start("id = 3", [0; 32], 900),
        Err(DeskError::Plan(_))
    ));
    desk.start(&plan, [6; 32], 1000).unwrap();
    assert!(matches!(
        desk.start(&plan, [6; 32], 1001),
        Err(DeskError::Busy(..))
    ));
    desk.abort("wrong release", 1002).unwrap();
    assert!(
        site.exchange
            .read_instruction("spring", "h1")
            .unwrap()
            .is_none()
    );
    assert!(
        site.hubs_act(1003, "0.2.0", |_| GateOutcome::Healthy)
            .await
            .is_empty()
    );
    desk.start(&plan, [7; 32], 1004).unwrap();
    assert_eq!(desk.status()["state"], "running");
}

#[tokio::test]
async fn an_agent_reports_a_refused_install_at_once() {
    let site = Site::new(&["h1"]);
    let desk = site.desk();
    desk.start(&plan_text(&site.hubs, &[&[0]], SOAK, 3600), [8; 32], 1000)
        .unwrap();
    let step = site.agents[0]
        .poll(1010, async |_: &Instruction| {
            Err("the release offers 0.2.0, not newer than 0.2.0".to_owned())
        })
        .await
        .unwrap();
    assert!(matches!(step, AgentStep::InstallFailed(..)));
    desk.tick(1020).unwrap();
    assert!(
        desk.status()["reason"]
            .as_str()
            .unwrap()
            .contains("the install did not happen")
    );
    let step = site.agents[0]
        .poll(1030, async |_: &Instruction| Ok(()))
        .await
        .unwrap();
    assert_eq!(step, AgentStep::Idle, "one answer per instruction");
}
