//! Replies from the cgminer API: untrusted bytes from a miner turned into one [`Section`] per
//! command, each with its own STATUS. Real firmware emits quirks that every client strips
//! (trailing NUL, `}{` between objects, stray `|`, raw control characters and invalid UTF-8
//! inside strings, trailing commas, no `id`); this module strips them too, and never panics.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Replies beyond this are refused: the largest real reply (`stats` of a 4-board Antminer
/// joined with `pools` and `devs`) is a few tens of KiB, so anything this large is broken
/// or hostile and must not make the poller hold unbounded memory.
pub const MAX_REPLY_BYTES: usize = 256 * 1024;

/// cgminer `api.c` message codes the driver acts on.
pub const CODE_INVALID_COMMAND: u32 = 14;
pub const CODE_ACCESS_DENIED: u32 = 45;

/// The STATUS letter: Success, Info, Warning, Error, Fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    Success,
    Info,
    Warning,
    Error,
    Fatal,
}

impl StatusKind {
    fn from_letter(letter: &str) -> Option<StatusKind> {
        match letter {
            "S" => Some(StatusKind::Success),
            "I" => Some(StatusKind::Info),
            "W" => Some(StatusKind::Warning),
            "E" => Some(StatusKind::Error),
            "F" => Some(StatusKind::Fatal),
            _ => None,
        }
    }

    /// Whether the section's data can be used (pyasic accepts S and I; a warning still
    /// carries data, e.g. "no pools").
    pub fn is_ok(self) -> bool {
        matches!(
            self,
            StatusKind::Success | StatusKind::Info | StatusKind::Warning
        )
    }
}

/// One STATUS entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub kind: StatusKind,
    pub code: Option<u32>,
    pub msg: String,
    /// The firmware's self-description, e.g. `cgminer 4.11.1`, `bmminer 1.0.0`, `BOSminer+ 0.2.0`.
    pub description: String,
    pub when: Option<i64>,
}

/// The reply to one command: its STATUS and its data (`SUMMARY`, `POOLS`, `STATS`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub status: Status,
    body: Map<String, Value>,
}

impl Section {
    /// The records under `key` (case-insensitive: firmware differ in case); empty if absent.
    pub fn records(&self, key: &str) -> &[Value] {
        self.body
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_array())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The data, or a typed error when the firmware refused the command.
    pub fn ok(&self, command: &str) -> Result<&Section, ReplyError> {
        if self.status.kind.is_ok() {
            return Ok(self);
        }
        let denied = self.status.code == Some(CODE_ACCESS_DENIED)
            || self
                .status
                .msg
                .to_ascii_lowercase()
                .contains("access denied");
        if denied {
            return Err(ReplyError::AccessDenied {
                command: command.to_string(),
            });
        }
        if self.status.code == Some(CODE_INVALID_COMMAND) {
            return Err(ReplyError::InvalidCommand {
                command: command.to_string(),
            });
        }
        Err(ReplyError::Refused {
            command: command.to_string(),
            kind: self.status.kind,
            code: self.status.code,
            msg: self.status.msg.clone(),
        })
    }
}

/// A parsed reply: one section per requested command.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reply {
    sections: BTreeMap<String, Section>,
}

impl Reply {
    /// The section of `command`, checked: a refused command gives its typed error.
    pub fn section(&self, command: &str) -> Result<&Section, ReplyError> {
        self.sections
            .get(command)
            .ok_or_else(|| ReplyError::MissingSection {
                command: command.to_string(),
            })?
            .ok(command)
    }

    /// The section of `command` if the firmware answered it with data.
    pub fn usable(&self, command: &str) -> Option<&Section> {
        self.section(command).ok()
    }

    pub fn commands(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str)
    }

    /// Adds the sections of another reply, so that a snapshot can be built from several
    /// round trips (firmware that refuse joins answer one command per connection).
    pub fn merge(&mut self, other: Reply) {
        self.sections.extend(other.sections);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("empty reply")]
    Empty,
    #[error("malformed reply: {0}")]
    Malformed(String),
    #[error("reply has no STATUS for '{command}'")]
    MissingStatus { command: String },
    #[error("reply has no section for '{command}'")]
    MissingSection { command: String },
    #[error("access denied to '{command}' (the miner's API does not allow this client to run it)")]
    AccessDenied { command: String },
    #[error("the miner does not know the command '{command}'")]
    InvalidCommand { command: String },
    #[error("the miner refused '{command}': {kind:?} code {code:?}: {msg}")]
    Refused {
        command: String,
        kind: StatusKind,
        code: Option<u32>,
        msg: String,
    },
}

/// Parses the reply to `command_field` (the request's command, names joined with `+`).
pub fn parse_reply(command_field: &str, bytes: &[u8]) -> Result<Reply, ReplyError> {
    parse_reply_bounded(command_field, bytes, MAX_REPLY_BYTES)
}

