//! `bunkerctl hub`: the operator's view of hubd, over `org.bunkeros.Hub1` on the system bus.
//!
//! Every subcommand asks hubd once and prints its document as a table (or as hubd sent it, with
//! `--json`). Nothing here changes the hub.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use appliance::dbus::contracts::{HUB, Hub1Proxy, hub_errors};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::bus_call;
use crate::hub_view;
use crate::terminal::Palette;

/// How long hubd may take to answer (it answers from memory).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Exit status when the answer is "no": no link up, no compliant path.
const NO: u8 = 3;

/// `bunkerctl hub …`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum HubCommand {
    /// This hub: links up, hubs trusted, transit and why, certificate, advertisement, counters
    #[command(after_help = "\
Exit status: 0 when at least one link is up, 3 when none is, 1 when hubd cannot be reached.")]
    Status {
        /// Print hubd's status document (JSON) as it sent it
        #[arg(long)]
        json: bool,
    },
    /// Every configured link (peer, number, address): up with its RTT, or down
    Links {
        /// Print hubd's JSON array instead of the table
        #[arg(long)]
        json: bool,
    },
    /// Every hub known: jurisdiction, how it is trusted (pinned, or vouched through which
    /// hubs), transit, and the links it advertises
    Hubs {
        /// Print hubd's JSON array instead of the table
        #[arg(long)]
        json: bool,
    },
    /// For every trusted hub, the fastest path and its link-disjoint backup, without policy
    Routes {
        /// Print hubd's JSON array instead of the table
        #[arg(long)]
        json: bool,
    },
    /// The primary and backup paths to DESTINATION under a path policy of hubd.toml
    #[command(after_help = "\
hubd never offers a path that breaks the policy: when none follows it, the refusal says why \
(e.g. every route crosses a hub of an excluded jurisdiction). Exit status: 0 with a path, 3 when \
no compliant path exists, 1 when hubd cannot be reached or refuses the question (unknown policy, \
not a hub id).")]
    Paths {
        /// The destination hub id, e.g. sao-paulo-1
        destination: String,
        /// A `[path_policy.NAME]` of hubd.toml; default: no constraints
        #[arg(long, value_name = "NAME")]
        policy: Option<String>,
        /// Print hubd's document (JSON) as it sent it; a refusal as {"destination", "policy",
        /// "refusal"}
        #[arg(long)]
        json: bool,
    },
    /// The sessions this hub carries (a client's TCP connection to a service), live and ended
    Sessions {
        /// Print hubd's JSON array instead of the table
        #[arg(long)]
        json: bool,
    },
    /// The hubs and jurisdictions session SESSION actually crosses, proven by their receipts
    #[command(after_help = "\
