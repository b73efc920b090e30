//! Text laid out for the 80-column serial console, shared by the views of `bunkerctl mining`
//! and `bunkerctl site`: words wrapped under a label or a table row, wide facts on an indented
//! line under their row.

use serde_json::Value;

/// The width of the serial console everything is laid out for.
pub const CONSOLE_WIDTH: usize = 80;

/// `text` after `lead`, its words wrapped at [`CONSOLE_WIDTH`] with continuation lines indented
/// by `indent` spaces; every line ends in a newline. A word longer than a line stays whole.
pub fn wrapped(lead: &str, indent: usize, text: &str) -> String {
    let mut out = String::new();
    let mut line = lead.to_owned();
    let mut empty = true;
    for word in text.split_whitespace() {
        let fits = line.chars().count() + usize::from(!empty) + word.chars().count();
        if !empty && fits > CONSOLE_WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = " ".repeat(indent);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// A labelled row of a status screen: the label in 14 columns after two spaces, the value
/// wrapped under itself.
pub fn labelled(label: &str, value: &str) -> String {
    wrapped(&format!("  {label:<14}"), 16, value)
}

/// An array's items, or none.
pub fn list(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// A rendered table with `details[i]` on its own line under row `i` (none for an empty one).
pub fn with_details(rendered: &str, details: &[String]) -> String {
    let mut lines = rendered.lines();
    let mut out = String::new();
    if let Some(heading) = lines.next() {
        out.push_str(heading);
        out.push('\n');
    }
    for (line, detail) in lines.zip(details) {
        out.push_str(line);
        out.push('\n');
        if !detail.is_empty() {
            out.push_str(detail);
            out.push('\n');
        }
    }
    out
}
