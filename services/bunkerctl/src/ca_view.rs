//! How `bunkerctl ca status` and `bunkerctl ca list` read to a person.
//!
//! Both render trustd's own JSON documents (see `trustd::status_report` and the `List` method of
//! `org.bunkeros.Trust1`); a field trustd does not send shows as `-`, so an older or newer
//! trustd still renders.

use serde_json::Value;

use crate::terminal::{Palette, Tone};

/// The status screen, e.g.
///
/// ```text
/// trustd: ready — issuing as bunker BunkerOS Site CA (policy pcr 7+11)
///   CA           root CN=bunker BunkerOS Site CA, O=BunkerOS, valid until 2036-01-01T00:00:00Z
///   root SHA-256 5f3a…
///   CA key       04ab…
///   TPM policy   pcr, PCRs 7+11
///   certificates 12 issued, 1 revoked
///   log          12 entries, newest signed tree head covers 12
///   CRL          number 3, next update 2026-01-02T00:00:00Z
/// ```
pub fn render_status(status: &Value, palette: Palette) -> String {
    let state = text(&status["state"]);
    let tone = match state.as_str() {
        "ready" => Tone::Good,
        "sealed" => Tone::Bad,
        _ => Tone::Pending,
    };
    let line = status["status_line"]
        .as_str()
        .map_or_else(|| state.clone(), str::to_owned);
    let mut out = format!("trustd: {}\n", palette.paint(tone, &line));
    let mut row = |label: &str, value: String| {
        out.push_str(&format!("  {label:<13}{value}\n"));
    };
    let ca = &status["ca"];
    if ca.is_null() {
        row("CA", "no certificate yet".to_owned());
    } else {
        row(
            "CA",
            format!(
                "{} {}, valid until {}",
                text(&ca["kind"]),
                text(&ca["subject"]),
                text(&ca["not_after"])
            ),
        );
        row("root SHA-256", text(&ca["root_fingerprint"]));
    }
    row("CA key", text(&status["public_key"]));
    let pcrs: Vec<String> = status["policy"]["pcrs"]
        .as_array()
        .map(|pcrs| pcrs.iter().map(text).collect())
        .unwrap_or_default();
    row(
        "TPM policy",
        format!(
            "{}, PCRs {}",
            text(&status["policy"]["mode"]),
            pcrs.join("+")
        ),
    );
    if status["lockdown"] == Value::Bool(true) {
        row(
            "lockdown",
            "the site is in lockdown: nothing is issued or revoked".to_owned(),
        );
    }
    row(
        "certificates",
        format!(
            "{} issued, {} revoked",
            text(&status["certificates"]["issued"]),
            text(&status["certificates"]["revoked"])
        ),
    );
    row(
        "log",
        format!(
            "{} entries, newest signed tree head covers {}",
            text(&status["log"]["size"]),
            text(&status["log"]["signed_tree_head_size"])
        ),
    );
    let crl = &status["crl"];
    row(
        "CRL",
        if crl.is_null() {
            "none signed yet".to_owned()
        } else {
            format!(
                "number {}, next update {}",
                text(&crl["number"]),
                text(&crl["next_update"])
            )
        },
    );
    if status["state"] == "sealed" {
        out.push_str(
            "\nThe TPM refuses the CA key: this boot is not one its policy accepts. Nothing is \
             issued until the appliance boots an image the key is bound to (or, in `authorized` \
             mode, one whose PCR policy the release key signed). Check `journalctl -u \
             trustd` and `tpm2_pcrread sha256:7,11`; see the README, \"sealed\".\n",
        );
    }
    out
}

/// The certificate table: serial, profile, status, end of validity, names, log index.
pub fn render_list(rows: &Value) -> String {
    let rows = rows.as_array().map(Vec::as_slice).unwrap_or_default();
    if rows.is_empty() {
        return "no certificates match\n".to_owned();
    }
    let mut out = format!(
        "{:<32}  {:<8}  {:<23}  {:<20}  {:>5}  {}\n",
        "SERIAL", "PROFILE", "STATUS", "NOT AFTER", "LOG", "NAMES"
    );
    for row in rows {
        let status = if row["revocation"].is_null() {
            "issued".to_owned()
        } else {
            format!("revoked ({})", text(&row["revocation"]["reason"]))
        };
        let names: Vec<String> = row["names"]
            .as_array()
            .map(|names| names.iter().map(text).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<32}  {:<8}  {:<23}  {:<20}  {:>5}  {}\n",
            text(&row["serial"]),
            text(&row["profile"]),
            status,
            text(&row["not_after"]),
            text(&row["log_index"]),
            names.join(", ")
        ));
    }
    out
}

/// What `bunkerctl ca install-chain` installed, from trustd's answer to `InstallChain`, e.g.
///
/// ```text
/// installed the intermediate CA certificate; trustd issues under it now
///   subject      CN=bunker BunkerOS Site CA, O=BunkerOS
///   issuer       CN=Nordic Bunkers Offline Root, O=Nordic Bunkers AS
///   valid        2026-01-01T00:00:00Z to 2027-01-01T00:00:00Z
///   root         CN=Nordic Bunkers Offline Root, O=Nordic Bunkers AS
///   root SHA-256 5f3a…
/// ```
pub fn render_installed(installed: &Value) -> String {
    let what = if installed["renewal"] == Value::Bool(true) {
        "renewed the intermediate CA certificate"
    } else {
        "installed the intermediate CA certificate"
    };
    let mut out = format!("{what}; trustd issues under it now\n");
    for (label, value) in [
        ("subject", text(&installed["subject"])),
        ("issuer", text(&installed["issuer"])),
        (
            "valid",
            format!(
                "{} to {}",
                text(&installed["not_before"]),
                text(&installed["not_after"])
            ),
        ),
        ("root", text(&installed["root_subject"])),
        ("root SHA-256", text(&installed["root_fingerprint"])),
    ] {
        out.push_str(&format!("  {label:<13}{value}\n"));
    }
    out
}

