//! A table for the operator: a bold heading row, columns as wide as their widest cell and two
//! spaces apart, cells painted by meaning after they are padded (so colour never shifts a
//! column), trailing blanks trimmed.

use crate::terminal::{Palette, Tone};

const GAP: &str = "  ";

/// One cell: its text, and the tone it is painted in (none: plain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    text: String,
    tone: Option<Tone>,
}

impl Cell {
    /// Plain text.
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            tone: None,
        }
    }

    /// Text painted in `tone` on a terminal.
    pub fn toned(tone: Tone, text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            tone: Some(tone),
        }
    }
}

/// `headings` over `rows`, each line ending in a newline.
pub fn render(headings: &[&str], rows: &[Vec<Cell>], palette: Palette) -> String {
    let mut widths: Vec<usize> = headings.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.text.chars().count());
        }
    }
    let heading: Vec<Cell> = headings.iter().map(|h| Cell::plain(*h)).collect();
    let mut out = palette.paint(Tone::Heading, &line(&heading, &widths, Palette::Plain));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row, &widths, palette));
        out.push('\n');
    }
    out
}

fn line(cells: &[Cell], widths: &[usize], palette: Palette) -> String {
    let padded: Vec<String> = cells
        .iter()
        .zip(widths)
        .map(|(cell, width)| {
            let pad = " ".repeat(width.saturating_sub(cell.text.chars().count()));
            let text = match cell.tone {
                Some(tone) => palette.paint(tone, &cell.text),
                None => cell.text.clone(),
            };
            text + &pad
        })
        .collect();
    padded.join(GAP).trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_colour_does_not_move_them() {
        let rows = vec![
            vec![
                Cell::plain("lisbon-1"),
                Cell::toned(Tone::Good, "up"),
                Cell::plain("10.0 ms"),
            ],
            vec![
                Cell::plain("paris-1"),
                Cell::toned(Tone::Bad, "down"),
                Cell::plain(""),
            ],
        ];
        assert_eq!(
            render(&["PEER", "STATE", "RTT"], &rows, Palette::Plain),
            "PEER      STATE  RTT\n\
             lisbon-1  up     10.0 ms\n\
             paris-1   down\n"
        );
        let painted = render(&["PEER", "STATE", "RTT"], &rows, Palette::Ansi);
        assert!(
            painted.contains("lisbon-1  \x1b[32mup\x1b[0m     10.0 ms\n"),
            "{painted:?}"
        );
        assert!(painted.starts_with("\x1b[1mPEER      STATE  RTT\x1b[0m\n"));
    }
}