At the hub where the client is, every hub after it signed a transit receipt for the session \
(previous hop, next hop, its jurisdiction), verified against the certificates the control plane \
holds before a byte was carried. At the hub that publishes the service the path is shown as the \
source announced it. Exit status: 0, or 1 when there is no such session or hubd cannot be reached.")]
    Path {
        /// The session id (32 hex digits), as `bunkerctl hub sessions` shows it
        session: String,
        /// Print hubd's document (JSON) as it sent it
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `hub` subcommand and returns its exit status.
pub fn run(cmd: HubCommand) -> Result<ExitCode> {
    bus_call::on_system_bus(ANSWER_TIMEOUT, async |connection| {
        let hub = Hub1Proxy::new(connection)
            .await
            .context("creating the org.bunkeros.Hub1 proxy")?;
        let (text, code) = ask(&hub, cmd, Palette::for_stdout()).await?;
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .context("writing to stdout")?;
        Ok(ExitCode::from(code))
    })
}

/// How a document reads to a person.
type Render = fn(&Value, Palette) -> String;

/// What to print, and the exit status.
async fn ask(hub: &Hub1Proxy<'_>, cmd: HubCommand, palette: Palette) -> Result<(String, u8)> {
    let is_status = matches!(cmd, HubCommand::Status { .. });
    let (answer, json, render): (zbus::Result<String>, bool, Render) = match cmd {
        HubCommand::Status { json } => (hub.status().await, json, hub_view::render_status),
        HubCommand::Links { json } => (hub.links().await, json, hub_view::render_links),
        HubCommand::Hubs { json } => (hub.hubs().await, json, hub_view::render_hubs),
        HubCommand::Routes { json } => (hub.routes().await, json, hub_view::render_routes),
        HubCommand::Sessions { json } => (
            hub.sessions().await,
            json,
            hub_view::sessions::render_sessions,
        ),
        HubCommand::Path { session, json } => (
            hub.session_path(&session).await,
            json,
            hub_view::sessions::render_session_path,
        ),
        HubCommand::Paths {
            destination,
            policy,
            json,
        } => {
            let policy = policy.unwrap_or_default();
            match hub.paths(&destination, &policy).await {
                Err(zbus::Error::MethodError(name, message, _))
                    if name.as_str() == hub_errors::NO_COMPLIANT_PATH =>
                {
                    let refusal = message.unwrap_or_default();
                    return Ok((refusal_text(json, &destination, &policy, &refusal), NO));
                }
                answer => (answer, json, hub_view::render_paths),
            }
        }
    };
    let document = answer.map_err(refused)?;
    let value = parse(&document)?;
    let code = if is_status && !any_link_up(&value) {
        NO
    } else {
        0
    };
    Ok((shown(json, &document, &value, render, palette), code))
}

/// Whether a status document counts a link up.
fn any_link_up(status: &Value) -> bool {
    status["links"]["up"].as_u64().is_some_and(|up| up > 0)
}

fn parse(document: &str) -> Result<Value> {
    serde_json::from_str(document).context("hubd's answer is not JSON")
}

/// The document as hubd sent it with `--json`, else rendered.
fn shown(json: bool, document: &str, value: &Value, render: Render, palette: Palette) -> String {
    if json {
        format!("{document}\n")
    } else {
        render(value, palette)
    }
}

/// A refusal to show: hubd's sentence, or with `--json` a document that holds it.
pub fn refusal_text(json: bool, destination: &str, policy: &str, refusal: &str) -> String {
    if json {
        let document = json!({"destination": destination, "policy": policy, "refusal": refusal});
        format!("{document}\n")
    } else {
        format!("{refusal}\n")
    }
}

/// A D-Bus refusal as one line: hubd's own sentence, or why hubd could not be asked.
fn refused(error: zbus::Error) -> anyhow::Error {
    bus_call::refused(
        HUB,
        "the bus policy (org.bunkeros.Hub1.conf) does not let this user ask hubd",
        error,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_the_sentence_or_a_json_document() {
        let sentence = "no compliant path from madrid-1 (ES) to sao-paulo-1 (BR): every route \
                        crosses hub lisbon-1 (PT, an excluded jurisdiction)";
        assert_eq!(
            refusal_text(false, "sao-paulo-1", "no-portugal", sentence),
            format!("{sentence}\n")
        );
        let document: Value =
            serde_json::from_str(&refusal_text(true, "sao-paulo-1", "no-portugal", sentence))
                .unwrap();
        assert_eq!(
            document,
            json!({"destination": "sao-paulo-1", "policy": "no-portugal", "refusal": sentence})
        );
    }

    #[test]
    fn json_shows_the_document_as_hubd_sent_it() {
        let document = r#"{"b":1,"a":2}"#;
        let value = parse(document).unwrap();
        let render = |_: &Value, _: Palette| "table\n".to_owned();
        assert_eq!(
            shown(true, document, &value, render, Palette::Plain),
            "{\"b\":1,\"a\":2}\n"
        );
        assert_eq!(
            shown(false, document, &value, render, Palette::Plain),
            "table\n"
        );
        assert!(parse("not json").is_err());
    }

    #[test]
    fn a_status_without_links_up_says_no() {
        assert!(any_link_up(&json!({"links": {"up": 1, "configured": 4}})));
        assert!(!any_link_up(&json!({"links": {"up": 0, "configured": 4}})));
        assert!(
            !any_link_up(&json!({})),
            "a status without the count is not a yes"
        );
    }
}
