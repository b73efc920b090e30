//! What trustd says about itself: the `STATUS=` line systemd and `bunkerctl status` show, and
//! the JSON document D-Bus `Status()` returns (what `bunkerctl ca status` prints).
//!
//! The JSON is a contract with `bunkerctl` and with scripts: fields are only ever added.
//!
//! ```json
//! {"state": "ready", "reason": null, "public_key": "04…", "lockdown": false,
//!  "policy": {"mode": "pcr", "pcrs": [7, 11], "release_key": null},
//!  "ca": {"kind": "root", "subject": "CN=bunker BunkerOS Site CA, O=BunkerOS",
//!         "common_name": "bunker BunkerOS Site CA", "not_after": "2036-…Z",
//!         "root_fingerprint": "<sha256 hex>"},
//!  "certificates": {"issued": 3, "revoked": 1},
//!  "log": {"size": 3, "signed_tree_head_size": 3},
//!  "crl": {"number": 2, "this_update": "…Z", "next_update": "…Z"}, "stopped": null,
//!  "status_line": "ready: issuing as bunker BunkerOS Site CA (policy pcr 7+11)"}
//! ```

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::authority::{AuthorityState, AuthorityStatus, PolicySummary};
use crate::ca::CaKind;

/// The one line systemd shows for trustd, e.g.
/// `ready: issuing as bunker BunkerOS Site CA (policy pcr 7+11)` or `sealed: PCR 11 of this
/// boot differs from …`.
pub fn status_line(status: &AuthorityStatus) -> String {
    let policy = policy_text(&status.policy);
    if let Some(failure) = &status.stopped
        && !matches!(status.state, AuthorityState::Sealed { .. })
    {
        return format!("stopped: no longer writing after a failure ({failure}); restart trustd");
    }
    match &status.state {
        AuthorityState::Ready => format!(
            "ready: issuing as {} (policy {policy})",
            status
                .ca_subject
                .as_deref()
                .map_or("the site CA", common_name)
        ),
        AuthorityState::Sealed { reason } => format!("sealed: {reason}"),
        AuthorityState::Lockdown => {
            format!(
                "lockdown: the site is in lockdown, no certificate is issued until it leaves (policy {policy})"
            )
        }
        AuthorityState::Initialised { reason } => format!("initialised: {reason}"),
    }
}

/// `pcr 7+11`, `authorized 7+11`.
pub fn policy_text(policy: &PolicySummary) -> String {
    let pcrs: Vec<String> = policy.pcr_selection.iter().map(u8::to_string).collect();
    format!("{} {}", policy.mode, pcrs.join("+"))
}

/// The `CN=` of a subject as x509-parser prints it (`CN=…, O=…`), or the whole subject.
pub fn common_name(subject: &str) -> &str {
    subject
        .split(", ")
        .find_map(|part| part.strip_prefix("CN="))
        .unwrap_or(subject)
}

/// The `Status()` document (see the module documentation); `public_key` is the CA key's SEC1
/// point, with which tree heads, CRLs and audit signatures verify.
pub fn status_json(status: &AuthorityStatus, public_key: &[u8]) -> Value {
    let reason = match &status.state {
        AuthorityState::Sealed { reason } => Some(reason.clone()),
        AuthorityState::Initialised { reason } => Some(reason.to_string()),
        AuthorityState::Lockdown => Some("the site is in lockdown".to_owned()),
        AuthorityState::Ready => None,
    };
    let ca = status.ca_kind.map(|kind| {
        json!({
            "kind": match kind {
                CaKind::Root => "root",
                CaKind::Intermediate => "intermediate",
            },
            "subject": status.ca_subject,
            "common_name": status.ca_subject.as_deref().map(common_name),
            "not_after": status.ca_not_after.map(rfc3339),
            "root_fingerprint": status.root_fingerprint,
        })
    });
    let crl = status.crl.as_ref().map(|crl| {
        json!({
            "number": crl.number,
            "this_update": rfc3339(crl.this_update),
            "next_update": rfc3339(crl.next_update),
        })
    });
    json!({
        "state": status.state.name(),
        "reason": reason,
        "public_key": hex::encode(public_key),
        "lockdown": status.lockdown,
        "policy": {
            "mode": status.policy.mode,
            "pcrs": status.policy.pcr_selection,
            "release_key": status.policy.release_key,
        },
        "ca": ca,
        "certificates": {"issued": status.issued, "revoked": status.revoked},
        "log": {
            "size": status.log_size,
            "signed_tree_head_size": status.signed_tree_head_size,
        },
        "crl": crl,
        "stopped": status.stopped,
        "status_line": status_line(status),
    })
}

/// RFC 3339 in UTC, the time format of every trustd document.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::NotReady;

    fn status(state: AuthorityState) -> AuthorityStatus {
        AuthorityStatus {
            state,
            lockdown: false,
            policy: PolicySummary {
                mode: "pcr",
                pcr_selection: vec![7, 11],
                release_key: None,
            },
            ca_kind: Some(CaKind::Root),
            ca_subject: Some("CN=bunker BunkerOS Site CA, O=BunkerOS".to_owned()),
            ca_not_after: Some(OffsetDateTime::UNIX_EPOCH),
            root_fingerprint: Some("ab".repeat(32)),
            issued: 3,
            revoked: 1,
            log_size: 3,
            signed_tree_head_size: Some(2),
            crl: None,
            stopped: None,
        }
    }

    #[test]
    fn the_status_line_says_what_the_ca_does() {
        assert_eq!(
            status_line(&status(AuthorityState::Ready)),
            "ready: issuing as bunker BunkerOS Site CA (policy pcr 7+11)"
        );
        let sealed = status(AuthorityState::Sealed {
            reason: "PCR 11 of this boot differs".to_owned(),
        });
        assert_eq!(status_line(&sealed), "sealed: PCR 11 of this boot differs");
        let waiting = status(AuthorityState::Initialised {
            reason: NotReady::Uninitialised,
        });
        assert!(status_line(&waiting).starts_with("initialised: the CA has no certificate"));
        assert!(status_line(&status(AuthorityState::Lockdown)).starts_with("lockdown: "));
        let mut stopped = status(AuthorityState::Ready);
        stopped.stopped = Some("the disk is full".to_owned());
        assert_eq!(
            status_line(&stopped),
            "stopped: no longer writing after a failure (the disk is full); restart trustd"
        );
    }

    #[test]
    fn the_json_carries_every_fact() {
        let json = status_json(&status(AuthorityState::Ready), &[4, 1, 2]);
        assert_eq!(json["public_key"], "040102");
        assert_eq!(json["state"], "ready");
        assert_eq!(json["reason"], Value::Null);
        assert_eq!(json["policy"]["pcrs"], json!([7, 11]));
        assert_eq!(json["ca"]["kind"], "root");
        assert_eq!(json["ca"]["common_name"], "bunker BunkerOS Site CA");
        assert_eq!(json["ca"]["not_after"], "1970-01-01T00:00:00Z");
        assert_eq!(json["certificates"]["issued"], 3);
        assert_eq!(json["log"]["signed_tree_head_size"], 2);
        assert_eq!(json["crl"], Value::Null);
        assert!(json["status_line"].as_str().unwrap().starts_with("ready: "));
    }
}
