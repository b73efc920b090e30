//! upsd's line protocol (NUT `docs/net-protocol.txt`), parsed without I/O: every line a UPS
//! server sends is untrusted, so each one is bounded, tokenized with upsd's quoting rules
//! (words split on spaces, `"..."` strings with `\"` and `\\` escapes) and turned into a typed
//! [`Line`] or a typed [`ProtocolError`]. The client reads lines and feeds them here; the fuzz
//! target `upsd_reply` drives [`parse_list_var_reply`].

use std::collections::BTreeMap;
use std::fmt;

/// Longest line accepted, newline excluded. upsd's own buffers are 4 KiB (`LARGEBUF`), and a
/// `VAR` line is the UPS name, the variable name and a value of at most 256 bytes.
pub const MAX_LINE_BYTES: usize = 4096;

/// Most variables one `LIST VAR` may hold. Real UPSes report 20 to 150.
pub const MAX_LIST_VARS: usize = 1024;

/// Most words on one line (`VAR <ups> <name> <value>` is the longest reply a client reads).
const MAX_WORDS: usize = 8;

/// One line from upsd, as far as a reading client cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `BEGIN LIST VAR <ups>`.
    BeginListVar { ups: String },
    /// `VAR <ups> <name> "<value>"`: an item of `LIST VAR`, or the answer to `GET VAR`.
    Var {
        ups: String,
        name: String,
        value: String,
    },
    /// `END LIST VAR <ups>`.
    EndListVar { ups: String },
    /// `OK` or `OK <words>` (to `USERNAME`, `PASSWORD`, `LOGOUT`).
    Ok,
    /// `ERR <code> [<detail>]`.
    Err(NutError),
}

/// The error codes upsd sends (`ERR <code>`), from NUT's `net-protocol.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NutError {
    AccessDenied,
    UnknownUps,
    VarNotSupported,
    CmdNotSupported,
    InvalidArgument,
    InstcmdFailed,
    SetFailed,
    Readonly,
    TooLong,
    FeatureNotSupported,
    FeatureNotConfigured,
    AlreadySslMode,
    /// upsd has no connection to the UPS's driver (it stopped, or never started).
    DriverNotConnected,
    /// The driver has not refreshed its data within upsd's `MAXAGE`.
    DataStale,
    AlreadyLoggedIn,
    InvalidPassword,
    AlreadySetPassword,
    InvalidUsername,
    AlreadySetUsername,
    UsernameRequired,
    PasswordRequired,
    UnknownCommand,
    InvalidValue,
    /// A code this parser does not know (newer upsd versions add some); kept, not fatal.
    Other(String),
}

const NUT_ERROR_CODES: [(&str, NutError); 23] = [
    ("ACCESS-DENIED", NutError::AccessDenied),
    ("UNKNOWN-UPS", NutError::UnknownUps),
    ("VAR-NOT-SUPPORTED", NutError::VarNotSupported),
    ("CMD-NOT-SUPPORTED", NutError::CmdNotSupported),
    ("INVALID-ARGUMENT", NutError::InvalidArgument),
    ("INSTCMD-FAILED", NutError::InstcmdFailed),
    ("SET-FAILED", NutError::SetFailed),
    ("READONLY", NutError::Readonly),
    ("TOO-LONG", NutError::TooLong),
    ("FEATURE-NOT-SUPPORTED", NutError::FeatureNotSupported),
    ("FEATURE-NOT-CONFIGURED", NutError::FeatureNotConfigured),
    ("ALREADY-SSL-MODE", NutError::AlreadySslMode),
    ("DRIVER-NOT-CONNECTED", NutError::DriverNotConnected),
    ("DATA-STALE", NutError::DataStale),
    ("ALREADY-LOGGED-IN", NutError::AlreadyLoggedIn),
    ("INVALID-PASSWORD", NutError::InvalidPassword),
    ("ALREADY-SET-PASSWORD", NutError::AlreadySetPassword),
    ("INVALID-USERNAME", NutError::InvalidUsername),
    ("ALREADY-SET-USERNAME", NutError::AlreadySetUsername),
    ("USERNAME-REQUIRED", NutError::UsernameRequired),
    ("PASSWORD-REQUIRED", NutError::PasswordRequired),
    ("UNKNOWN-COMMAND", NutError::UnknownCommand),
    ("INVALID-VALUE", NutError::InvalidValue),
];

impl NutError {
    /// The error named by an `ERR` code.
    pub fn from_code(code: &str) -> NutError {
        NUT_ERROR_CODES
            .iter()
            .find(|(known, _)| *known == code)
            .map(|(_, error)| error.clone())
            .unwrap_or_else(|| NutError::Other(code.to_owned()))
    }

