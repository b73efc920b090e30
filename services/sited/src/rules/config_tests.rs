use super::*;

fn known(sensor: &SensorId) -> bool {
    ["hall-a.temp", "hall-a.door", "ups.charge", "site.alert"].contains(&sensor.as_str())
}

/// Loads `text` from a file, with the file's path shown as `/etc/sited.toml` in errors.
fn load(text: &str) -> Result<RuleSet, String> {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("sited.toml");
    std::fs::write(&path, text).unwrap();
    load_rules(&path, &known).map_err(|e| {
        e.to_string()
            .replace(&path.display().to_string(), "/etc/sited.toml")
    })
}

#[test]
fn every_kind_of_rule_compiles() {
    let set = load(
        r#"
[[rule]]
name = "hot"
kind = "threshold"
severity = "warning"
sensor = "hall-a.temp"
above = 40.0
clear_at = 37.0
hold = 30
clear_hold = 60

[[rule]]
name = "heating"
kind = "rate"
severity = "info"
sensor = "hall-a.temp"
window = 300
rise_per_minute = 0.5

[[rule]]
name = "door"
kind = "contact"
severity = "warning"
sensor = "hall-a.door"

[[rule]]
name = "ups-lost"
kind = "lost"
severity = "critical"
sensor = "ups.charge"
stale_after = 20

[[rule]]
name = "door-in-alert"
kind = "composite"
severity = "critical"
site_state = "lockdown"
all = ["door", "alert"]
inhibits = ["door"]
[[rule.escalation]]
after = 60
notify = ["duty"]
[[rule.escalation]]
after = 300
severity = "critical"

[[rule]]
name = "alert"
kind = "contact"
severity = "info"
sensor = "site.alert"
active = true
"#,
    )
    .unwrap();
    let names: Vec<&str> = set.rules().iter().map(|r| r.name.as_str()).collect();
    let composite = names.iter().position(|n| *n == "door-in-alert").unwrap();
    let alert = names.iter().position(|n| *n == "alert").unwrap();
    assert!(
        alert < composite,
        "composites follow what they read: {names:?}"
    );
    let hot = set.get("hot").unwrap();
    assert_eq!(
        hot.condition,
        Condition::Threshold(Threshold {
            sensor: SensorId::new("hall-a.temp").unwrap(),
            limit: Limit::Above(40.0),
            clear_at: 37.0,
            hold: Duration::from_secs(30),
            clear_hold: Duration::from_secs(60),
        })
    );
    assert_eq!(set.get("door-in-alert").unwrap().escalation.len(), 2);
}

#[test]
fn an_unknown_sensor_is_refused_at_its_line() {
    let err = load(
        "[[rule]]\nname = \"hot\"\nkind = \"threshold\"\nseverity = \"warning\"\n\
         sensor = \"hall-b.temp\"\nabove = 40.0\n",
    )
    .unwrap_err();
    assert_eq!(
        err,
        "/etc/sited.toml:5:1: `rule[0].sensor`: there is no sensor `hall-b.temp` in the site model"
    );
}

#[test]
fn clear_at_on_the_wrong_side_is_refused() {
    let err = load(
        "[[rule]]\nname = \"hot\"\nkind = \"threshold\"\nseverity = \"warning\"\n\
         sensor = \"hall-a.temp\"\nabove = 40.0\nclear_at = 42.0\n",
    )
    .unwrap_err();
    assert!(
        err.starts_with("/etc/sited.toml:7:1: `rule[0].clear_at`: 42 is above the limit 40"),
        "{err}"
    );
    let err = load(
        "[[rule]]\nname = \"low\"\nkind = \"threshold\"\nseverity = \"warning\"\n\
         sensor = \"ups.charge\"\nbelow = 20.0\nclear_at = 10.0\n",
    )
    .unwrap_err();
    assert!(
        err.contains("`rule[0].clear_at`: 10 is below the limit 20"),
        "{err}"
    );
}

#[test]
fn an_unknown_rule_in_inhibits_is_refused() {
    let err = load(
        "[[rule]]\nname = \"door\"\nkind = \"contact\"\nseverity = \"warning\"\n\
         sensor = \"hall-a.door\"\ninhibits = [\"dor\"]\n",
    )
    .unwrap_err();
    assert_eq!(
        err,
        "/etc/sited.toml:6:13: `rule[0].inhibits[0]`: there is no rule named `dor` to inhibit"
    );
}

