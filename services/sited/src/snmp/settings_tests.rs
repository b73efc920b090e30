use super::*;

const PDU: &str = r#"
address = "10.0.0.20"
community = "public"

[[oid]]
sensor = "pdu-a.current_a"
oid = "1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1"
scale = 0.1
unit_of_measure = "A"
min = 0
max = 64

[[oid]]
sensor = "hall-a.door-1.open"
oid = ".1.3.6.1.4.1.318.1.1.10.4.3.3.1.5.1"
contact = [2]
"#;

fn problem_keys(s: &SnmpSettings) -> Vec<String> {
    match s.validate("snmp[0]") {
        Ok(()) => Vec::new(),
        Err(problems) => problems.into_iter().map(|p| p.key).collect(),
    }
}

#[test]
fn a_pdu_with_defaults_is_valid() {
    let s: SnmpSettings = toml::from_str(PDU).unwrap();
    assert_eq!(s.validate("snmp[0]"), Ok(()));
    assert_eq!(s.agent_address(), "10.0.0.20:161");
    assert_eq!(s.poll_period(), Duration::from_millis(5000));
    assert_eq!(s.retries, 1);
    assert_eq!(s.oids_per_request, 16);
    assert_eq!(s.oid[0].scale, 0.1);
    assert_eq!(s.oid[1].scale, 1.0);
    assert_eq!(s.oid[1].contact, Some(vec![2]));
    assert_eq!(s.oid[1].arcs().unwrap()[..4], [1, 3, 6, 1]);
}

#[test]
fn unknown_keys_and_bad_sensor_names_are_refused_when_read() {
    assert!(toml::from_str::<SnmpSettings>(&format!("{PDU}\npoll = 1")).is_err());
    assert!(toml::from_str::<SnmpSettings>(&PDU.replace("pdu-a.current_a", "PDU A")).is_err());
    assert!(toml::from_str::<SnmpSettings>(&PDU.replace("scale = 0.1", "scael = 0.1")).is_err());
}

#[test]
fn oids_are_checked() {
    assert_eq!(
        parse_oid("1.3.6.1.2.1.1.3.0"),
        Ok(vec![1, 3, 6, 1, 2, 1, 1, 3, 0])
    );
    assert_eq!(parse_oid(".1.3.6"), Ok(vec![1, 3, 6]));
    assert_eq!(parse_oid("2.999.1"), Ok(vec![2, 999, 1]));
    for bad in [
        "",
        "1",
        "1.3.",
        "1..3",
        "3.1",
        "1.40",
        "1.3.6.x",
        "1.3.-6",
        "1.3.4294967296",
        "sysUpTime.0",
        " 1.3.6",
    ] {
        assert_eq!(parse_oid(bad), Err(BadOid(bad.to_owned())), "{bad}");
    }
    let s: SnmpSettings =
        toml::from_str(&PDU.replace("1.3.6.1.4.1.318.1.1.12", "1.3.6.one")).unwrap();
    assert_eq!(problem_keys(&s), ["snmp[0].oid[0].oid"]);
}

#[test]
fn polls_must_fit_in_a_poll_period() {
    let s: SnmpSettings = toml::from_str(&format!(
        "poll_ms = 1000\ndeadline_ms = 600\nretries = 1\n{PDU}"
    ))
    .unwrap();
    let problems = s.validate("snmp[0]").unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key, "snmp[0].deadline_ms");
    assert!(
        problems[0].reason.contains("1200 ms"),
        "{}",
        problems[0].reason
    );
    let s: SnmpSettings =
        toml::from_str(&format!("poll_ms = 1000\ndeadline_ms = 500\n{PDU}")).unwrap();
    assert_eq!(s.validate("snmp[0]"), Ok(()));
}

#[test]
fn nonsense_values_are_named_by_key() {
    let s: SnmpSettings = toml::from_str(&format!(
        "poll_ms = 5\nretries = 9\noids_per_request = 0\n{}",
        PDU.replace("community = \"public\"", "community = \"\"")
            .replace("max = 64", "max = -1")
            .replace("contact = [2]", "contact = []")
    ))
    .unwrap();
    assert_eq!(
        problem_keys(&s),
        [
            "snmp[0].community",
            "snmp[0].poll_ms",
            "snmp[0].retries",
            "snmp[0].oids_per_request",
            "snmp[0].oid[0].max",
            "snmp[0].oid[1].contact",
        ]
    );
}

#[test]
fn contacts_have_no_scale_and_sensors_are_named_once() {
    let s: SnmpSettings =
        toml::from_str(&PDU.replace("contact = [2]", "contact = [2]\nunit_of_measure = \"V\""))
            .unwrap();
    assert_eq!(problem_keys(&s), ["snmp[0].oid[1].contact"]);
    let s: SnmpSettings =
        toml::from_str(&PDU.replace("hall-a.door-1.open", "pdu-a.current_a")).unwrap();
    assert_eq!(problem_keys(&s), ["snmp[0].oid[1].sensor"]);
    let s: SnmpSettings =
        toml::from_str("address = \"a\"\ncommunity = \"public\"\noid = []").unwrap();
    assert_eq!(problem_keys(&s), ["snmp[0].oid"]);
}