    /// The code as upsd spells it.
    pub fn code(&self) -> &str {
        match self {
            NutError::Other(code) => code,
            known => NUT_ERROR_CODES
                .iter()
                .find(|(_, error)| error == known)
                .map(|(code, _)| *code)
                .unwrap_or("UNKNOWN"),
        }
    }

    /// Whether the server is up but its data about the UPS is not current: the sensor is
    /// stale rather than refused.
    pub fn is_stale(&self) -> bool {
        matches!(self, NutError::DataStale | NutError::DriverNotConnected)
    }
}

impl fmt::Display for NutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ERR {}", self.code())
    }
}

/// A line, or a sequence of lines, that upsd's protocol does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("a line is longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    #[error("a line is not UTF-8")]
    NotUtf8,
    #[error("a line holds a control character")]
    ControlCharacter,
    #[error("a quoted string is not closed")]
    UnterminatedQuote,
    #[error("a backslash ends the line")]
    DanglingEscape,
    #[error("a quote starts inside a word")]
    QuoteInsideWord,
    #[error("a line holds more than {MAX_WORDS} words")]
    TooManyWords,
    #[error("an empty line")]
    Empty,
    #[error("`{0}` is not a reply line upsd sends")]
    UnknownLine(String),
    #[error("`{keyword}` takes {expected} words, got {got}")]
    WrongArity {
        keyword: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("expected {expected}, got {got}")]
    Unexpected { expected: String, got: String },
    #[error("the reply is about UPS `{got}`, not `{expected}`")]
    WrongUps { expected: String, got: String },
    #[error("variable `{0}` is listed twice")]
    DuplicateVar(String),
    #[error("the list holds more than {MAX_LIST_VARS} variables")]
    TooManyVars,
    #[error("the reply ends before `END LIST VAR`")]
    Truncated,
    #[error("bytes follow `END LIST VAR`")]
    TrailingData,
}

/// Splits one line (without its newline) into words the way upsd quotes them.
pub fn split_words(line: &[u8]) -> Result<Vec<String>, ProtocolError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(ProtocolError::LineTooLong);
    }
    let line = std::str::from_utf8(line).map_err(|_| ProtocolError::NotUtf8)?;
    // upsd ends lines with "\n"; tolerate a "\r\n" peer, refuse other control bytes.
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.chars().any(|c| c.is_control()) {
        return Err(ProtocolError::ControlCharacter);
    }
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if_eq(&' ').is_some() {}
        let Some(&first) = chars.peek() else { break };
        if words.len() == MAX_WORDS {
            return Err(ProtocolError::TooManyWords);
        }
        let word = if first == '"' {
            chars.next();
            quoted(&mut chars)?
        } else {
            bare(&mut chars)?
        };
        words.push(word);
    }
    Ok(words)
}

/// A `"..."` string after its opening quote, up to and including the closing one.
fn quoted(chars: &mut impl Iterator<Item = char>) -> Result<String, ProtocolError> {
    let mut word = String::new();
    loop {
        match chars.next() {
            None => return Err(ProtocolError::UnterminatedQuote),
            Some('"') => return Ok(word),
            Some('\\') => word.push(chars.next().ok_or(ProtocolError::DanglingEscape)?),
            Some(c) => word.push(c),
        }
    }
}

/// A bare word: up to the next space. Backslashes escape here too, as in upsd's parser.
fn bare(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, ProtocolError> {
    let mut word = String::new();
    while let Some(c) = chars.next_if(|&c| c != ' ') {
        match c {
            '"' => return Err(ProtocolError::QuoteInsideWord),
            '\\' => word.push(chars.next().ok_or(ProtocolError::DanglingEscape)?),
            c => word.push(c),
        }
    }
    Ok(word)
}

/// Parses one reply line.
pub fn parse_line(line: &[u8]) -> Result<Line, ProtocolError> {
    let words = split_words(line)?;
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let arity = |keyword: &'static str, expected: usize| {
        if words.len() == expected {
            Ok(())
        } else {
            Err(ProtocolError::WrongArity {
                keyword,
                expected,
                got: words.len(),
            })
        }
    };
    match words.as_slice() {
        [] => Err(ProtocolError::Empty),
        ["BEGIN", "LIST", "VAR", ..] => {
            arity("BEGIN LIST VAR", 4)?;
            Ok(Line::BeginListVar {
                ups: words[3].to_owned(),
            })
        }
        ["END", "LIST", "VAR", ..] => {
            arity("END LIST VAR", 4)?;
            Ok(Line::EndListVar {
                ups: words[3].to_owned(),
            })
        }
        ["VAR", ..] => {
            arity("VAR", 4)?;
            Ok(Line::Var {
                ups: words[1].to_owned(),
                name: words[2].to_owned(),
                value: words[3].to_owned(),
            })
        }
        ["OK", ..] => Ok(Line::Ok),
        ["ERR", code, ..] => Ok(Line::Err(NutError::from_code(code))),
        ["ERR"] => Err(ProtocolError::WrongArity {
            keyword: "ERR",
            expected: 2,
            got: 1,
        }),
        [first, ..] => Err(ProtocolError::UnknownLine(truncate(first))),
    }
}

