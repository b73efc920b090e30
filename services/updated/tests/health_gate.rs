//! The health gate against a private bus: a stand-in systemd (units in chosen states), the real
//! trustd on swtpm, a stand-in sited, hubd absent or a stand-in, and stand-in commands for
//! `systemd-bless-boot` and `systemctl` that record how they were called.

#[path = "health_gate/stand_ins.rs"]
mod stand_ins;

use std::time::Duration;

use appliance::audit_log::TrustedKey;
use appliance::config::DurationSecs;
use appliance::dbus::contracts::{SiteState, Trust1Proxy};
use appliance::dbus::testbus::TestBus;
use appliance::dbus::testsite::StandInSite;
use appliance::testtrustd::Trustd;
use stand_ins::{Commands, StandInSystemd, UnitState, stand_in_hub};
use updated::health_gate::{
    BlessError, Blessing, BootId, Check, HealthGate, HealthGateSettings, Round, Verdict, bless,
};

/// The four services, all running.
fn all_running() -> Vec<(&'static str, UnitState)> {
    [
        "trustd.service",
        "hubd.service",
        "minerd.service",
        "sited.service",
    ]
    .into_iter()
    .map(|unit| (unit, UnitState::RUNNING))
    .collect()
}

/// `all_running` with `unit` in `state`.
fn with(unit: &str, state: UnitState) -> Vec<(&'static str, UnitState)> {
    all_running()
        .into_iter()
        .map(|(name, running)| (name, if name == unit { state.clone() } else { running }))
        .collect()
}

/// One hub link to Lisbon, up.
const LINKS_UP: &str = r#"[{"peer":"lisbon-1","jurisdiction":"PT","link":1,"address":"198.51.100.7:7400","up":true,"rtt_ms":10.0}]"#;

/// An appliance on a private bus.
struct Appliance {
    bus: TestBus,
    trustd: Trustd,
    systemd: StandInSystemd,
    site: Option<StandInSite>,
    _hub: Option<zbus::Connection>,
    commands: Commands,
}

impl Appliance {
    /// `units` in their states, the site in `site` (or no sited), and a hub with `links` (or
    /// no hubd).
    async fn start(
        units: &[(&str, UnitState)],
        site: Option<SiteState>,
        links: Option<&str>,
    ) -> Self {
        let bus = TestBus::start().unwrap();
        let site = match site {
            Some(state) => Some(StandInSite::start(&bus.bus(), state, "").await.unwrap()),
            None => None,
        };
        let systemd = StandInSystemd::start(&bus.bus(), units).await;
        let hub = match links {
            Some(links) => Some(stand_in_hub(&bus.bus(), links).await),
            None => None,
        };
        let (trustd, _root) = Trustd::start(bus.address(), "").await;
        Self {
            bus,
            trustd,
            systemd,
            site,
            _hub: hub,
            commands: Commands::new(),
        }
    }

    fn site(&self) -> &StandInSite {
        self.site.as_ref().expect("a stand-in sited")
    }

    fn settings(&self, timeout_secs: u64) -> HealthGateSettings {
        HealthGateSettings {
            timeout: DurationSecs::new(timeout_secs).expect("a timeout the settings accept"),
            bless_boot: self.commands.path("systemd-bless-boot"),
            systemctl: self.commands.path("systemctl"),
            ..HealthGateSettings::default()
        }
    }

    async fn gate(&self, timeout_secs: u64) -> Verdict {
        self.gate_rounds(timeout_secs).await.0
    }

    /// The verdict and every round the gate ran on the way.
    async fn gate_rounds(&self, timeout_secs: u64) -> (Verdict, Vec<Round>) {
        let connection = appliance::dbus::connect(&self.bus.bus()).await.unwrap();
        let gate = HealthGate::new(
            connection,
            self.settings(timeout_secs),
            BootId::read().unwrap(),
        );
        let mut rounds = Vec::new();
        let run = gate.run_observed(|round, _| rounds.push(round.clone()));
        // Bounds "decided" against "hung": the gate answers within its timeout plus one round.
        let verdict = tokio::time::timeout(Duration::from_secs(timeout_secs + 60), run)
            .await
            .expect("the gate decides");
        (verdict, rounds)
    }