pub fn parse_reply_bounded(
    command_field: &str,
    bytes: &[u8],
    limit: usize,
) -> Result<Reply, ReplyError> {
    if bytes.len() > limit {
        return Err(ReplyError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches(['\0', '\n', '\r', ' ', '\t']);
    let text = text.trim_start();
    if text.is_empty() {
        return Err(ReplyError::Empty);
    }
    let commands: Vec<&str> = command_field.split('+').collect();
    if let Some(ack) = bare_acknowledgement(text) {
        return Ok(Reply {
            sections: commands
                .iter()
                .map(|c| (c.to_string(), ack.clone()))
                .collect(),
        });
    }
    let top = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(top)) => top,
        Ok(_) => return Err(ReplyError::Malformed("reply is not a JSON object".into())),
        Err(_) => parse_with_quirks(text)?,
    };
    let mut sections = BTreeMap::new();
    if commands.len() == 1 || has_status(&top) {
        // A single reply, or a joined request refused as a whole (one top-level STATUS):
        // the same section answers for every command.
        let section = section_from(top, command_field)?;
        for c in &commands {
            sections.insert(c.to_string(), section.clone());
        }
    } else {
        for c in &commands {
            let Some(part) = top
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(c))
                .map(|(_, v)| v)
            else {
                continue;
            };
            let inner = match part {
                Value::Array(items) => items.first(),
                other => Some(other),
            };
            if let Some(Value::Object(obj)) = inner {
                sections.insert(c.to_string(), section_from(obj.clone(), c)?);
            }
        }
    }
    Ok(Reply { sections })
}

/// Parses a reply after stripping the quirks; some firmware also join the per-command objects
/// of a multi-command reply with `}{` at the top level, so a run of objects is merged into one.
fn parse_with_quirks(text: &str) -> Result<Map<String, Value>, ReplyError> {
    let stripped = strip_quirks(text);
    match serde_json::from_str::<Value>(&stripped) {
        Ok(Value::Object(top)) => Ok(top),
        Ok(_) => Err(ReplyError::Malformed("reply is not a JSON object".into())),
        Err(first) => {
            let Ok(Value::Array(parts)) = serde_json::from_str::<Value>(&format!("[{stripped}]"))
            else {
                return Err(ReplyError::Malformed(first.to_string()));
            };
            let mut top = Map::new();
            for part in parts {
                let Value::Object(obj) = part else {
                    return Err(ReplyError::Malformed(first.to_string()));
                };
                top.extend(obj);
            }
            Ok(top)
        }
    }
}

/// `restart` and `quit` answer a bare word (`RESTART`, `BYE`) instead of JSON.
fn bare_acknowledgement(text: &str) -> Option<Section> {
    let word = text.trim();
    if word == "RESTART" || word == "BYE" {
        Some(Section {
            status: Status {
                kind: StatusKind::Success,
                code: None,
                msg: word.to_string(),
                description: String::new(),
                when: None,
            },
            body: Map::new(),
        })
    } else {
        None
    }
}

fn has_status(obj: &Map<String, Value>) -> bool {
    obj.keys().any(|k| k.eq_ignore_ascii_case("STATUS"))
}

fn section_from(mut obj: Map<String, Value>, command: &str) -> Result<Section, ReplyError> {
    let key = obj
        .keys()
        .find(|k| k.eq_ignore_ascii_case("STATUS"))
        .cloned();
    let missing = || ReplyError::MissingStatus {
        command: command.to_string(),
    };
    let status_value = key.and_then(|k| obj.remove(&k)).ok_or_else(missing)?;
    let entry = match &status_value {
        Value::Array(items) => items.first().cloned(),
        other => Some(other.clone()),
    };
    let Some(Value::Object(entry)) = entry else {
        return Err(missing());
    };
    let kind = entry
        .get("STATUS")
        .and_then(Value::as_str)
        .and_then(StatusKind::from_letter)
        .ok_or_else(missing)?;
    let text = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let status = Status {
        kind,
        code: entry
            .get("Code")
            .and_then(Value::as_u64)
            .and_then(|c| u32::try_from(c).ok()),
        msg: text("Msg"),
        description: text("Description"),
        when: entry.get("When").and_then(Value::as_i64),
    };
    obj.remove("id");
    Ok(Section { status, body: obj })
}

