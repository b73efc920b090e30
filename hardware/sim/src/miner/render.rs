//! Puts cgminer API replies on the wire the way the firmware does: keys in the firmware's
//! order (serde_json's map would sort them), `"STATUS"` first, `"id":1` last, joined replies
//! as `{"cmd":[<reply>],…,"id":1}`, and bmminer's `}{` between `stats` records.

use std::borrow::Cow;

use serde_json::Value;

/// A key of a reply record: mostly fixed names, some numbered per chain (`chain_rate6`).
pub type Key = Cow<'static, str>;

/// One JSON object with its keys in the order the firmware writes them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record(Vec<(Key, Value)>);

impl Record {
    pub fn push(&mut self, key: impl Into<Key>, value: Value) {
        self.0.push((key.into(), value));
    }

    pub fn extend(&mut self, fields: impl IntoIterator<Item = (&'static str, Value)>) {
        self.0
            .extend(fields.into_iter().map(|(k, v)| (Key::Borrowed(k), v)));
    }
}

impl From<Vec<(&'static str, Value)>> for Record {
    fn from(fields: Vec<(&'static str, Value)>) -> Record {
        let mut record = Record::default();
        record.extend(fields);
        record
    }
}

/// The STATUS letter of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Info,
    Error,
}

impl Outcome {
    fn letter(self) -> &'static str {
        match self {
            Outcome::Success => "S",
            Outcome::Info => "I",
            Outcome::Error => "E",
        }
    }
}

/// The reply to one command.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub outcome: Outcome,
    pub code: u32,
    pub msg: String,
    /// The data key (`SUMMARY`, `POOLS`…) and its records; none for action replies.
    pub data: Option<(&'static str, Vec<Record>)>,
    /// A second data key some replies carry (LuxOS `fans` adds `FANCTRL`).
    pub extra: Option<(&'static str, Vec<Record>)>,
    /// bmminer writes `stats` records as `{…}{…}` instead of `{…},{…}`.
    pub concatenated_records: bool,
}

impl Section {
    pub fn ok(code: u32, msg: impl Into<String>, key: &'static str, records: Vec<Record>) -> Self {
        Section {
            outcome: Outcome::Success,
            code,
            msg: msg.into(),
            data: Some((key, records)),
            extra: None,
            concatenated_records: false,
        }
    }

    pub fn action(code: u32, msg: impl Into<String>) -> Self {
        Section {
            outcome: Outcome::Success,
            code,
            msg: msg.into(),
            data: None,
            extra: None,
            concatenated_records: false,
        }
    }

    pub fn error(code: u32, msg: impl Into<String>) -> Self {
        Section {
            outcome: Outcome::Error,
            code,
            msg: msg.into(),
            data: None,
            extra: None,
            concatenated_records: false,
        }
    }

    pub fn with_outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn concatenated(mut self) -> Self {
        self.concatenated_records = true;
        self
    }
}

pub fn render_record(record: &Record) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in record.0.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(key.as_ref()).to_string());
        out.push(':');
        out.push_str(&value.to_string());
    }
    out.push('}');
    out
}

/// `{"STATUS":[…],"KEY":[…],"id":1}` for one command.
pub fn render_section(section: &Section, description: &str, when: u64) -> String {
    let status = Record::from(vec![
        ("STATUS", section.outcome.letter().into()),
        ("When", when.into()),
        ("Code", section.code.into()),
        ("Msg", section.msg.clone().into()),
        ("Description", description.into()),
    ]);
    let mut out = format!("{{\"STATUS\":[{}]", render_record(&status));
    if let Some((key, records)) = &section.data {
        let separator = if section.concatenated_records {
            ""
        } else {
            ","
        };
        let body: Vec<String> = records.iter().map(render_record).collect();
        out.push_str(&format!(",\"{key}\":[{}]", body.join(separator)));
    }
    if let Some((key, records)) = &section.extra {
        let body: Vec<String> = records.iter().map(render_record).collect();
        out.push_str(&format!(",\"{key}\":[{}]", body.join(",")));
    }
    out.push_str(",\"id\":1}");
    out
}

/// `{"summary":[<reply>],"pools":[<reply>],"id":1}` for a `+`-joined request.
pub fn render_joined(parts: &[(String, Section)], description: &str, when: u64) -> String {
    let mut out = String::from("{");
    for (name, section) in parts {
        out.push_str(&Value::from(name.as_str()).to_string());
        out.push_str(":[");
        out.push_str(&render_section(section, description, when));
        out.push_str("],");
    }
    out.push_str("\"id\":1}");
    out
}
