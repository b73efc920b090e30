use super::*;
use crate::rollout::test_evidence::{
    OTHER_PCR11, RELEASE_PCR11, SignatureJudge, TestHub, plan_text,
};

const SOAK: u64 = 600;
const TIMEOUT: u64 = 3600;

/// Four hubs: canary h1, then h2 and h3, then h4.
fn fleet() -> (Vec<TestHub>, Rollout) {
    let hubs: Vec<TestHub> = ["h1", "h2", "h3", "h4"].map(TestHub::new).into();
    let plan = RolloutPlan::parse(&plan_text(&hubs, &[&[0], &[1, 2], &[3]], SOAK, TIMEOUT))
        .expect("valid plan");
    (hubs, Rollout::start(plan, [7; 32], 1000))
}

fn healthy(rollout: &Rollout, hub: &TestHub, pcr11: &str, now: u64) -> Report {
    let nonce = rollout.hubs[&hub.id].nonce.clone();
    Report {
        plan_id: rollout.plan.id.clone(),
        hub: hub.id.clone(),
        evidence: Some(hub.evidence(pcr11, &nonce)),
        nonce,
        booted_version: "0.2.0".to_owned(),
        outcome: ReportOutcome::Healthy,
        reported_at: now,
    }
}

fn failed(rollout: &Rollout, hub: &TestHub, reason: &str, now: u64) -> Report {
    Report {
        plan_id: rollout.plan.id.clone(),
        hub: hub.id.clone(),
        nonce: rollout.hubs[&hub.id].nonce.clone(),
        booted_version: "0.1.0".to_owned(),
        outcome: ReportOutcome::Failed {
            reason: reason.to_owned(),
        },
        evidence: None,
        reported_at: now,
    }
}

fn hubs_of(instructions: &[Instruction]) -> Vec<&str> {
    instructions.iter().map(|i| i.hub.as_str()).collect()
}

fn state(rollout: &Rollout, hub: &str) -> &'static str {
    rollout.hubs[hub].state.word()
}

/// Runs the canary to healthy and through its soak: wave 2 (h2, h3) is instructed at 2000+SOAK.
fn through_canary(hubs: &[TestHub], rollout: &mut Rollout) -> Vec<Instruction> {
    assert_eq!(hubs_of(&rollout.advance(1000)), ["h1"]);
    let report = healthy(rollout, &hubs[0], RELEASE_PCR11, 2000);
    assert_eq!(
        rollout.observe(&report, &SignatureJudge, 2000),
        Observation::Accepted
    );
    rollout.advance(2000 + SOAK)
}

#[test]
fn the_second_wave_is_instructed_only_after_the_canary_is_healthy_and_soaked() {
    let (hubs, mut rollout) = fleet();
    assert_eq!(hubs_of(&rollout.advance(1000)), ["h1"]);
    assert_eq!(state(&rollout, "h1"), "instructed");
    assert!(
        rollout.advance(1500).is_empty(),
        "no report yet: nothing moves"
    );
    let report = healthy(&rollout, &hubs[0], RELEASE_PCR11, 2000);
    assert_eq!(
        rollout.observe(&report, &SignatureJudge, 2000),
        Observation::Accepted
    );
    assert_eq!(state(&rollout, "h1"), "reported-healthy");
    assert!(rollout.advance(2000 + SOAK - 1).is_empty(), "still soaking");
    assert_eq!(state(&rollout, "h2"), "waiting");
    let wave2 = rollout.advance(2000 + SOAK);
    assert_eq!(hubs_of(&wave2), ["h2", "h3"]);
    assert!(
        wave2
            .iter()
            .all(|i| i.wave == "w2" && i.attempt == 1 && i.release_version == "0.2.0")
    );
    assert_ne!(wave2[0].nonce, wave2[1].nonce, "a nonce per hub");
    assert_eq!(rollout.status_json()["current_wave"], "w2");
}

