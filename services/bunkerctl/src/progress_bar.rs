//! A progress bar for long operations on a terminal, and its plain-text twin for pipes, logs and
//! the serial console of a boot test (no carriage returns, one line per change).

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressStyle {
    /// One line redrawn in place with `\r`: stdout is a terminal.
    Bar,
    /// A new line for every change: stdout is a pipe or a file.
    Lines,
}

/// Where a job stands: `done` of `total` finished, `failed` of those failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub done: u32,
    pub failed: u32,
    pub total: u32,
}

/// Characters of the bar between its brackets: fits an 80-column console with the counts.
const BAR_WIDTH: usize = 30;

impl ProgressStyle {
    /// The bar on a terminal, lines elsewhere.
    pub fn for_stdout() -> Self {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() {
            ProgressStyle::Bar
        } else {
            ProgressStyle::Lines
        }
    }

    /// What to write for `progress` of the operation called `label`.
    pub fn render(self, label: &str, progress: Progress) -> String {
        let counts = format!(
            "{}/{} done, {} failed",
            progress.done, progress.total, progress.failed
        );
        match self {
            ProgressStyle::Lines => format!("{label}: {counts}\n"),
            ProgressStyle::Bar => {
                // `\x1b[K` clears what a longer previous line left at the end.
                format!("\r{label} [{}] {counts}\x1b[K", bar(progress))
            }
        }
    }

    /// What to write for `done` of `total` bytes of the phase called `label` (an update's
    /// download, write and verify): the same bar, with sizes and the percentage.
    pub fn render_bytes(self, label: &str, done: u64, total: u64) -> String {
        let percent = (done.min(total).saturating_mul(100))
            .checked_div(total)
            .unwrap_or(100);
        let counts = format!("{} of {} MiB, {percent}%", done >> 20, total >> 20);
        match self {
            ProgressStyle::Lines => format!("{label}: {counts}\n"),
            ProgressStyle::Bar => {
                let filled = usize::try_from(percent).unwrap_or(100) * BAR_WIDTH / 100;
                format!(
                    "\r{label:<13} [{}{}] {counts}\x1b[K",
                    "#".repeat(filled),
                    ".".repeat(BAR_WIDTH - filled)
                )
            }
        }
    }

    /// What ends the progress display before a summary is printed.
    pub fn finish(self) -> &'static str {
        match self {
            ProgressStyle::Bar => "\n",
            ProgressStyle::Lines => "",
        }
    }
}

/// `#` for each finished part, `!` for the failed share of it, `.` for what is left.
fn bar(progress: Progress) -> String {
    let total = progress.total.max(1) as usize;
    let done = (progress.done as usize).min(total);
    let filled = done * BAR_WIDTH / total;
    let failed = ((progress.failed as usize).min(done) * BAR_WIDTH / total).min(filled);
    let mut bar = "#".repeat(filled - failed);
    bar.push_str(&"!".repeat(failed));
    bar.push_str(&".".repeat(BAR_WIDTH - filled));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(done: u32, failed: u32, total: u32) -> Progress {
        Progress {
            done,
            failed,
            total,
        }
    }

    #[test]
    fn byte_progress_shows_sizes_and_percent() {
        assert_eq!(
            ProgressStyle::Lines.render_bytes("write-root", 80 << 20, 160 << 20),
            "write-root: 80 of 160 MiB, 50%\n"
        );
        let bar = ProgressStyle::Bar.render_bytes("verify", 40 << 20, 160 << 20);
        assert!(
            bar.contains(&format!("[{}{}]", "#".repeat(7), ".".repeat(23))),
            "{bar}"
        );
        // nothing to do, or more done than announced, never panic or pass 100 %
        assert!(
            ProgressStyle::Lines
                .render_bytes("x", 0, 0)
                .contains("100%")
        );
        assert!(ProgressStyle::Bar.render_bytes("x", 9, 3).contains("100%"));
    }

    #[test]
    fn lines_say_the_counts_once_per_change() {
        assert_eq!(
            ProgressStyle::Lines.render("reboot", at(3, 1, 10)),
            "reboot: 3/10 done, 1 failed\n"
        );
        assert_eq!(ProgressStyle::Lines.finish(), "");
    }

    #[test]
    fn the_bar_redraws_in_place_and_fills_with_what_is_done() {
        assert_eq!(
            ProgressStyle::Bar.render("sleep", at(0, 0, 4)),
            format!("\rsleep [{}] 0/4 done, 0 failed\x1b[K", ".".repeat(30))
        );
        assert_eq!(
            ProgressStyle::Bar.render("sleep", at(2, 1, 4)),
            format!(
                "\rsleep [{}{}{}] 2/4 done, 1 failed\x1b[K",
                "#".repeat(8),
                "!".repeat(7),
                ".".repeat(15)
            )
        );
        assert!(
            ProgressStyle::Bar
                .render("wake", at(4, 0, 4))
                .contains(&format!("[{}]", "#".repeat(30)))
        );
        // A job of no miners, or counts beyond the total, never panic.
        assert!(ProgressStyle::Bar.render("x", at(0, 0, 0)).contains("0/0"));
        assert!(ProgressStyle::Bar.render("x", at(9, 9, 3)).contains("9/3"));
    }
}
