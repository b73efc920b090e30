//! What can be wrong with a configuration, said so that an operator can fix it.
//!
//! Every problem names where it was found (`FILE:LINE:COLUMN` when there is a position), then a
//! sentence. A service refuses to start on any problem and exits with [`ConfigError::EXIT_CODE`],
//! so systemd and the operator see the same lines that `--check-config` prints.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where a configuration problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A position inside a file: 1-based line and 1-based column counted in characters.
    Position {
        /// The file.
        path: PathBuf,
        /// Line, starting at 1.
        line: usize,
        /// Column in characters (not bytes), starting at 1.
        column: usize,
    },
    /// A file as a whole, when no position inside it applies.
    File(PathBuf),
    /// The built-in defaults compiled into the service: no file set the value.
    BuiltIn,
    /// The merge of several files, when a problem only shows once they are combined.
    Merged(Vec<PathBuf>),
}

impl Origin {
    /// The position of byte `offset` of `text`, which is the content of `path`.
    ///
    /// Columns count characters so that they match what an editor shows for non-ASCII lines.
    pub fn at_offset(path: &Path, text: &str, offset: usize) -> Self {
        let (line, column) = line_column(text, offset);
        Origin::Position {
            path: path.to_path_buf(),
            line,
            column,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Position { path, line, column } => {
                write!(f, "{}:{line}:{column}", path.display())
            }
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::BuiltIn => f.write_str("built-in default"),
            Origin::Merged(paths) => {
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(f, "{}", names.join(" + "))
            }
        }
    }
}

/// 1-based line and character column of byte `offset` in `text`.
///
/// An offset past the end (or inside a multi-byte character) is clamped to the nearest
/// character boundary before it, so a position is always printable.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// One thing wrong with a configuration file or value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    /// A file that must exist (named with `--config`) does not.
    #[error("{}: the file does not exist", path.display())]
    Missing {
        /// The file that was asked for.
        path: PathBuf,
    },
    /// The file exists but could not be read (permissions, I/O error, not a directory above it).
    #[error("{}: cannot read the file: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A directory (or another non-file) stands where a file is expected.
    #[error("{}: is a directory, not a configuration file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is not UTF-8 text, so it cannot be TOML.
    #[error("{origin}: the file is not valid UTF-8 text (byte {byte:#04x} here)")]
    NotUtf8 {
        /// The position of the first invalid byte.
        origin: Origin,
        /// The offending byte, so a hex dump can find it.
        byte: u8,
    },
    /// Syntax error, unknown key, wrong type or out-of-range value, found while reading one file.
    #[error("{origin}: {message}")]
    Invalid {
        /// Where the offending text is.
        origin: Origin,
        /// A sentence saying what is wrong.
        message: String,
    },
    /// A check across several values refused the configuration (see `ServiceConfig::validate`).
    #[error("{origin}: `{key}`: {reason}")]
    Rejected {
        /// The file (and position) that set the key, or the built-in default.
        origin: Origin,
        /// Dotted path of the key, e.g. `pool.failover_after`.
        key: String,
        /// Why the value is refused.
        reason: String,
    },
}

/// Every problem found in a configuration, one per line when displayed.
///
/// Display gives exactly the lines an operator should see, e.g.
/// ``/var/lib/bunkeros/config/minerd.toml:12:5: unknown key `prot`, expected one of `port`, `bind` ``.
#[derive(Debug)]
pub struct ConfigError {
    problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// `EX_CONFIG` from `sysexits.h`: the exit status of a service refused for its configuration.
    ///
    /// systemd shows it as `status=78/CONFIG`, which tells the operator where to look.
    pub const EXIT_CODE: u8 = 78;

    /// An error holding these problems. An empty list is not an error; callers never build one.
    pub fn new(problems: Vec<ConfigProblem>) -> Self {
        debug_assert!(
            !problems.is_empty(),
            "a ConfigError needs at least one problem"
        );
        Self { problems }
    }

    /// The problems, in the order they were found (files in layer order).
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }

    /// [`Self::EXIT_CODE`] as a value `main` can return.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(Self::EXIT_CODE)
    }
}

impl From<ConfigProblem> for ConfigError {
    fn from(problem: ConfigProblem) -> Self {
        Self::new(vec![problem])
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Rewords a serde/toml message so that it reads as a sentence about a configuration file.
///
/// serde speaks of Rust: "unknown field", "expected u16". The operator wrote keys and numbers.
pub(crate) fn reword(message: &str) -> String {
    // One problem, one line: a message spread over lines would break `FILE:LINE:COL:` parsing.
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let message = lines.join("; ");
    if message == "duplicate key" {
        return "duplicate key: it is already set earlier in the file".into();
    }
    let message = message
        .replacen("unknown field", "unknown key", 1)
        .replacen("missing field", "missing key", 1)
        .replacen("unknown variant", "unknown value", 1)
        .replacen(", there are no fields", "; this table takes no keys", 1)
        .replacen("invalid type: ", "wrong type: found ", 1);
    match message.rsplit_once(", expected ") {
        Some((head, expected)) => format!("{head}, expected {}", reword_expected(expected)),
        None => message,
    }
}

/// Names a Rust type the way the TOML file spells its values.
fn reword_expected(expected: &str) -> &str {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64" | "i128"
        | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "a boolean" | "bool" => "true or false",
        "a string" | "a borrowed string" | "string" => "a string",
        "a sequence" => "an array",
        "char" => "a single character",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one_and_in_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        // "bé" is 3 bytes; the `=` after it is the 4th character.
        assert_eq!(line_column(text, 6 + 4), (2, 4));
        // inside the multi-byte é: clamped to its start
        assert_eq!(line_column(text, 8), (2, 2));
        assert_eq!(line_column(text, 10_000), (3, 1));
    }

    #[test]
    fn serde_messages_read_as_sentences() {
        assert_eq!(
            reword("unknown field `prot`, expected one of `port`, `bind`"),
            "unknown key `prot`, expected one of `port`, `bind`"
        );
        assert_eq!(
            reword("invalid type: string \"x\", expected u16"),
            "wrong type: found string \"x\", expected an integer"
        );
        assert_eq!(reword("missing field `role`"), "missing key `role`");
        assert_eq!(
            reword("unknown variant `x`, expected `a` or `b`"),
            "unknown value `x`, expected `a` or `b`"
        );
        assert_eq!(
            reword("duplicate key"),
            "duplicate key: it is already set earlier in the file"
        );
        assert_eq!(reword("first\n  second\n"), "first; second");
    }

    #[test]
    fn display_is_one_line_per_problem() {
        let err = ConfigError::new(vec![
            ConfigProblem::Invalid {
                origin: Origin::Position {
                    path: "/a.toml".into(),
                    line: 3,
                    column: 1,
                },
                message: "unknown key `x`".into(),
            },
            ConfigProblem::Rejected {
                origin: Origin::BuiltIn,
                key: "pool.timeout".into(),
                reason: "must be longer than pool.failover_after".into(),
            },
            ConfigProblem::Missing {
                path: "/b.toml".into(),
            },
        ]);
        assert_eq!(
            err.to_string(),
            "/a.toml:3:1: unknown key `x`\n\
             built-in default: `pool.timeout`: must be longer than pool.failover_after\n\
             /b.toml: the file does not exist"
        );
        assert_eq!(err.exit_code(), ExitCode::from(78));
    }
}
