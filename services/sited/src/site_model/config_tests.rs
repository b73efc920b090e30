use super::*;

fn known(sensor: &SensorId) -> bool {
    [
        "hall-a.temp-1",
        "hall-a.temp-2",
        "hall-a.field-out",
        "hall-a.field-in",
        "door-1.open",
        "door-1.latched",
        "door-1.seal",
        "door-1.cycles",
    ]
    .contains(&sensor.as_str())
}

fn parse(text: &str) -> SiteModelConfig {
    toml::from_str(text).unwrap()
}

/// The keys and reasons of every problem, as `key: reason` lines.
fn problems(text: &str) -> Vec<String> {
    match parse(text).validate(&known) {
        Ok(()) => Vec::new(),
        Err(problems) => problems
            .into_iter()
            .map(|p| format!("{}: {}", p.key, p.reason))
            .collect(),
    }
}

const GOOD: &str = r#"
[[zone]]
name = "hall-a"
temperature = ["hall-a.temp-1", "hall-a.temp-2"]
limit_c = 35.0
shielding = { outside = "hall-a.field-out", inside = "hall-a.field-in", required_db = 80.0 }

[[door]]
name = "door-1"
open = "door-1.open"
latched = "door-1.latched"
seal_kpa = "door-1.seal"
cycles = "door-1.cycles"
cycle_limit = 10000

[[maintenance]]
name = "se-survey"
what = "HEMP shielding effectiveness survey (MIL-STD-188-125-1)"
due = "2027-03-01"
"#;

#[test]
fn a_full_model_is_accepted_and_names_its_derived_sensors() {
    let config = parse(GOOD);
    assert_eq!(config.validate(&known), Ok(()));
    assert_eq!(config.maintenance[0].warn_days, 30, "the default");
    let derived: Vec<(String, &str)> = config
        .derived_sensors()
        .into_iter()
        .map(|(id, unit)| (id.to_string(), unit))
        .collect();
    assert_eq!(
        derived,
        [
            ("zone.hall-a.shielding_db".to_owned(), "dB"),
            ("zone.hall-a.shielding_margin_db".to_owned(), "dB"),
            ("zone.hall-a.hottest_c".to_owned(), "°C"),
            ("door.door-1.cycles_left".to_owned(), "cycles"),
            ("maintenance.se-survey.days_left".to_owned(), "days"),
        ]
    );
}

#[test]
fn an_empty_model_is_accepted_and_derives_nothing() {
    let config = parse("");
    assert_eq!(config, SiteModelConfig::default());
    assert_eq!(config.validate(&known), Ok(()));
    assert!(config.derived_sensors().is_empty());
}

#[test]
fn unknown_keys_are_refused() {
    let err =
        toml::from_str::<SiteModelConfig>("[[zone]]\nname = \"a\"\nlimit = 30.0\n").unwrap_err();
    assert!(err.to_string().contains("unknown field `limit`"), "{err}");
    assert!(toml::from_str::<SiteModelConfig>("[[room]]\nname = \"a\"\n").is_err());
}

#[test]
fn names_are_checked_and_unique_per_kind() {
    let found = problems(
        r#"
[[zone]]
name = "Hall A"
[[zone]]
name = "b"
[[zone]]
name = "b"
[[door]]
name = "b"
open = "door-1.open"
[[maintenance]]
name = "-x"
what = "survey"
due = "2027-01-01"
[[maintenance]]
name = "a-name-of-thirty-three-characters"
what = "survey"
due = "2027-01-01"
"#,
    );
    assert_eq!(
        found,
        [
            "zone[0].name: `Hall A` is not a zone name: use 1 to 32 of a-z 0-9 -, starting with a \
             letter or digit",
            "zone[2].name: a zone named `b` is already defined above",
            "maintenance[0].name: `-x` is not a maintenance name: use 1 to 32 of a-z 0-9 -, \
             starting with a letter or digit",
            "maintenance[1].name: `a-name-of-thirty-three-characters` is not a maintenance name: \
             use 1 to 32 of a-z 0-9 -, starting with a letter or digit",
        ],
        "a door may share a zone's name"
    );
}

