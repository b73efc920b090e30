//! Mining quantities as an operator reads them: a fleet's hashrate in PH/s and its power in MW,
//! one miner's in TH/s and kW; `-` when minerd has no figure (a miner that did not answer).

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// TH/s as `104.5 TH/s`, or `120.45 PH/s` from 1,000 TH/s on.
pub fn hashrate(ths: &Value) -> String {
    match ths.as_f64() {
        None => "-".to_owned(),
        Some(ths) if ths >= 1_000.0 => format!("{:.2} PH/s", ths / 1_000.0),
        Some(ths) => format!("{ths:.1} TH/s"),
    }
}

/// Watts as `850 W`, `3.25 kW` from 1 kW on, `3.61 MW` from 1 MW on.
pub fn power(watts: &Value) -> String {
    match watts.as_f64() {
        None => "-".to_owned(),
        Some(w) if w >= 1_000_000.0 => format!("{:.2} MW", w / 1_000_000.0),
        Some(w) if w >= 1_000.0 => format!("{:.2} kW", w / 1_000.0),
        Some(w) => format!("{w:.0} W"),
    }
}

/// J/TH as `30.0 J/TH`.
pub fn efficiency(j_per_th: &Value) -> String {
    match j_per_th.as_f64() {
        None => "-".to_owned(),
        Some(e) => format!("{e:.1} J/TH"),
    }
}

/// °C as `71.0 °C`.
pub fn temperature(celsius: &Value) -> String {
    match celsius.as_f64() {
        None => "-".to_owned(),
        Some(c) => format!("{c:.1} °C"),
    }
}

/// A number with `decimals` places, or `-`.
pub fn number(value: &Value, decimals: usize) -> String {
    match value.as_f64() {
        None => "-".to_owned(),
        Some(n) => format!("{n:.decimals$}"),
    }
}

/// An RFC 3339 time as µs since the epoch, for "12s ago"; `None` when absent or not a time.
pub fn rfc3339_usec(value: &Value) -> Option<u64> {
    let at = OffsetDateTime::parse(value.as_str()?, &Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fleet_figures_scale_and_missing_ones_are_a_dash() {
        assert_eq!(hashrate(&json!(104.46)), "104.5 TH/s");
        assert_eq!(hashrate(&json!(120_450.0)), "120.45 PH/s");
        assert_eq!(hashrate(&Value::Null), "-");
        assert_eq!(power(&json!(850.0)), "850 W");
        assert_eq!(power(&json!(3250)), "3.25 kW");
        assert_eq!(power(&json!(3_610_000.0)), "3.61 MW");
        assert_eq!(efficiency(&json!(29.96)), "30.0 J/TH");
        assert_eq!(temperature(&json!(71)), "71.0 °C");
        assert_eq!(number(&Value::Null, 1), "-");
    }

    #[test]
    fn times_parse_as_rfc3339_only() {
        assert_eq!(
            rfc3339_usec(&json!("1970-01-01T00:00:01Z")),
            Some(1_000_000)
        );
        assert_eq!(rfc3339_usec(&json!("yesterday")), None);
        assert_eq!(rfc3339_usec(&Value::Null), None);
    }
}