/// A word cut to a size fit for an error message.
fn truncate(word: &str) -> String {
    word.chars().take(32).collect()
}

/// A UPS's variables from one `LIST VAR`, by name.
pub type VarList = BTreeMap<String, String>;

/// Where a `LIST VAR` reply stands after each line; the client feeds it one line at a time.
#[derive(Debug)]
pub struct ListVarReply {
    ups: String,
    vars: VarList,
    begun: bool,
}

/// What one more line did to a [`ListVarReply`].
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// More lines are due.
    More,
    /// `END LIST VAR` arrived: the complete list.
    Done(VarList),
    /// upsd answered `ERR` instead of the list.
    Refused(NutError),
}

impl ListVarReply {
    /// Expects the reply to `LIST VAR <ups>`.
    pub fn new(ups: &str) -> ListVarReply {
        ListVarReply {
            ups: ups.to_owned(),
            vars: VarList::new(),
            begun: false,
        }
    }

    /// Takes the next line of the reply.
    pub fn feed(&mut self, line: &[u8]) -> Result<Progress, ProtocolError> {
        match (self.begun, parse_line(line)?) {
            (false, Line::Err(error)) => Ok(Progress::Refused(error)),
            (false, Line::BeginListVar { ups }) => {
                self.check_ups(ups)?;
                self.begun = true;
                Ok(Progress::More)
            }
            (true, Line::Var { ups, name, value }) => {
                self.check_ups(ups)?;
                if self.vars.len() == MAX_LIST_VARS {
                    return Err(ProtocolError::TooManyVars);
                }
                if self.vars.contains_key(&name) {
                    return Err(ProtocolError::DuplicateVar(truncate(&name)));
                }
                self.vars.insert(name, value);
                Ok(Progress::More)
            }
            (true, Line::EndListVar { ups }) => {
                self.check_ups(ups)?;
                Ok(Progress::Done(std::mem::take(&mut self.vars)))
            }
            (begun, other) => Err(ProtocolError::Unexpected {
                expected: if begun {
                    format!("`VAR {0}` or `END LIST VAR {0}`", self.ups)
                } else {
                    format!("`BEGIN LIST VAR {}` or `ERR`", self.ups)
                },
                got: describe(&other),
            }),
        }
    }

    fn check_ups(&self, ups: String) -> Result<(), ProtocolError> {
        if ups == self.ups {
            Ok(())
        } else {
            Err(ProtocolError::WrongUps {
                expected: self.ups.clone(),
                got: truncate(&ups),
            })
        }
    }
}

/// A line's kind, for error messages (never its whole untrusted content).
fn describe(line: &Line) -> String {
    match line {
        Line::BeginListVar { .. } => "`BEGIN LIST VAR`".into(),
        Line::Var { .. } => "`VAR`".into(),
        Line::EndListVar { .. } => "`END LIST VAR`".into(),
        Line::Ok => "`OK`".into(),
        Line::Err(error) => format!("`{error}`"),
    }
}

/// A whole reply to `LIST VAR <ups>` held in memory: the variables, or upsd's `ERR`, or what is
/// wrong with it. Lines end with `\n`; nothing may follow the reply's last line.
pub fn parse_list_var_reply(
    ups: &str,
    bytes: &[u8],
) -> Result<Result<VarList, NutError>, ProtocolError> {
    let mut reply = ListVarReply::new(ups);
    let mut rest = bytes;
    while !rest.is_empty() {
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => return Err(ProtocolError::Truncated),
        };
        rest = after;
        match reply.feed(line)? {
            Progress::More => {}
            Progress::Done(vars) if rest.is_empty() => return Ok(Ok(vars)),
            Progress::Refused(error) if rest.is_empty() => return Ok(Err(error)),
            Progress::Done(_) | Progress::Refused(_) => return Err(ProtocolError::TrailingData),
        }
    }
    Err(ProtocolError::Truncated)
}

/// Quotes a word for a command line sent to upsd (UPS names, user names, passwords).
pub fn quote(word: &str) -> String {
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('"');
    for c in word.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