#[test]
fn unknown_sensors_are_refused_with_their_key() {
    let found = problems(
        r#"
[[zone]]
name = "a"
temperature = ["hall-a.temp-1", "hall-b.temp"]
shielding = { outside = "x.out", inside = "hall-a.field-in", required_db = 80.0 }
[[door]]
name = "d"
open = "door-2.open"
seal_kpa = "door-2.seal"
"#,
    );
    assert_eq!(
        found,
        [
            "zone[0].temperature[1]: no sensor driver provides `hall-b.temp`",
            "zone[0].shielding.outside: no sensor driver provides `x.out`",
            "door[0].open: no sensor driver provides `door-2.open`",
            "door[0].seal_kpa: no sensor driver provides `door-2.seal`",
        ]
    );
}

#[test]
fn zone_limits_and_shielding_are_checked() {
    let found = problems(
        r#"
[[zone]]
name = "a"
limit_c = 30.0
[[zone]]
name = "b"
temperature = ["hall-a.temp-1", "hall-a.temp-1"]
limit_c = 450.0
shielding = { outside = "hall-a.field-in", inside = "hall-a.field-in", required_db = 0.0 }
"#,
    );
    assert_eq!(
        found,
        [
            "zone[0].limit_c: needs at least one `temperature` sensor to compare with",
            "zone[1].temperature[1]: `hall-a.temp-1` is listed twice",
            "zone[1].limit_c: 450 °C is not a room temperature limit: use -50 to 150",
            "zone[1].shielding.inside: is the same probe as `outside`: the attenuation would \
             always read 0 dB",
            "zone[1].shielding.required_db: 0 dB is not a shielding requirement: use more than 0 \
             and at most 200",
        ]
    );
}

#[test]
fn door_cycle_limits_need_a_counter() {
    let found = problems(
        r#"
[[door]]
name = "a"
open = "door-1.open"
cycle_limit = 5000
[[door]]
name = "b"
open = "door-1.open"
cycles = "door-1.cycles"
cycle_limit = 0
"#,
    );
    assert_eq!(
        found,
        [
            "door[0].cycle_limit: needs a `cycles` counter to count against",
            "door[1].cycle_limit: must be at least 1",
        ]
    );
    let counter_alone =
        "[[door]]\nname = \"a\"\nopen = \"door-1.open\"\ncycles = \"door-1.cycles\"\n";
    assert_eq!(problems(counter_alone), Vec::<String>::new());
    assert!(parse(counter_alone).derived_sensors().is_empty());
}

#[test]
fn maintenance_dates_are_checked() {
    for bad in [
        "2027-13-01",
        "2027-02-30",
        "27-01-01",
        "2027-1-01",
        "2027/01/01",
        "soon",
        "",
    ] {
        let text = format!("[[maintenance]]\nname = \"m\"\nwhat = \"survey\"\ndue = \"{bad}\"\n");
        assert_eq!(
            problems(&text),
            [format!(
                "maintenance[0].due: `{bad}` is not a date: write YYYY-MM-DD"
            )],
            "{bad}"
        );
    }
    let found = problems(
        "[[maintenance]]\nname = \"m\"\nwhat = \" \"\ndue = \"2028-02-29\"\nwarn_days = 4000\n",
    );
    assert_eq!(
        found,
        [
            "maintenance[0].what: must say what is due",
            "maintenance[0].warn_days: 4000 days is more than 3650",
        ]
    );
    assert!(
        toml::from_str::<SiteModelConfig>("[[maintenance]]\nname = \"m\"\nwhat = \"s\"\n").is_err(),
        "due is required"
    );
}

#[test]
fn a_derived_name_a_driver_already_provides_is_refused() {
    let clash = |s: &SensorId| known(s) || s.as_str() == "zone.a.hottest_c";
    let config = parse("[[zone]]\nname = \"a\"\ntemperature = [\"hall-a.temp-1\"]\n");
    let problems = config.validate(&clash).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key, "zone[0].name");
    assert_eq!(
        problems[0].reason,
        "makes the sensor `zone.a.hottest_c`, which a driver already provides: rename one"
    );
}

#[test]
fn problems_point_at_the_file_line_and_column() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("sited.toml");
    std::fs::write(
        &path,
        "[[zone]]\nname = \"a\"\ntemperature = [\"hall-a.temp-1\"]\n\n[[zone]]\nname = \"b\"\n\
         temperature = [\"hall-a.temp-2\"]\nlimit_c = 900.0\n",
    )
    .unwrap();
    let err = appliance::config::load_file(&path, |c: &SiteModelConfig| c.validate(&known))
        .unwrap_err()
        .to_string()
        .replace(&path.display().to_string(), "/etc/sited.toml");
    assert!(
        err.starts_with("/etc/sited.toml:8:1: `zone[1].limit_c`: 900 °C is not a room"),
        "{err}"
    );
}