#[test]
fn a_cycle_of_composites_is_refused() {
    let err = load(
        r#"[[rule]]
name = "a"
kind = "composite"
severity = "warning"
any = ["b"]

[[rule]]
name = "b"
kind = "composite"
severity = "warning"
all = ["c"]

[[rule]]
name = "c"
kind = "composite"
severity = "warning"
any = ["a"]
"#,
    )
    .unwrap_err();
    assert_eq!(
        err,
        "/etc/sited.toml:5:1: `rule[0].any`: composite rules refer to each other in a cycle: \
         a → b → c → a"
    );
}

#[test]
fn keys_of_another_kind_and_missing_keys_are_refused() {
    let err = load(
        "[[rule]]\nname = \"door\"\nkind = \"contact\"\nseverity = \"warning\"\n\
         sensor = \"hall-a.door\"\nhold = 5\n",
    )
    .unwrap_err();
    assert!(
        err.contains(
            ":6:1: `rule[0].hold`: applies only to threshold, rate rules, not to a contact rule"
        ),
        "{err}"
    );
    let err = load(
        "[[rule]]\nname = \"r\"\nkind = \"rate\"\nseverity = \"info\"\nsensor = \"ups.charge\"\n",
    )
    .unwrap_err();
    assert!(err.contains("needs `rise_per_minute`"), "{err}");
    assert!(err.contains("needs a `window`"), "{err}");
    let err = load(
        "[[rule]]\nname = \"t\"\nkind = \"threshold\"\nseverity = \"info\"\nsensor = \"ups.charge\"\n\
         above = 1.0\nbelow = 0.0\n",
    )
    .unwrap_err();
    assert!(err.contains("`above` or `below`, not both"), "{err}");
}

#[test]
fn names_are_checked_and_unique() {
    let rule = |name: &str| {
        format!(
            "[[rule]]\nname = \"{name}\"\nkind = \"contact\"\nseverity = \"info\"\nsensor = \"hall-a.door\"\n"
        )
    };
    let err = load(&format!("{}{}", rule("door"), rule("door"))).unwrap_err();
    assert!(
        err.contains(":7:1: `rule[1].name`: a rule named `door` is already defined above"),
        "{err}"
    );
    let err = load(&rule("Door 1")).unwrap_err();
    assert!(err.contains("`Door 1` is not a rule name"), "{err}");
}

#[test]
fn escalation_steps_must_be_in_order_and_do_something() {
    let err = load(
        "[[rule]]\nname = \"door\"\nkind = \"contact\"\nseverity = \"info\"\nsensor = \"hall-a.door\"\n\
         [[rule.escalation]]\nafter = 60\nnotify = [\"duty\"]\n\
         [[rule.escalation]]\nafter = 30\n",
    )
    .unwrap_err();
    assert!(
        err.contains("`rule[0].escalation[1].after`: escalation steps must come in order"),
        "{err}"
    );
    assert!(
        err.contains("`rule[0].escalation[1]`: an escalation step must raise"),
        "{err}"
    );
}

#[test]
fn syntax_errors_and_unknown_keys_carry_positions() {
    let err = load(
        "[[rule]]\nname = \"door\"\nkind = \"contact\"\nseverity = \"warning\"\nsensr = \"x\"\n",
    )
    .unwrap_err();
    assert!(
        err.starts_with("/etc/sited.toml:5:1: unknown key `sensr`"),
        "{err}"
    );
    let err = load("[[rule]]\nname = \"t\"\nkind = \"lost\"\nseverity = \"info\"\nsensor = \"ups.charge\"\nstale_after = 0\n")
        .unwrap_err();
    assert!(
        err.starts_with("/etc/sited.toml:6:15: duration 0 is out of range"),
        "{err}"
    );
    let err = load("[[rule]]\nname = \"t\"\nkind = \"gauge\"\n").unwrap_err();
    assert!(
        err.starts_with("/etc/sited.toml:3:8: unknown value `gauge`"),
        "{err}"
    );
}

#[test]
fn compile_checks_specs_embedded_in_another_document() {
    // The daemon's own config struct holds `rule: Vec<RuleSpec>`; the keys stay `rule[N]...`.
    let doc: RulesConfig = toml::from_str(
        "[[rule]]\nname = \"c\"\nkind = \"composite\"\nseverity = \"info\"\nall = []\n",
    )
    .unwrap();
    let problems = compile(&doc.rule, &known).unwrap_err();
    assert_eq!(problems, vec![Invalid::new("rule[0].all", "names no rule")]);
    assert!(doc.validate(&known).is_err());
}
