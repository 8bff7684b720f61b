//! What the admin commands print: tables sized to their content, progress on stderr, cells and
//! times as the tables show them, and `--json`.

use std::io::{IsTerminal, Write};

use serde::Serialize;

/// Columns sized to their widest cell; numbers right-aligned.
pub struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
    /// A line printed under a row (an error, the next attempt), indented.
    notes: Vec<Vec<String>>,
}

impl Table {
    /// `headers` whose name starts with `>` are right-aligned.
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.trim_start_matches('>')).collect(),
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
        self.notes.push(Vec::new());
    }

    pub fn note(&mut self, note: String) {
        if let Some(last) = self.notes.last_mut() {
            last.push(note);
        }
    }

    pub fn print(&self, empty: &str) {
        if self.rows.is_empty() {
            println!("{empty}");
            return;
        }
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                let last = i + 1 == cells.len();
                if self.right[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    if !last {
                        out.push_str(&" ".repeat(pad));
                    }
                }
                if !last {
                    out.push_str("  ");
                }
            }
            out
        };
        let headers: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        println!("{}", line(&headers));
        let indent = " ".repeat(widths[0] + 2);
        for (row, notes) in self.rows.iter().zip(&self.notes) {
            println!("{}", line(row));
            for note in notes {
                println!("{indent}{note}");
            }
        }
    }
}

/// An optional field as a table cell: `-` when absent.
pub fn cell(v: Option<&str>) -> String {
    v.unwrap_or("-").to_string()
}

/// An RFC 3339 time from the API as `YYYY-MM-DD HH:MM:SS` (UTC); `-` when absent.
pub fn when(t: Option<&str>) -> String {
    match t {
        Some(t) => t.get(..19).unwrap_or(t).replace('T', " "),
        None => "-".into(),
    }
}

/// Progress of a bulk operation on stderr: one line rewritten in place on a terminal, a line
/// every tenth of the way otherwise (logs and pipes stay short).
pub struct Progress {
    label: &'static str,
    total: usize,
    done: usize,
    tty: bool,
}

impl Progress {
    pub fn new(label: &'static str, total: usize) -> Progress {
        Progress {
            label,
            total,
            done: 0,
            tty: std::io::stderr().is_terminal(),
        }
    }

    pub fn tick(&mut self) {
        self.done += 1;
        let step = (self.total / 10).max(1);
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r{} {}/{}", self.label, self.done, self.total);
            if self.done == self.total {
                let _ = writeln!(err);
            }
        } else if self.done.is_multiple_of(step) || self.done == self.total {
            let _ = writeln!(err, "{} {}/{}", self.label, self.done, self.total);
        }
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json<T: Serialize + ?Sized>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_times() {
        assert_eq!(cell(None), "-");
        assert_eq!(cell(Some("booking-1")), "booking-1");
        assert_eq!(
            when(Some("2026-11-22T21:44:50.123Z")),
            "2026-11-22 21:44:50"
        );
        assert_eq!(when(None), "-");
    }
}
