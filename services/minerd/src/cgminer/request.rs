//! Requests to the cgminer API: which commands exist, which change the miner (privileged: the
//! firmware refuses them unless the client is in its `W:` access group), and how they are put on
//! the wire, as JSON or as cgminer's text form `command|parameter`.

use serde_json::json;

/// One cgminer API command, with its parameter where it takes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Version,
    Summary,
    Devs,
    DevDetails,
    Pools,
    Stats,
    /// BOSminer extra: fan speeds.
    Fans,
    /// BOSminer extra: board and chip temperatures.
    Temps,
    /// BOSminer extra: tuner state, power consumption and power limit.
    TunerStatus,
    AddPool {
        url: String,
        user: String,
        password: String,
    },
    /// Pool indices are the `POOL` numbers of the `pools` reply.
    SwitchPool(u32),
    EnablePool(u32),
    DisablePool(u32),
    RemovePool(u32),
    Restart,
    Quit,
    /// BOSminer: stop hashing, keep the API up (pyasic `BOSMinerRPCAPI.pause`, reply `PAUSE`).
    Pause,
    /// BOSminer: hash again after `pause` (pyasic `BOSMinerRPCAPI.resume`, reply `RESUME`).
    Resume,
    /// LuxOS: open (or get the open) API session; its id is the first parameter of every
    /// session-bound command (pyasic `LUXMinerRPCAPI.session`/`logon`, reply `SESSION`
    /// with `SessionID`).
    Logon,
    /// LuxOS: `curtail` with `sleep` or `wakeup` inside the session `session`.
    Curtail {
        session: String,
        sleep: bool,
    },
    /// LuxOS: the power profiles the miner offers (name, watts, hashrate).
    Profiles,
    /// LuxOS: its settings, among them the power profile it runs (`Profile`).
    Config,
    /// LuxOS: the wall power the PSU reports (`Watts`).
    Power,
    /// LuxOS: run at the power profile `profile`, inside the session `session`.
    ProfileSet {
        session: String,
        profile: String,
    },
}

impl Command {
    /// The command word on the wire, which is also the key of its section in a joined reply.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Version => "version",
            Command::Summary => "summary",
            Command::Devs => "devs",
            Command::DevDetails => "devdetails",
            Command::Pools => "pools",
            Command::Stats => "stats",
            Command::Fans => "fans",
            Command::Temps => "temps",
            Command::TunerStatus => "tunerstatus",
            Command::AddPool { .. } => "addpool",
            Command::SwitchPool(_) => "switchpool",
            Command::EnablePool(_) => "enablepool",
            Command::DisablePool(_) => "disablepool",
            Command::RemovePool(_) => "removepool",
            Command::Restart => "restart",
            Command::Quit => "quit",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Logon => "logon",
            Command::Curtail { .. } => "curtail",
            Command::Profiles => "profiles",
            Command::Config => "config",
            Command::Power => "power",
            Command::ProfileSet { .. } => "profileset",
        }
    }

    /// The parameter as cgminer parses it: `addpool` splits on unescaped commas, so commas and
    /// backslashes inside the URL, user or password are escaped with a backslash.
    pub fn parameter(&self) -> Option<String> {
        match self {
            Command::AddPool {
                url,
                user,
                password,
            } => Some(format!(
                "{},{},{}",
                escape_parameter(url),
                escape_parameter(user),
                escape_parameter(password)
            )),
            Command::SwitchPool(i)
            | Command::EnablePool(i)
            | Command::DisablePool(i)
            | Command::RemovePool(i) => Some(i.to_string()),
            Command::Curtail { session, sleep } => Some(format!(
                "{},{}",
                escape_parameter(session),
                if *sleep { "sleep" } else { "wakeup" }
            )),
            Command::ProfileSet { session, profile } => Some(format!(
                "{},{}",
                escape_parameter(session),
                escape_parameter(profile)
            )),
            _ => None,
        }
    }

    /// Commands that change what the miner does; the firmware answers them with Code 45
    /// (access denied) unless the API allows writes from this client.
    pub fn is_privileged(&self) -> bool {
        matches!(
            self,
            Command::AddPool { .. }
                | Command::SwitchPool(_)
                | Command::EnablePool(_)
                | Command::DisablePool(_)
                | Command::RemovePool(_)
                | Command::Restart
                | Command::Quit
                | Command::Pause
                | Command::Resume
                | Command::Curtail { .. }
                | Command::ProfileSet { .. }
        )
    }
}