/// Rewrites the firmware quirks outside strings (`}{` → `},{`, stray `|`, trailing commas)
/// and raw control characters inside strings, which make the JSON invalid.
fn strip_quirks(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            out.push(if c.is_control() { ' ' } else { c });
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '|' | '\0' => {}
            '{' if last_significant(&out) == Some('}') => {
                out.push(',');
                out.push(c);
            }
            '}' | ']' => {
                let trimmed = out.trim_end_matches(char::is_whitespace).len();
                if out[..trimmed].ends_with(',') {
                    out.truncate(trimmed - 1);
                }
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn last_significant(s: &str) -> Option<char> {
    s.chars().rev().find(|c| !c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = r#"{"STATUS":[{"STATUS":"S","When":1730228038,"Code":11,"Msg":"Summary","Description":"cgminer 4.11.1"}],"SUMMARY":[{"Elapsed":119134,"MHS 5s":"4885.0813"}],"id":1}"#;

    #[test]
    fn single_reply_with_trailing_nul() {
        let mut bytes = SUMMARY.as_bytes().to_vec();
        bytes.push(0);
        let reply = parse_reply("summary", &bytes).unwrap();
        let s = reply.section("summary").unwrap();
        assert_eq!(s.status.code, Some(11));
        assert_eq!(s.status.description, "cgminer 4.11.1");
        assert_eq!(s.records("SUMMARY")[0]["Elapsed"], 119134);
    }

    #[test]
    fn joined_reply_keyed_by_command_with_own_status() {
        let joined = format!(
            r#"{{"summary":[{SUMMARY}],"pools":[{{"STATUS":[{{"STATUS":"E","Code":45,"Msg":"Access denied to 'pools' command"}}]}}],"id":1}}"#
        );
        let reply = parse_reply("summary+pools", joined.as_bytes()).unwrap();
        assert!(reply.section("summary").is_ok());
        assert_eq!(
            reply.section("pools"),
            Err(ReplyError::AccessDenied {
                command: "pools".into()
            })
        );
    }

    #[test]
    fn joined_request_refused_as_a_whole() {
        let err = r#"{"STATUS":[{"STATUS":"E","When":0,"Code":14,"Msg":"Invalid command","Description":"bmminer 1.0.0"}],"id":1}"#;
        let reply = parse_reply("summary+pools", err.as_bytes()).unwrap();
        for c in ["summary", "pools"] {
            assert_eq!(
                reply.section(c),
                Err(ReplyError::InvalidCommand { command: c.into() })
            );
        }
    }

    #[test]
    fn quirks_are_stripped() {
        let broken = b"{\"STATUS\":[{\"STATUS\":\"S\",\"Code\":70,\"Msg\":\"a|b\"}],\"STATS\":[{\"Type\":\"Antminer S9\"}{\"Elapsed\":5,\"x\":\"\xff\n\",}]|}\0";
        let reply = parse_reply("stats", broken).unwrap();
        let s = reply.section("stats").unwrap();
        assert_eq!(s.status.msg, "a|b", "a bar inside a string is data");
        assert_eq!(s.records("STATS").len(), 2);
        assert_eq!(s.records("STATS")[1]["Elapsed"], 5);
    }

    #[test]
    fn top_level_objects_joined_by_firmware_are_merged() {
        let joined = format!(
            r#"{{"summary":[{SUMMARY}]}}{{"pools":[{{"STATUS":[{{"STATUS":"S","Code":7}}],"POOLS":[]}}]}}"#
        );
        let reply = parse_reply("summary+pools", joined.as_bytes()).unwrap();
        assert_eq!(reply.section("summary").unwrap().status.code, Some(11));
        assert_eq!(reply.section("pools").unwrap().status.code, Some(7));
        assert!(matches!(
            parse_reply("summary", b"{\"STATUS\":1}[2]"),
            Err(ReplyError::Malformed(_))
        ));
    }

    #[test]
    fn oversized_and_empty_and_garbage_are_refused() {
        let big = vec![b' '; MAX_REPLY_BYTES + 1];
        assert!(matches!(
            parse_reply("summary", &big),
            Err(ReplyError::TooLarge { .. })
        ));
        assert_eq!(parse_reply("summary", b"\0"), Err(ReplyError::Empty));
        assert!(matches!(
            parse_reply("summary", b"{\"STATUS\":"),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            parse_reply("summary", b"[1,2]"),
            Err(ReplyError::Malformed(_))
        ));
        assert_eq!(
            parse_reply("summary", b"{\"SUMMARY\":[]}"),
            Err(ReplyError::MissingStatus {
                command: "summary".into()
            })
        );
    }

    #[test]
    fn restart_answers_a_bare_word() {
        let reply = parse_reply("restart", b"RESTART\0").unwrap();
        assert_eq!(reply.section("restart").unwrap().status.msg, "RESTART");
    }

    #[test]
    fn status_kinds() {
        let warn = r#"{"STATUS":[{"STATUS":"W","Code":8,"Msg":"No pools"}]}"#;
        assert!(
            parse_reply("pools", warn.as_bytes())
                .unwrap()
                .section("pools")
                .is_ok()
        );
        let fatal = r#"{"STATUS":[{"STATUS":"F","Code":99,"Msg":"boom"}]}"#;
        assert!(matches!(
            parse_reply("pools", fatal.as_bytes())
                .unwrap()
                .section("pools"),
            Err(ReplyError::Refused {
                kind: StatusKind::Fatal,
                code: Some(99),
                ..
            })
        ));
    }
}
