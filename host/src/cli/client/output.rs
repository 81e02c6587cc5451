//! Human output: aligned tables, times, sizes, and shortened text.

use std::io::Write as _;

use chrono::{DateTime, Utc};
use indicatif::HumanBytes;

/// Rows under a header, printed with every column but the last padded to its widest cell.
#[derive(Debug)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Returns an empty table with these column names.
    pub fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row: one cell per column.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    /// Renders the table, one line per row and a line for the header, or `empty` when there
    /// are no rows.
    pub fn render(&self, empty: &str) -> String {
        if self.rows.is_empty() {
            return format!("{empty}\n");
        }
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let last = row.len() - 1;
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i == last {
                    line.push_str(cell);
                } else {
                    let pad = w - cell.chars().count();
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table to stdout (see [`Table::render`]).
    pub fn print(&self, empty: &str) {
        print(&self.render(empty));
    }
}

/// Writes `text` to stdout as it is; a closed pipe (`| head`) is not an error worth a panic.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Prints `text` and a newline: one JSON document for `--json`.
pub fn print_line(text: &str) {
    print(&format!("{text}\n"));
}

/// Formats a time as `2025-01-31 12:00:00` (UTC), or `-` when there is none.
pub fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "-".into(),
        |at| at.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// Formats a size in bytes as `1.50 MiB`.
pub fn bytes(n: i64) -> String {
    HumanBytes(n.max(0) as u64).to_string()
}

/// Returns `text` safe to show on a terminal: control characters (C0, DEL, C1: escape
/// sequences start with ESC or CSI, and OSC ones can set the clipboard or the window title)
/// and the bidirectional overrides that reorder what a line seems to say are shown as
/// `\u{..}` escapes rather than sent. For anything a guest wrote: log lines and their fields,
/// error messages, keys, payloads.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Returns `text` on one line, cut to `max` characters with `…`.
pub fn short(text: &str, max: usize) -> String {
    let line: String = text
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
                ' '
            } else {
                c
            }
        })
        .collect();
    if line.chars().count() <= max {
        line
    } else {
        let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_and_the_last_is_not_padded() {
        let mut t = Table::new(&["ID", "STATE", "NOTE"]);
        t.row(vec!["1".into(), "available".into(), "".into()]);
        t.row(vec!["22".into(), "dead".into(), "boom".into()]);
        assert_eq!(
            t.render("none"),
            "ID  STATE      NOTE\n1   available\n22  dead       boom\n"
        );
        assert_eq!(Table::new(&["A"]).render("no rows"), "no rows\n");
    }

    #[test]
    fn escape_sequences_never_reach_the_terminal() {
        assert_eq!(escape("plain text é"), "plain text é");
        let osc52 = "copied\u{1b}]52;c;cm0gLXJmIH4=\u{7}";
        assert_eq!(escape(osc52), "copied\\u{1b}]52;c;cm0gLXJmIH4=\\u{7}");
        assert_eq!(escape("a\u{9b}31mb\nc\u{7f}"), "a\\u{9b}31mb\\u{a}c\\u{7f}");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(short("x\u{1b}[2Jy", 10), "x [2Jy");
    }

    #[test]
    fn long_text_is_cut_to_one_line() {
        assert_eq!(short("a\nb", 10), "a b");
        assert_eq!(short("abcdef", 4), "abc…");
    }
}