/// Escapes the characters cgminer's parameter splitter treats specially (`\` and `,`).
pub fn escape_parameter(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        if c == '\\' || c == ',' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("a request needs at least one command")]
    Empty,
    /// cgminer joins only read-only commands without parameters: a parameter would apply to
    /// every joined command, and privileged commands are refused inside a join.
    #[error(
        "command '{command}' cannot be joined with others (it takes a parameter or changes the miner)"
    )]
    NotJoinable { command: &'static str },
}

/// A request: one command, or several read-only ones joined with `+` into one round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    commands: Vec<Command>,
}

impl Request {
    pub fn single(command: Command) -> Request {
        Request {
            commands: vec![command],
        }
    }

    pub fn joined(commands: Vec<Command>) -> Result<Request, RequestError> {
        if commands.is_empty() {
            return Err(RequestError::Empty);
        }
        if commands.len() > 1
            && let Some(c) = commands
                .iter()
                .find(|c| c.is_privileged() || c.parameter().is_some())
        {
            return Err(RequestError::NotJoinable { command: c.name() });
        }
        Ok(Request { commands })
    }

    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    /// The command field: names joined with `+`.
    pub fn command_field(&self) -> String {
        let names: Vec<&str> = self.commands.iter().map(Command::name).collect();
        names.join("+")
    }

    pub fn is_privileged(&self) -> bool {
        self.commands.iter().any(Command::is_privileged)
    }

    fn parameter(&self) -> Option<String> {
        match self.commands.as_slice() {
            [single] => single.parameter(),
            _ => None,
        }
    }

    /// The JSON form every firmware accepts: `{"command":"…","parameter":"…"}`, no newline.
    pub fn to_json(&self) -> Vec<u8> {
        let value = match self.parameter() {
            Some(p) => json!({"command": self.command_field(), "parameter": p}),
            None => json!({"command": self.command_field()}),
        };
        value.to_string().into_bytes()
    }

    /// The text form `command|parameter`, for firmware whose JSON parser is broken or absent.
    pub fn to_text(&self) -> Vec<u8> {
        let mut text = self.command_field();
        if let Some(p) = self.parameter() {
            text.push('|');
            text.push_str(&p);
        }
        text.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_read_commands_use_plus() {
        let r = Request::joined(vec![Command::Summary, Command::Pools]).unwrap();
        assert_eq!(r.to_json(), br#"{"command":"summary+pools"}"#);
        assert_eq!(r.to_text(), b"summary+pools");
        assert!(!r.is_privileged());
    }

    #[test]
    fn addpool_escapes_commas_and_backslashes() {
        let r = Request::single(Command::AddPool {
            url: "stratum+tcp://pool.example.org:3333".into(),
            user: "acct,w1".into(),
            password: r"x\y".into(),
        });
        let v: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(v["command"], "addpool");
        assert_eq!(
            v["parameter"],
            r"stratum+tcp://pool.example.org:3333,acct\,w1,x\\y"
        );
        assert!(r.is_privileged());
    }

    #[test]
    fn text_form_puts_parameter_after_bar() {
        assert_eq!(
            Request::single(Command::SwitchPool(1)).to_text(),
            b"switchpool|1"
        );
    }

    #[test]
    fn privileged_commands_are_marked() {
        for c in [
            Command::SwitchPool(0),
            Command::EnablePool(0),
            Command::DisablePool(0),
            Command::RemovePool(0),
            Command::Restart,
            Command::Pause,
            Command::Resume,
        ] {
            assert!(c.is_privileged(), "{}", c.name());
        }
        for c in [Command::Version, Command::Stats, Command::TunerStatus] {
            assert!(!c.is_privileged(), "{}", c.name());
        }
    }

    #[test]
    fn privileged_or_parameterised_commands_do_not_join() {
        assert_eq!(
            Request::joined(vec![Command::Summary, Command::Restart]),
            Err(RequestError::NotJoinable { command: "restart" })
        );
        assert_eq!(
            Request::joined(vec![Command::Pools, Command::SwitchPool(2)]),
            Err(RequestError::NotJoinable {
                command: "switchpool"
            })
        );
        assert_eq!(Request::joined(vec![]), Err(RequestError::Empty));
    }
}