#[test]
fn a_failed_report_in_wave_two_halts_and_wave_three_is_never_instructed() {
    let (hubs, mut rollout) = fleet();
    through_canary(&hubs, &mut rollout);
    let ok = healthy(&rollout, &hubs[1], RELEASE_PCR11, 3000);
    assert_eq!(
        rollout.observe(&ok, &SignatureJudge, 3000),
        Observation::Accepted
    );
    let bad = failed(&rollout, &hubs[2], "trustd cannot sign", 3100);
    let observed = rollout.observe(&bad, &SignatureJudge, 3100);
    assert!(matches!(observed, Observation::Failed(ref r) if r.contains("trustd cannot sign")));
    let Control::Halted { reason, .. } = &rollout.control else {
        panic!("{:?}", rollout.control)
    };
    assert!(
        reason.contains("hub h3 in wave w2 failed") && reason.contains("trustd cannot sign"),
        "{reason}"
    );
    for later in [3200, 3100 + SOAK, 100_000] {
        assert!(rollout.advance(later).is_empty());
    }
    assert_eq!(state(&rollout, "h4"), "waiting");
    assert!(!hubs_of(&rollout.instructions()).contains(&"h4"));
    let status = rollout.status_json();
    assert_eq!(status["state"], "halted");
    assert_eq!(status["waves"][1]["hubs"][1]["state"], "failed");
    assert!(
        status["waves"][1]["hubs"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("trustd cannot sign")
    );
}

#[test]
fn refused_evidence_halts_with_the_judges_reason() {
    let (hubs, mut rollout) = fleet();
    rollout.advance(1000);
    // Signed by h2's key, though h1's CA key is pinned for h1.
    let nonce = rollout.hubs["h1"].nonce.clone();
    let mut forged = healthy(&rollout, &hubs[0], RELEASE_PCR11, 2000);
    forged.evidence = Some(hubs[1].evidence(RELEASE_PCR11, &nonce));
    let observed = rollout.observe(&forged, &SignatureJudge, 2000);
    assert!(
        matches!(observed, Observation::Failed(ref r) if r.contains("not by hub h1's CA key")),
        "{observed:?}"
    );
    let Control::Halted { reason, .. } = &rollout.control else {
        panic!()
    };
    assert!(
        reason.contains("evidence was refused: the signature is not by hub h1's CA key"),
        "{reason}"
    );
    assert!(rollout.advance(10_000).is_empty());
}

#[test]
fn evidence_of_another_image_or_an_old_nonce_is_refused() {
    let (hubs, mut rollout) = fleet();
    rollout.advance(1000);
    let other_image = healthy(&rollout, &hubs[0], OTHER_PCR11, 2000);
    let observed = rollout.observe(&other_image, &SignatureJudge, 2000);
    assert!(
        matches!(observed, Observation::Failed(ref r) if r.contains("not the release's")),
        "{observed:?}"
    );

    let (hubs, mut rollout) = fleet();
    rollout.advance(1000);
    let mut replay = healthy(&rollout, &hubs[0], RELEASE_PCR11, 2000);
    replay.evidence = Some(hubs[0].evidence(RELEASE_PCR11, "00ff"));
    let observed = rollout.observe(&replay, &SignatureJudge, 2000);
    assert!(
        matches!(observed, Observation::Failed(ref r) if r.contains("another nonce")),
        "{observed:?}"
    );
}

#[test]
fn a_healthy_report_from_the_old_image_is_a_failure() {
    let (hubs, mut rollout) = fleet();
    rollout.advance(1000);
    let mut fell_back = healthy(&rollout, &hubs[0], RELEASE_PCR11, 2000);
    fell_back.booted_version = "0.1.0".to_owned();
    assert!(
        matches!(rollout.observe(&fell_back, &SignatureJudge, 2000), Observation::Failed(ref r) if r.contains("fell back"))
    );
    assert_eq!(rollout.control.word(), "halted");
}

#[test]
fn a_wave_past_its_timeout_halts_and_names_the_silent_hubs() {
    let (hubs, mut rollout) = fleet();
    through_canary(&hubs, &mut rollout);
    let wave2_at = 2000 + SOAK;
    let ok = healthy(&rollout, &hubs[1], RELEASE_PCR11, wave2_at + 10);
    rollout.observe(&ok, &SignatureJudge, wave2_at + 10);
    assert!(rollout.advance(wave2_at + TIMEOUT - 1).is_empty());
    assert_eq!(rollout.control, Control::Running);
    assert!(rollout.advance(wave2_at + TIMEOUT).is_empty());
    let Control::Halted { reason, .. } = &rollout.control else {
        panic!("{:?}", rollout.control)
    };
    assert!(
        reason.contains("wave w2 timed out after 3600 s: no healthy report from h3"),
        "{reason}"
    );
    assert_eq!(state(&rollout, "h2"), "reported-healthy");
    assert_eq!(state(&rollout, "h3"), "failed");
}

#[test]
fn pause_stops_instructions_and_resume_continues() {
    let (hubs, mut rollout) = fleet();
    rollout.advance(1000);
    let report = healthy(&rollout, &hubs[0], RELEASE_PCR11, 2000);
    rollout.observe(&report, &SignatureJudge, 2000);
    rollout.pause("night shift", 2100).unwrap();
    assert!(
        rollout.advance(2000 + SOAK).is_empty(),
        "paused: no new wave"
    );
    assert!(rollout.pause("again", 2200).is_err());
    assert_eq!(rollout.status_json()["reason"], "night shift");
    let resumed = rollout.resume("", 5000).unwrap();
    assert_eq!(
        hubs_of(&resumed),
        ["h2", "h3"],
        "the soak had passed: wave 2 starts"
    );
    assert_eq!(rollout.control, Control::Running);
}

#[test]
fn a_halt_resumes_only_with_an_override_reason_and_instructs_the_failed_hub_again() {
    let (hubs, mut rollout) = fleet();
    rollout.advance(1000);
    let old_nonce = rollout.hubs["h1"].nonce.clone();
    let bad = failed(&rollout, &hubs[0], "sited critical", 1500);
    rollout.observe(&bad, &SignatureJudge, 1500);
    assert!(
        matches!(rollout.resume("  ", 1600), Err(ControlRefused::OverrideReasonRequired(ref r)) if r.contains("sited critical"))
    );
    let again = rollout.resume("cooling fixed in room 2", 1700).unwrap();
    assert_eq!(hubs_of(&again), ["h1"]);
    assert_eq!(again[0].attempt, 2);
    assert_ne!(again[0].nonce, old_nonce, "a fresh nonce");
    // The old failed report (old nonce) is stale now; a new healthy one moves the rollout.
    assert!(matches!(
        rollout.observe(&bad, &SignatureJudge, 1800),
        Observation::Ignored(_)
    ));
    let ok = healthy(&rollout, &hubs[0], RELEASE_PCR11, 1900);
    assert_eq!(
        rollout.observe(&ok, &SignatureJudge, 1900),
        Observation::Accepted
    );
    assert_eq!(hubs_of(&rollout.advance(1900 + SOAK)), ["h2", "h3"]);
    let events = rollout.status_json()["events"].to_string();
    assert!(
        events.contains("by override: cooling fixed in room 2"),
        "{events}"
    );
}

#[test]
fn abort_ends_the_rollout_and_withdraws_instructions() {
    let (_hubs, mut rollout) = fleet();
    rollout.advance(1000);
    assert_eq!(rollout.instructions().len(), 1);
    rollout.abort("wrong release", 1100).unwrap();
    assert!(rollout.instructions().is_empty());
    assert!(rollout.advance(100_000).is_empty());
    assert!(rollout.resume("please", 1200).is_err());
    assert!(rollout.abort("twice", 1300).is_err());
}

#[test]
fn a_rollout_completes_after_the_last_wave_soaks() {
    let (hubs, mut rollout) = fleet();
    let wave2 = through_canary(&hubs, &mut rollout);
    let t = 2000 + SOAK;
    for hub in &hubs[1..3] {
        let report = healthy(&rollout, hub, RELEASE_PCR11, t + 1);
        rollout.observe(&report, &SignatureJudge, t + 1);
    }
    assert_eq!(wave2.len(), 2);
    assert_eq!(hubs_of(&rollout.advance(t + 1 + SOAK)), ["h4"]);
    let report = healthy(&rollout, &hubs[3], RELEASE_PCR11, t + 2 + SOAK);
    rollout.observe(&report, &SignatureJudge, t + 2 + SOAK);
    rollout.advance(t + 2 + 2 * SOAK);
    assert_eq!(rollout.control.word(), "completed");
    assert_eq!(rollout.status_json()["waves"][2]["state"], "done");
}

#[test]
fn a_restart_from_the_persisted_state_continues_where_it_stopped() {
    let (hubs, mut rollout) = fleet();
    let wave2 = through_canary(&hubs, &mut rollout);
    let dir = tempfile::tempdir().unwrap();
    let state = appliance::state::StateDir::new(dir.path()).unwrap();
    state.write_json("rollout.json", &rollout).unwrap();
    drop(rollout);
    let mut restarted: Rollout = state.read_json("rollout.json").unwrap().unwrap();
    assert_eq!(
        restarted
            .instructions()
            .iter()
            .filter(|i| i.wave == "w2")
            .cloned()
            .collect::<Vec<_>>(),
        wave2,
        "the same instructions, nonces included"
    );
    for hub in &hubs[1..3] {
        let report = healthy(&restarted, hub, RELEASE_PCR11, 5000);
        assert_eq!(
            restarted.observe(&report, &SignatureJudge, 5000),
            Observation::Accepted
        );
    }
    assert_eq!(hubs_of(&restarted.advance(5000 + SOAK)), ["h4"]);
}

#[test]
fn reports_for_other_plans_or_uninstructed_hubs_change_nothing() {
    let (hubs, mut rollout) = fleet();
    rollout.advance(1000);
    let before = rollout.clone();
    let mut other_plan = healthy(&rollout, &hubs[0], RELEASE_PCR11, 1100);
    other_plan.plan_id = "autumn".to_owned();
    let early = failed(&rollout, &hubs[3], "not asked", 1100);
    for report in [other_plan, early] {
        assert!(matches!(
            rollout.observe(&report, &SignatureJudge, 1100),
            Observation::Ignored(_)
        ));
    }
    assert_eq!(rollout, before);
}

#[test]
fn a_hub_of_an_earlier_wave_that_fails_later_holds_the_next_wave_until_it_is_healthy_again() {
    let (hubs, mut rollout) = fleet();
    through_canary(&hubs, &mut rollout);
    // h1 (the canary, healthy before) now reports its gate failed after all: a halt.
    let late = failed(
        &rollout,
        &hubs[0],
        "hub-links: the link to sevilla is down",
        3000,
    );
    assert!(matches!(
        rollout.observe(&late, &SignatureJudge, 3000),
        Observation::Failed(_)
    ));
    let again = rollout.resume("link repaired", 3100).unwrap();
    assert_eq!(hubs_of(&again), ["h1"]);
    for hub in &hubs[1..3] {
        let report = healthy(&rollout, hub, RELEASE_PCR11, 3200);
        assert_eq!(
            rollout.observe(&report, &SignatureJudge, 3200),
            Observation::Accepted
        );
    }
    assert!(
        rollout.advance(3200 + SOAK).is_empty(),
        "h1 is not healthy again yet"
    );
    let report = healthy(&rollout, &hubs[0], RELEASE_PCR11, 3300);
    assert_eq!(
        rollout.observe(&report, &SignatureJudge, 3300),
        Observation::Accepted
    );
    assert_eq!(hubs_of(&rollout.advance(3300 + SOAK)), ["h4"]);
}
