//! Colour on a terminal, plain text everywhere else.
//!
//! Colour only when stdout is a terminal and `NO_COLOR` is unset or empty (<https://no-color.org>),
//! so logs, pipes and the serial console of a boot test get plain text.

use std::ffi::OsStr;
use std::io::{IsTerminal, Write};

use anyhow::{Context, Result};

/// How text is painted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Palette {
    /// No escape sequences at all.
    Plain,
    /// ANSI SGR colours.
    Ansi,
}

/// What a piece of text means, which decides its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Serving: green.
    Good,
    /// Failed: red.
    Bad,
    /// Neither serving nor failed (starting, stopping, stopped): yellow.
    Pending,
    /// Present but unimportant, such as a unit the image does not ship: dim.
    Dim,
    /// Headings: bold.
    Heading,
}

impl Palette {
    /// The palette for this process's stdout.
    pub fn for_stdout() -> Self {
        Self::choose(
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        )
    }

    /// Colour only on a terminal, and never when `NO_COLOR` holds a non-empty value.
    pub fn choose(stdout_is_terminal: bool, no_color: Option<&OsStr>) -> Self {
        let colour_refused = no_color.is_some_and(|value| !value.is_empty());
        if stdout_is_terminal && !colour_refused {
            Palette::Ansi
        } else {
            Palette::Plain
        }
    }

    /// `text` painted in the colour of `tone` (unchanged for [`Palette::Plain`]).
    pub fn paint(self, tone: Tone, text: &str) -> String {
        match self {
            Palette::Plain => text.to_owned(),
            Palette::Ansi => {
                let sgr = match tone {
                    Tone::Good => "32",
                    Tone::Bad => "31",
                    Tone::Pending => "33",
                    Tone::Dim => "2",
                    Tone::Heading => "1",
                };
                format!("\x1b[{sgr}m{text}\x1b[0m")
            }
        }
    }
}

/// Writes `text` to stdout.
pub fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal() {
        assert_eq!(Palette::choose(true, None), Palette::Ansi);
        assert_eq!(Palette::choose(false, None), Palette::Plain);
    }

    #[test]
    fn no_color_refuses_colour_unless_empty() {
        assert_eq!(Palette::choose(true, Some(OsStr::new("1"))), Palette::Plain);
        assert_eq!(Palette::choose(true, Some(OsStr::new(""))), Palette::Ansi);
    }

    #[test]
    fn plain_paint_is_the_text() {
        assert_eq!(Palette::Plain.paint(Tone::Bad, "failed"), "failed");
        assert_eq!(
            Palette::Ansi.paint(Tone::Bad, "failed"),
            "\x1b[31mfailed\x1b[0m"
        );
    }
}
