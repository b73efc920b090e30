//! The gate's judgements, without a bus: unit states, hub links, site states, settings, the
//! statement and the verdict's recorded shape.

use super::*;

fn unit(active: &str, sub: &str, result: &str) -> UnitObservation {
    UnitObservation {
        unit: "minerd.service".to_owned(),
        load_state: "loaded".to_owned(),
        active_state: active.to_owned(),
        sub_state: sub.to_owned(),
        result: result.to_owned(),
        condition_checked: true,
        condition_result: true,
    }
}

#[test]
fn an_active_unit_passes_and_a_failed_one_says_its_result() {
    let active = unit("active", "running", "success").judge();
    assert_eq!(
        active,
        Check::pass("unit:minerd", "minerd.service is active (running)")
    );
    let failed = unit("failed", "failed", "exit-code").judge();
    assert!(!failed.passed);
    assert_eq!(
        failed.sentence,
        "minerd.service failed (failed, result exit-code)"
    );
}

#[test]
fn a_unit_still_starting_or_restarting_fails_with_why() {
    let starting = unit("activating", "start", "success").judge();
    assert!(!starting.passed);
    assert_eq!(
        starting.sentence,
        "minerd.service is still activating (start), not ready"
    );
    let restarting = unit("activating", "auto-restart", "watchdog").judge();
    assert!(!restarting.passed);
    assert!(
        restarting
            .sentence
            .ends_with("its last run ended with result watchdog"),
        "{restarting:?}"
    );
}

#[test]
fn only_a_unit_whose_condition_was_checked_and_failed_counts_as_not_configured() {
    let mut skipped = unit("inactive", "dead", "success");
    skipped.condition_result = false;
    assert!(skipped.skipped_by_condition());
    assert!(skipped.judge().passed, "{:?}", skipped.judge());
    // Never started: ConditionResult reads false too, but the condition was never checked.
    let mut never_started = skipped.clone();
    never_started.condition_checked = false;
    assert!(!never_started.skipped_by_condition());
    assert!(!never_started.judge().passed);
    // Stopped after its condition held.
    assert!(!unit("inactive", "dead", "success").judge().passed);
}

#[test]
fn a_unit_that_is_not_installed_fails() {
    let mut missing = unit("inactive", "dead", "");
    missing.load_state = "not-found".to_owned();
    let check = missing.judge();
    assert!(!check.passed);
    assert_eq!(
        check.sentence,
        "minerd.service is not installed (not-found)"
    );
}

