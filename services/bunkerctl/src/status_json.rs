//! The machine view of `bunkerctl status --json`: a stable shape that scripts and the boot test parse.
//!
//! One JSON object on one line:
//!
//! ```json
//! {"hostname": "bunker-01",
//!  "units": [{"unit": "trustd.service",
//!             "role": "site certificate authority (keys in the TPM)",
//!             "load_state": "loaded",
//!             "active_state": "active",
//!             "sub_state": "running",
//!             "since_usec": 1767268620000000,
//!             "status_text": "issuing",
//!             "main_pid": 412,
//!             "restarts": 0}]}
//! ```
//!
//! - `units` lists every unit of `appliance::units::BUNKEROS_UNITS`, in that order, installed or not.
//! - `load_state`, `active_state`, `sub_state`: systemd's `LoadState`, `ActiveState`, `SubState`,
//!   verbatim. A unit the image does not ship has `load_state` `"not-found"`.
//! - `since_usec`: when the unit entered its current active state (`StateChangeTimestamp`), µs since
//!   the Unix epoch, or `null` if systemd has no timestamp (a unit never started).
//! - `status_text`: the service's last `STATUS=` text, verbatim, or `null` if empty. systemd keeps it
//!   after the service exits, so it is current only when `main_pid` is not `null`.
//! - `main_pid`: PID of the main process, or `null` when none runs.
//! - `restarts`: systemd's `NRestarts`, or `null` for a unit that is not a loaded service.
//!
//! Fields are only ever added, never renamed, retyped or removed. The exit code carries the
//! verdict as for the table: 0 every installed unit active, 3 not, 1 systemd unreachable.

use serde_json::{Value, json};

use crate::snapshot::{ApplianceStatus, UnitSnapshot};

/// The `--json` document for one snapshot.
pub fn status_json(status: &ApplianceStatus) -> Value {
    json!({
        "hostname": status.hostname,
        "units": status.units.iter().map(unit_json).collect::<Vec<_>>(),
    })
}

fn unit_json(unit: &UnitSnapshot) -> Value {
    json!({
        "unit": unit.unit,
        "role": unit.role,
        "load_state": unit.load_state,
        "active_state": unit.active_state,
        "sub_state": unit.sub_state,
        "since_usec": unit.since_usec,
        "status_text": unit.status_text,
        "main_pid": unit.main_pid,
        "restarts": unit.restarts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::fixtures::*;

    #[test]
    fn shape_of_a_running_and_a_missing_unit() {
        let status = appliance(vec![
            running("trustd.service", NOW_USEC, "issuing"),
            not_installed("hubd.service"),
        ]);
        let expected = json!({
            "hostname": "bunker-01",
            "units": [
                {
                    "unit": "trustd.service",
                    "role": "role of trustd.service",
                    "load_state": "loaded",
                    "active_state": "active",
                    "sub_state": "running",
                    "since_usec": NOW_USEC,
                    "status_text": "issuing",
                    "main_pid": 412,
                    "restarts": 0
                },
                {
                    "unit": "hubd.service",
                    "role": "role of hubd.service",
                    "load_state": "not-found",
                    "active_state": "inactive",
                    "sub_state": "dead",
                    "since_usec": null,
                    "status_text": null,
                    "main_pid": null,
                    "restarts": null
                }
            ]
        });
        assert_eq!(status_json(&status), expected);
    }

    #[test]
    fn a_failed_service_keeps_its_last_status_text_and_restarts() {
        let status = appliance(vec![failed("hubd.service", NOW_USEC, "linking")]);
        let unit = &status_json(&status)["units"][0];
        assert_eq!(unit["active_state"], "failed");
        assert_eq!(unit["status_text"], "linking");
        assert_eq!(unit["main_pid"], Value::Null);
        assert_eq!(unit["restarts"], 5);
    }

    #[test]
    fn one_line_of_text() {
        let status = appliance(vec![running("trustd.service", NOW_USEC, "two\nlines")]);
        let text = status_json(&status).to_string();
        assert!(!text.contains('\n'));
        assert_eq!(
            serde_json::from_str::<Value>(&text).ok(),
            Some(status_json(&status))
        );
    }
}
