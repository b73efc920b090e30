use super::*;
use crate::snmp::agent::error_status_name;

fn entry(extra: &str) -> OidSensor {
    toml::from_str(&format!(
        "sensor = \"probe.t\"\noid = \"1.3.6.1.4.1.99999.1.0\"\n{extra}"
    ))
    .unwrap()
}

#[test]
fn numbers_are_scaled_and_checked_against_the_range() {
    let e = entry("scale = 0.1\nmin = -40\nmax = 85");
    assert_eq!(
        sensor_value(&e, &Reading::Integer(215)),
        Ok(Value::Number(21.5))
    );
    assert_eq!(
        sensor_value(&e, &Reading::Integer(-400)),
        Ok(Value::Number(-40.0))
    );
    assert_eq!(
        sensor_value(&e, &Reading::Integer(900)),
        Err(LostReason::OutOfRange {
            value: 90.0,
            min: -40.0,
            max: 85.0
        })
    );
    // Counter64 values beyond f64's exact range are still numbers, not errors.
    assert_eq!(
        sensor_value(&entry(""), &Reading::Integer(u64::MAX.into())),
        Ok(Value::Number(u64::MAX as f64))
    );
}

#[test]
fn a_decimal_below_min_is_out_of_range() {
    let e = entry("min = 0\nmax = 100");
    match sensor_value(&e, &Reading::Decimal(-0.5)) {
        Err(LostReason::OutOfRange { value, min, max }) => {
            assert_eq!((value, min, max), (-0.5, 0.0, 100.0))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn contacts_are_active_on_the_listed_values_only() {
    let e = entry("contact = [2, 3]");
    assert_eq!(
        sensor_value(&e, &Reading::Integer(2)),
        Ok(Value::Contact(true))
    );
    assert_eq!(
        sensor_value(&e, &Reading::Integer(3)),
        Ok(Value::Contact(true))
    );
    assert_eq!(
        sensor_value(&e, &Reading::Integer(1)),
        Ok(Value::Contact(false))
    );
    assert!(matches!(
        sensor_value(&e, &Reading::Decimal(2.0)),
        Err(LostReason::Malformed { .. })
    ));
}

#[test]
fn absent_and_non_numeric_values_lose_the_sensor() {
    let e = entry("");
    assert_eq!(
        sensor_value(&e, &Reading::Absent("noSuchInstance")),
        Err(LostReason::Refused {
            detail: "noSuchInstance for 1.3.6.1.4.1.99999.1.0".into()
        })
    );
    for long in ["x".repeat(500), "é".repeat(500)] {
        match sensor_value(&e, &Reading::NotANumber(long)) {
            Err(LostReason::Malformed { detail }) => assert!(detail.len() <= 160, "{detail}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn error_statuses_are_named() {
    assert_eq!(error_status_name(5), "error-status genErr");
    assert_eq!(error_status_name(1), "error-status tooBig");
    assert_eq!(error_status_name(77), "error-status 77");
}