    /// trustd's `Status()` document.
    async fn trust_status(&self) -> serde_json::Value {
        let connection = appliance::dbus::connect(&self.bus.bus()).await.unwrap();
        let status = Trust1Proxy::new(&connection)
            .await
            .unwrap()
            .status()
            .await
            .unwrap();
        serde_json::from_str(&status).unwrap()
    }

    /// trustd's CA key as its status shows it.
    async fn ca_key(&self) -> TrustedKey {
        let status = self.trust_status().await;
        TrustedKey::from_sec1_hex(status["public_key"].as_str().unwrap()).unwrap()
    }
}

/// The failed checks of an unhealthy verdict (panics on a healthy one).
fn failed(verdict: &Verdict) -> &[Check] {
    match verdict {
        Verdict::Unhealthy { failed, .. } => failed,
        Verdict::Healthy { .. } => panic!("expected unhealthy: {verdict:#?}"),
    }
}

/// The one failed check, asserting there is exactly one and it is `name`.
fn only_failure<'a>(verdict: &'a Verdict, name: &str) -> &'a Check {
    let failed = failed(verdict);
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].name, name);
    &failed[0]
}

fn check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|check| check.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_appliance_is_blessed_with_trustds_signature_as_evidence() {
    let appliance = Appliance::start(&all_running(), Some(SiteState::Normal), Some(LINKS_UP)).await;
    let verdict = appliance.gate(60).await;
    let Verdict::Healthy {
        checks, signature, ..
    } = &verdict
    else {
        panic!("expected healthy: {verdict:#?}");
    };
    let names: Vec<&str> = checks.iter().map(|check| check.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "unit:trustd",
            "unit:hubd",
            "unit:minerd",
            "unit:sited",
            "trustd-signs",
            "hub-links",
            "site-state"
        ]
    );
    assert_eq!(
        check(checks, "hub-links").sentence,
        "all 1 configured links are up"
    );
    // The evidence verifies with the CA key alone, for this boot.
    assert_eq!(signature.boot_id, BootId::read().unwrap().as_str());
    assert_eq!(signature.service, "updated");
    let key = appliance.ca_key().await;
    assert_eq!(signature.key_id, key.id());
    assert!(signature.verifies_with(&key));
    let mut other_boot = signature.clone();
    other_boot.boot_id = "00000000-0000-4000-8000-000000000000".to_owned();
    assert!(
        !other_boot.verifies_with(&key),
        "the signature is for this boot only"
    );

    let blessing = bless(&appliance.settings(60), &verdict).await.unwrap();
    assert_eq!(blessing, Blessing::Blessed);
    assert_eq!(appliance.commands.calls("systemd-bless-boot"), ["good"]);
    assert!(appliance.commands.calls("systemctl").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_unit_is_named_and_the_slot_is_marked_bad_and_rebooted() {
    let appliance = Appliance::start(
        &with("minerd.service", UnitState::FAILED),
        Some(SiteState::Normal),
        Some(LINKS_UP),
    )
    .await;
    let verdict = appliance.gate(2).await;
    let failure = only_failure(&verdict, "unit:minerd");
    assert_eq!(
        failure.sentence,
        "minerd.service failed (failed, result exit-code)"
    );
    assert!(
        verdict
            .summary()
            .contains("unit:minerd: minerd.service failed"),
        "{}",
        verdict.summary()
    );

    let blessing = bless(&appliance.settings(2), &verdict).await.unwrap();
    assert_eq!(
        blessing,
        Blessing::RollingBack {
            mark_bad_failed: None
        }
    );
    assert_eq!(appliance.commands.calls("systemd-bless-boot"), ["bad"]);
    assert_eq!(appliance.commands.calls("systemctl"), ["reboot --no-block"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_unit_still_activating_when_the_timeout_ends_fails_the_gate() {
    let appliance = Appliance::start(
        &with("sited.service", UnitState::STARTING),
        Some(SiteState::Normal),
        Some(LINKS_UP),
    )
    .await;
    let verdict = appliance.gate(2).await;
    let failure = only_failure(&verdict, "unit:sited");
    assert_eq!(
        failure.sentence,
        "sited.service is still activating (start), not ready"
    );
    let Verdict::Unhealthy { after_secs, .. } = verdict else {
        unreachable!()
    };
    assert!(
        after_secs >= 2,
        "it waited out the timeout ({after_secs} s)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_critical_site_fails_the_gate_with_sites_reason() {
    let appliance = Appliance::start(&all_running(), Some(SiteState::Normal), Some(LINKS_UP)).await;
    appliance
        .site()
        .set(SiteState::Critical, "cooling lost in hall 2")
        .await
        .unwrap();
    let verdict = appliance.gate(2).await;
    let failure = only_failure(&verdict, "site-state");
    assert_eq!(
        failure.sentence,
        "the site is critical: cooling lost in hall 2"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_site_in_lockdown_fails_the_gate_though_trustd_still_signs() {
    // trustd sets its CA up only outside lockdown: the site goes into lockdown after that.
    let appliance = Appliance::start(&all_running(), Some(SiteState::Normal), Some(LINKS_UP)).await;
    appliance
        .site()
        .set(SiteState::Lockdown, "door forced")
        .await
        .unwrap();
    let verdict = appliance.gate(3).await;
    let failure = only_failure(&verdict, "site-state");
    assert!(
        failure.sentence.starts_with("the site is in lockdown"),
        "{failure:?}"
    );
    let Verdict::Unhealthy { passed, .. } = &verdict else {
        unreachable!()
    };
    assert!(check(passed, "trustd-signs").passed);
    // trustd itself was in lockdown, and still signed the gate's statement.
    assert_eq!(appliance.trust_status().await["state"], "lockdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_site_that_leaves_critical_within_the_timeout_is_healthy() {
    let appliance =
        Appliance::start(&all_running(), Some(SiteState::Critical), Some(LINKS_UP)).await;
    let site = appliance.site();
    let recover = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        site.set(SiteState::Normal, "").await.unwrap();
    };
    let ((verdict, rounds), ()) = tokio::join!(appliance.gate_rounds(60), recover);
    let Verdict::Healthy { checks, .. } = &verdict else {
        panic!("expected healthy: {verdict:#?}");
    };
    // The first round saw the site critical and only that; the gate kept polling.
    let first: Vec<&Check> = rounds[0].checks.iter().filter(|c| !c.passed).collect();
    assert_eq!(first.len(), 1, "{first:#?}");
    assert_eq!(first[0].sentence, "the site is critical");
    assert!(rounds.len() >= 2, "{} rounds", rounds.len());
    assert_eq!(check(checks, "site-state").sentence, "the site is normal");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_trustd_cannot_sign_and_fails_the_gate() {
    let mut appliance =
        Appliance::start(&all_running(), Some(SiteState::Normal), Some(LINKS_UP)).await;
    appliance.trustd.stop();
    let verdict = appliance.gate(2).await;
    let failure = only_failure(&verdict, "trustd-signs");
    assert!(
        failure
            .sentence
            .starts_with("trustd cannot sign: trustd is not on the bus"),
        "{failure:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn services_skipped_by_their_condition_pass_as_not_configured() {
    // hubd and sited without their configuration: skipped, not on the bus.
    let units = with("hubd.service", UnitState::SKIPPED);
    let units: Vec<_> = units
        .into_iter()
        .map(|(name, state)| {
            (
                name,
                if name == "sited.service" {
                    UnitState::SKIPPED
                } else {
                    state
                },
            )
        })
        .collect();
    let appliance = Appliance::start(&units, None, None).await;
    let verdict = appliance.gate(60).await;
    let Verdict::Healthy { checks, .. } = &verdict else {
        panic!("expected healthy: {verdict:#?}");
    };
    assert_eq!(
        check(checks, "unit:hubd").sentence,
        "hubd.service is not configured here: systemd skipped it, its condition does not hold"
    );
    assert!(
        check(checks, "hub-links")
            .sentence
            .starts_with("not a hub:")
    );
    assert!(
        check(checks, "site-state")
            .sentence
            .starts_with("no site to monitor:")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_link_down_fails_the_gate_naming_the_link() {
    let links = r#"[{"peer":"lisbon-1","link":1,"up":true,"rtt_ms":10.0},{"peer":"paris-1","link":2,"up":false,"rtt_ms":null}]"#;
    let appliance = Appliance::start(&all_running(), Some(SiteState::Normal), Some(links)).await;
    let verdict = appliance.gate(2).await;
    let failure = only_failure(&verdict, "hub-links");
    assert_eq!(
        failure.sentence,
        "1 of 2 configured links are down: paris-1 link 2"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_hubd_missing_from_the_bus_fails_the_gate() {
    let appliance = Appliance::start(&all_running(), Some(SiteState::Normal), None).await;
    let verdict = appliance.gate(2).await;
    let failure = only_failure(&verdict, "hub-links");
    assert_eq!(
        failure.sentence,
        "hubd is not on the bus (org.bunkeros.Hub1 has no owner)"
    );
}

/// An unhealthy verdict as the gate writes one.
fn unhealthy() -> Verdict {
    Verdict::Unhealthy {
        failed: vec![Check::fail(
            "unit:minerd",
            "minerd.service failed (failed, result exit-code)",
        )],
        passed: Vec::new(),
        after_secs: 300,
    }
}

fn settings_for(commands: &Commands) -> HealthGateSettings {
    HealthGateSettings {
        bless_boot: commands.path("systemd-bless-boot"),
        systemctl: commands.path("systemctl"),
        ..HealthGateSettings::default()
    }
}

#[tokio::test]
async fn the_reboot_is_requested_even_when_marking_the_entry_bad_fails() {
    let commands = Commands::new();
    commands.script("systemd-bless-boot", 1);
    let blessing = bless(&settings_for(&commands), &unhealthy()).await.unwrap();
    let Blessing::RollingBack {
        mark_bad_failed: Some(why),
    } = blessing
    else {
        panic!("expected the failure of `bad` recorded: {blessing:?}");
    };
    assert!(
        why.contains("systemd-bless-boot bad` exited with exit status: 1"),
        "{why}"
    );
    assert!(why.contains("stand-in systemd-bless-boot refuses"), "{why}");
    assert_eq!(commands.calls("systemd-bless-boot"), ["bad"]);
    assert_eq!(commands.calls("systemctl"), ["reboot --no-block"]);
}

#[tokio::test]
async fn a_refused_reboot_is_an_error_that_says_both_failures() {
    let commands = Commands::new();
    commands.script("systemd-bless-boot", 1);
    commands.script("systemctl", 1);
    let error = bless(&settings_for(&commands), &unhealthy())
        .await
        .unwrap_err();
    let BlessError::Reboot {
        mark_bad_failed: Some(_),
        reboot,
    } = &error
    else {
        panic!("expected a reboot error: {error:?}");
    };
    assert!(
        reboot.command.ends_with("systemctl reboot --no-block"),
        "{reboot:?}"
    );
    assert_eq!(commands.calls("systemctl"), ["reboot --no-block"]);
}

#[tokio::test]
async fn a_missing_bless_boot_is_reported_not_taken_for_success() {
    let commands = Commands::new();
    let settings = HealthGateSettings {
        bless_boot: commands.path("no-such-systemd-bless-boot"),
        ..settings_for(&commands)
    };
    let healthy = Verdict::Healthy {
        checks: Vec::new(),
        signature: updated::health_gate::GateSignature {
            boot_id: String::new(),
            service: "updated".to_owned(),
            digest: String::new(),
            public_key: String::new(),
            key_id: String::new(),
            signature: String::new(),
        },
        after_secs: 1,
    };
    let error = bless(&settings, &healthy).await.unwrap_err();
    let BlessError::Good(failed) = &error else {
        panic!("expected a failed `good`: {error:?}");
    };
    assert!(failed.why.starts_with("could not run"), "{failed:?}");
    assert!(commands.calls("systemctl").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_unit_that_becomes_ready_within_the_timeout_passes() {
    let appliance = Appliance::start(
        &with("minerd.service", UnitState::STARTING),
        Some(SiteState::Normal),
        Some(LINKS_UP),
    )
    .await;
    let ready = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        appliance.systemd.set("minerd.service", UnitState::RUNNING);
    };
    let ((verdict, rounds), ()) = tokio::join!(appliance.gate_rounds(60), ready);
    assert!(verdict.is_healthy(), "{verdict:#?}");
    assert!(!check(&rounds[0].checks, "unit:minerd").passed);
}