#[test]
fn every_link_must_be_up_and_the_down_ones_are_named() {
    let up = r#"[{"peer":"lisbon-1","jurisdiction":"PT","link":1,"address":"198.51.100.7:7400","up":true,"rtt_ms":10.0}]"#;
    assert_eq!(
        judge_links(up),
        Check::pass("hub-links", "all 1 configured links are up")
    );
    let some_down = r#"[{"peer":"lisbon-1","link":1,"up":true},{"peer":"paris-1","link":2,"up":false,"rtt_ms":null}]"#;
    assert_eq!(
        judge_links(some_down),
        Check::fail(
            "hub-links",
            "1 of 2 configured links are down: paris-1 link 2"
        )
    );
    assert!(judge_links("[]").passed);
    assert!(!judge_links(r#"{"links": []}"#).passed);
}

#[test]
fn critical_and_lockdown_fail_the_site_check_and_unknown_words_do_too() {
    assert!(judge_site("normal", "").passed);
    assert!(judge_site("warning", "UPS on battery").passed);
    assert_eq!(
        judge_site("critical", "cooling lost"),
        Check::fail("site-state", "the site is critical: cooling lost")
    );
    let lockdown = judge_site("lockdown", "door forced");
    assert!(!lockdown.passed);
    assert!(
        lockdown
            .sentence
            .starts_with("the site is in lockdown: door forced")
    );
    assert!(!judge_site("meltdown", "").passed);
}

#[test]
fn the_default_settings_check_the_four_services_for_300_seconds() {
    let settings = HealthGateSettings::default();
    assert_eq!(
        settings.units,
        [
            "trustd.service",
            "hubd.service",
            "minerd.service",
            "sited.service"
        ]
    );
    assert_eq!(settings.timeout.secs(), 300);
    assert_eq!(settings.validate(), Ok(()));
    let read: HealthGateSettings = serde_json::from_str(r#"{"timeout": 30}"#).unwrap();
    assert_eq!(read.timeout.secs(), 30);
    assert!(serde_json::from_str::<HealthGateSettings>(r#"{"timeout": 0}"#).is_err());
    assert!(serde_json::from_str::<HealthGateSettings>(r#"{"tiemout": 30}"#).is_err());
}

#[test]
fn settings_refuse_units_that_are_not_services_and_relative_commands() {
    let settings = HealthGateSettings {
        units: vec![
            "trustd.service".into(),
            "trustd.service".into(),
            "dbus.socket".into(),
        ],
        systemctl: "systemctl".into(),
        sign_as: "Updated".into(),
        ..HealthGateSettings::default()
    };
    let keys: Vec<String> = settings
        .validate()
        .unwrap_err()
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(
        keys,
        [
            "health_gate.units[1]",
            "health_gate.units[2]",
            "health_gate.systemctl",
            "health_gate.sign_as"
        ]
    );
}

#[test]
fn the_statement_names_the_gate_and_the_boot() {
    let boot = "0f7c3a52-9d1e-4c3b-8a57-2b9e6f0d1c44";
    let digest = statement_digest(boot);
    assert_ne!(
        digest,
        statement_digest("0f7c3a52-9d1e-4c3b-8a57-2b9e6f0d1c45")
    );
    let mut statement = b"bunkeros health gate v1\0".to_vec();
    statement.extend_from_slice(boot.as_bytes());
    let expected = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &statement);
    assert_eq!(digest.as_slice(), expected.as_ref());
}

#[test]
fn boot_ids_are_uuids() {
    assert!(BootId::parse("0f7c3a52-9d1e-4c3b-8a57-2b9e6f0d1c44").is_ok());
    for bad in [
        "",
        "0f7c3a52",
        "0F7C3A52-9D1E-4C3B-8A57-2B9E6F0D1C44",
        "0f7c3a52-9d1e-4c3b-8a57-2b9e6f0d1c4\n",
    ] {
        assert!(BootId::parse(bad).is_err(), "{bad:?}");
    }
    assert!(BootId::read().is_ok(), "this kernel has a boot id");
}

#[test]
fn an_unhealthy_verdict_records_its_failed_checks_by_name() {
    let verdict = Verdict::Unhealthy {
        failed: vec![Check::fail(
            "unit:minerd",
            "minerd.service failed (failed, result exit-code)",
        )],
        passed: vec![Check::pass("site-state", "the site is normal")],
        after_secs: 300,
    };
    let json = serde_json::to_value(&verdict).unwrap();
    assert_eq!(json["verdict"], "unhealthy");
    assert_eq!(json["failed"][0]["name"], "unit:minerd");
    assert_eq!(
        verdict.summary(),
        "unhealthy after 300 s: unit:minerd: minerd.service failed (failed, result exit-code)"
    );
    let back: Verdict = serde_json::from_value(json).unwrap();
    assert_eq!(back, verdict);
}

#[test]
fn a_service_missing_from_the_bus_passes_only_when_it_is_not_expected_to_run() {
    let mut skipped = unit("inactive", "dead", "success");
    skipped.unit = "hubd.service".to_owned();
    skipped.condition_result = false;
    let pass = absent_service(
        "hub-links",
        "hubd",
        "org.bunkeros.Hub1",
        &[skipped],
        "not a hub",
    );
    assert_eq!(
        pass,
        Check::pass(
            "hub-links",
            "not a hub: hubd.service is not configured here (skipped by its condition)"
        )
    );
    let mut running = unit("active", "running", "success");
    running.unit = "hubd.service".to_owned();
    assert!(
        !absent_service(
            "hub-links",
            "hubd",
            "org.bunkeros.Hub1",
            &[running],
            "not a hub"
        )
        .passed
    );
    // Not a unit the gate checks: the settings do not expect it.
    let unlisted = absent_service("hub-links", "hubd", "org.bunkeros.Hub1", &[], "not a hub");
    assert!(unlisted.passed);
    assert!(
        unlisted
            .sentence
            .ends_with("hubd.service is not a unit the gate checks")
    );
}