/// A JSON value as plain text (`-` for null).
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The certificate's end of validity, RFC 3339, from its PEM.
pub fn not_after(cert_pem: &str) -> Option<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let certificate = pem.parse_x509().ok()?;
    certificate
        .validity()
        .not_after
        .to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ready() -> Value {
        json!({
            "state": "ready", "reason": null, "public_key": "04ab", "lockdown": false,
            "policy": {"mode": "pcr", "pcrs": [7, 11], "release_key": null},
            "ca": {"kind": "root", "subject": "CN=bunker BunkerOS Site CA, O=BunkerOS",
                   "common_name": "bunker BunkerOS Site CA", "not_after": "2036-01-01T00:00:00Z",
                   "root_fingerprint": "5f3a"},
            "certificates": {"issued": 12, "revoked": 1},
            "log": {"size": 12, "signed_tree_head_size": 12},
            "crl": {"number": 3, "this_update": "x", "next_update": "2026-01-02T00:00:00Z"},
            "status_line": "ready: issuing as bunker BunkerOS Site CA (policy pcr 7+11)"
        })
    }

    #[test]
    fn the_status_reads_as_sentences() {
        let out = render_status(&ready(), Palette::Plain);
        assert_eq!(
            out,
            "trustd: ready: issuing as bunker BunkerOS Site CA (policy pcr 7+11)\n\
             \x20 CA           root CN=bunker BunkerOS Site CA, O=BunkerOS, valid until 2036-01-01T00:00:00Z\n\
             \x20 root SHA-256 5f3a\n\
             \x20 CA key       04ab\n\
             \x20 TPM policy   pcr, PCRs 7+11\n\
             \x20 certificates 12 issued, 1 revoked\n\
             \x20 log          12 entries, newest signed tree head covers 12\n\
             \x20 CRL          number 3, next update 2026-01-02T00:00:00Z\n"
        );
    }

    #[test]
    fn a_sealed_ca_says_what_to_do() {
        let mut status = ready();
        status["state"] = json!("sealed");
        status["ca"] = Value::Null;
        status["crl"] = Value::Null;
        status["status_line"] = json!("sealed: PCR 11 of this boot differs");
        let out = render_status(&status, Palette::Plain);
        assert!(
            out.starts_with("trustd: sealed: PCR 11 of this boot differs\n"),
            "{out}"
        );
        assert!(out.contains("CA           no certificate yet"), "{out}");
        assert!(out.contains("CRL          none signed yet"), "{out}");
        assert!(out.contains("The TPM refuses the CA key"), "{out}");
    }

    #[test]
    fn an_installed_chain_reads_as_what_relying_parties_see() {
        let installed = json!({
            "kind": "intermediate", "renewal": false,
            "subject": "CN=bunker BunkerOS Site CA, O=BunkerOS",
            "issuer": "CN=Offline Root", "not_before": "2026-01-01T00:00:00Z",
            "not_after": "2027-01-01T00:00:00Z", "root_subject": "CN=Offline Root",
            "root_fingerprint": "5f3a"
        });
        assert_eq!(
            render_installed(&installed),
            "installed the intermediate CA certificate; trustd issues under it now\n\
             \x20 subject      CN=bunker BunkerOS Site CA, O=BunkerOS\n\
             \x20 issuer       CN=Offline Root\n\
             \x20 valid        2026-01-01T00:00:00Z to 2027-01-01T00:00:00Z\n\
             \x20 root         CN=Offline Root\n\
             \x20 root SHA-256 5f3a\n"
        );
        let mut renewed = installed;
        renewed["renewal"] = json!(true);
        assert!(render_installed(&renewed).starts_with("renewed the intermediate CA certificate"));
    }

    #[test]
    fn the_list_is_a_table() {
        let rows = json!([
            {"serial": "0a".repeat(16), "profile": "service", "names": ["web.bunker.test"],
             "not_after": "2026-01-02T00:00:00Z", "log_index": 4, "revocation": null},
            {"serial": "0b".repeat(16), "profile": null, "names": ["a", "b"],
             "not_after": "2026-01-03T00:00:00Z", "log_index": 5,
             "revocation": {"reason": "keyCompromise"}}
        ]);
        let out = render_list(&rows);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("SERIAL"));
        let columns = |line: &str| -> Vec<String> {
            line.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            columns(lines[1])[1..],
            [
                "service",
                "issued",
                "2026-01-02T00:00:00Z",
                "4",
                "web.bunker.test"
            ]
        );
        assert_eq!(columns(lines[2])[1..3], ["-", "revoked (keyCompromise)"]);
        assert!(lines[2].ends_with("a, b"), "{out}");
        assert_eq!(
            lines[1].find("2026"),
            lines[2].find("2026"),
            "columns line up:\n{out}"
        );
        assert_eq!(render_list(&json!([])), "no certificates match\n");
    }
}
