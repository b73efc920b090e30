use super::*;
use crate::rollout::test_evidence::{TestHub, plan_text};

fn keys(text: &str) -> Vec<String> {
    match RolloutPlan::parse(text) {
        Err(PlanError::Invalid(problems)) => problems.into_iter().map(|p| p.key).collect(),
        other => panic!("expected validation problems, got {other:?}"),
    }
}

#[test]
fn a_good_plan_parses_with_defaults() {
    let hubs = [TestHub::new("malaga"), TestHub::new("sevilla")];
    let text = plan_text(&hubs, &[&[0], &[1]], 60, 600);
    let plan = RolloutPlan::parse(&text).unwrap();
    assert_eq!(plan.waves.len(), 2);
    assert_eq!(plan.canary_hubs, 1);
    assert_eq!(plan.hub("sevilla").unwrap().ca_key, hubs[1].ca_key_hex());
    let minimal = text.replace("soak_secs = 60\nwave_timeout_secs = 600\n", "");
    let plan = RolloutPlan::parse(&minimal).unwrap();
    assert_eq!(
        (plan.soak_secs.secs(), plan.wave_timeout_secs.secs()),
        (3600, 7200)
    );
}

#[test]
fn a_hub_in_two_waves_in_none_or_unknown_is_refused_with_its_key() {
    let hubs = [TestHub::new("a"), TestHub::new("b"), TestHub::new("c")];
    // b twice, c in no wave.
    assert_eq!(
        keys(&plan_text(&hubs, &[&[0], &[1, 1]], 0, 600)),
        ["wave[1].hubs[1]", "hub[2].id"]
    );
    let unknown =
        plan_text(&hubs, &[&[0], &[1, 2]], 0, 600).replace("hubs = [\"a\"]", "hubs = [\"zz\"]");
    assert_eq!(keys(&unknown), ["wave[0].hubs[0]", "hub[0].id"]);
}

#[test]
fn the_first_wave_is_a_canary_unless_stated() {
    let hubs = [TestHub::new("a"), TestHub::new("b"), TestHub::new("c")];
    let text = plan_text(&hubs, &[&[0, 1], &[2]], 0, 600);
    assert_eq!(keys(&text), ["wave[0].hubs"]);
    let stated = text.replace("source = \"usb\"\n", "source = \"usb\"\ncanary_hubs = 2\n");
    assert!(RolloutPlan::parse(&stated).is_ok());
}

#[test]
fn names_keys_versions_and_sources_are_checked() {
    let hubs = [TestHub::new("a")];
    let text = plan_text(&hubs, &[&[0]], 0, 600)
        .replace("id = \"spring\"", "id = \"Spring/1\"")
        .replace("\"0.2.0\"", "\"0.2\"")
        .replace("source = \"usb\"", "source = \"ftp://x\"")
        .replace("name = \"w1\"", "name = \"\"")
        .replace(&hubs[0].ca_key_hex(), "04abcd");
    assert_eq!(
        keys(&text),
        [
            "id",
            "release_version",
            "source",
            "hub[0].ca_key",
            "wave[0].name"
        ]
    );
    let bad_pcr =
        plan_text(&hubs, &[&[0]], 0, 600).replace("expected_pcr11 = \"9f", "expected_pcr11 = \"zz");
    assert_eq!(keys(&bad_pcr), ["expected_pcr11"]);
    for source in [
        "/srv/release",
        "dir:/srv/release",
        "https://mirror.example/r",
        "usb",
    ] {
        let text = plan_text(&hubs, &[&[0]], 0, 600).replace("\"usb\"", &format!("{source:?}"));
        assert!(RolloutPlan::parse(&text).is_ok(), "{source}");
    }
}

#[test]
fn empty_plans_and_unknown_keys_are_refused() {
    let text = "id = \"x\"\nrelease_version = \"0.2.0\"\nexpected_pcr11 = \"{}\"\nsource = \"usb\"\nwave = []\nhub = []\n"
        .replace("{}", &"ab".repeat(32));
    assert_eq!(keys(&text), ["hub", "wave"]);
    let typo = text.replace("source", "sorce");
    let Err(PlanError::Syntax(message)) = RolloutPlan::parse(&typo) else {
        panic!()
    };
    assert!(
        message.contains("line 4") && message.contains("sorce"),
        "{message}"
    );
    let short_timeout = text.replace(
        "source = \"usb\"",
        "source = \"usb\"\nwave_timeout_secs = 5",
    );
    assert!(matches!(
        RolloutPlan::parse(&short_timeout),
        Err(PlanError::Syntax(_))
    ));
    assert_eq!(
        RolloutPlan::parse(&"#".repeat(MAX_PLAN_BYTES + 1)),
        Err(PlanError::TooLarge)
    );
}
