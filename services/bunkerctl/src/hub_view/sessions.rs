//! How `bunkerctl hub sessions` and `bunkerctl hub path SESSION` read to a person.

use serde_json::Value;

use crate::ca_view::text;
use crate::table::{self, Cell};
use crate::terminal::{Palette, Tone};

/// The sessions table: id, service, role, the hub at the other end, state, circuits, path.
pub fn render_sessions(sessions: &Value, palette: Palette) -> String {
    let sessions = sessions.as_array().map(Vec::as_slice).unwrap_or_default();
    if sessions.is_empty() {
        return "no sessions: no client has used a service through this hub since hubd started\n"
            .to_owned();
    }
    let rows: Vec<Vec<Cell>> = sessions
        .iter()
        .map(|session| {
            let state = text(&session["state"]);
            let tone = match state.as_str() {
                "live" => Tone::Good,
                "closed" => Tone::Dim,
                _ => Tone::Bad,
            };
            vec![
                Cell::plain(text(&session["id"])),
                Cell::plain(text(&session["service"])),
                Cell::plain(text(&session["role"])),
                Cell::plain(text(&session["peer"])),
                Cell::toned(tone, state),
                Cell::plain(text(&session["circuits"])),
                Cell::plain(joined(&session["path"], " → ")),
            ]
        })
        .collect();
    table::render(
        &[
            "SESSION", "SERVICE", "ROLE", "PEER", "STATE", "CIRCUITS", "PATH",
        ],
        &rows,
        palette,
    )
}

/// One session and the hubs it crosses, e.g.
///
/// ```text
/// session 3f…e1: service ledger, source, to sao-paulo-1; live, 2 circuits
/// path proven by the transit receipts of every hub after this one:
///   malaga-1     ES  Spain     source
///   lisbon-1     PT  Portugal  from malaga-1 to sao-paulo-1, since 2026-11-21T09:00:00Z
///   sao-paulo-1  BR  Brazil    destination, since 2026-11-21T09:00:00Z
/// jurisdictions crossed: ES, PT, BR
/// ```
pub fn render_session_path(session: &Value, palette: Palette) -> String {
    let mut out = format!(
        "session {}: service {}, {}, {} {}; {}, {} circuit{}\n",
        text(&session["id"]),
        text(&session["service"]),
        text(&session["role"]),
        if session["role"] == "source" {
            "to"
        } else {
            "from"
        },
        text(&session["peer"]),
        text(&session["state"]),
        text(&session["circuits"]),
        if session["circuits"] == 1 { "" } else { "s" },
    );
    out.push_str(if session["verified"] == Value::Bool(true) {
        "path proven by the transit receipts of every hub after this one:\n"
    } else {
        "path as the source announced it (receipts go to the source; ask it to verify):\n"
    });
    let hops = session["hops"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let rows: Vec<Vec<Cell>> = hops
        .iter()
        .map(|hop| {
            let role = match (hop["previous"].as_str(), hop["next"].as_str()) {
                (None, _) => "source".to_owned(),
                (Some(_), None) => format!("destination, since {}", text(&hop["since"])),
                (Some(previous), Some(next)) => {
                    format!("from {previous} to {next}, since {}", text(&hop["since"]))
                }
            };
            vec![
                Cell::plain(text(&hop["hub"])),
                Cell::plain(text(&hop["jurisdiction"])),
                Cell::plain(text(&hop["country"])),
                Cell::plain(role),
            ]
        })
        .collect();
    let table = table::render(&["HUB", "JURISDICTION", "COUNTRY", "ROLE"], &rows, palette);
    for line in table.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!(
        "jurisdictions crossed: {}\n",
        joined(&session["jurisdictions"], ", ")
    ));
    out
}

fn joined(list: &Value, separator: &str) -> String {
    let items: Vec<String> = list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(text)
        .collect();
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(separator)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn session() -> Value {
        json!({
            "id": "00112233445566778899aabbccddeeff", "service": "ledger", "role": "source",
            "peer": "sao-paulo-1", "state": "live", "circuits": 2, "started": "2026-11-21T09:00:00Z",
            "verified": true, "path": ["malaga-1", "lisbon-1", "sao-paulo-1"],
            "jurisdictions": ["ES", "PT", "BR"],
            "hops": [
                {"hub": "malaga-1", "jurisdiction": "ES", "country": "Spain", "previous": null,
                 "next": "lisbon-1", "since": "2026-11-21T09:00:00Z"},
                {"hub": "lisbon-1", "jurisdiction": "PT", "country": "Portugal",
                 "previous": "malaga-1", "next": "sao-paulo-1", "since": "2026-11-21T09:00:01Z"},
                {"hub": "sao-paulo-1", "jurisdiction": "BR", "country": "Brazil",
                 "previous": "lisbon-1", "next": null, "since": "2026-11-21T09:00:01Z"}
            ]
        })
    }

    #[test]
    fn the_path_reads_hop_by_hop_with_its_proof() {
        let text = render_session_path(&session(), Palette::Plain);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "session 00112233445566778899aabbccddeeff: service ledger, source, to sao-paulo-1; live, 2 circuits"
        );
        assert_eq!(
            lines[1],
            "path proven by the transit receipts of every hub after this one:"
        );
        assert!(
            lines[3].contains("malaga-1") && lines[3].trim_end().ends_with("source"),
            "{text}"
        );
        assert!(
            lines[4].contains("from malaga-1 to sao-paulo-1, since 2026-11-21T09:00:01Z"),
            "{text}"
        );
        assert!(
            lines[5].contains("Brazil") && lines[5].contains("destination"),
            "{text}"
        );
        assert_eq!(lines[6], "jurisdictions crossed: ES, PT, BR");
        let mut announced = session();
        announced["verified"] = json!(false);
        assert!(
            render_session_path(&announced, Palette::Plain).contains("as the source announced it")
        );
    }

    #[test]
    fn the_sessions_table_lists_each_with_its_path() {
        let text = render_sessions(&json!([session()]), Palette::Plain);
        assert!(
            text.lines().next().unwrap().starts_with("SESSION"),
            "{text}"
        );
        assert!(text.contains("malaga-1 → lisbon-1 → sao-paulo-1"), "{text}");
        assert!(render_sessions(&json!([]), Palette::Plain).starts_with("no sessions"));
    }
}
