//! What the admin commands print: tables (comfy-table), progress on stderr (indicatif), cells and
//! times as the tables show them, and `--json`.

use std::io::IsTerminal;
use std::time::Duration;

use comfy_table::{CellAlignment, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// Plain columns without borders, two spaces apart, sized to their widest cell; numbers
/// right-aligned. Each row may carry notes (an error, the next attempt), printed indented under
/// it, where they do not widen the columns.
pub struct Table {
    table: comfy_table::Table,
    notes: Vec<Vec<String>>,
}

impl Table {
    /// `headers` whose name starts with `>` are right-aligned.
    pub fn new(headers: &[&'static str]) -> Table {
        let mut table = comfy_table::Table::new();
        table
            .load_style(presets::NOTHING)
            .set_header(headers.iter().map(|h| h.trim_start_matches('>')));
        let last = headers.len().saturating_sub(1);
        for (i, column) in table.column_iter_mut().enumerate() {
            // The gap is the padding: no leading space, none after the last column.
            column.set_padding((0, if i == last { 0 } else { 2 }));
            if headers[i].starts_with('>') {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        Table {
            table,
            notes: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.table.add_row(cells.iter().map(|c| one_line(c)));
        self.notes.push(Vec::new());
    }

    pub fn note(&mut self, note: String) {
        if let Some(last) = self.notes.last_mut() {
            last.push(note);
        }
    }

    pub fn print(&self, empty: &str) {
        println!("{}", self.render(empty));
    }

    fn render(&self, empty: &str) -> String {
        if self.notes.is_empty() {
            return empty.to_string();
        }
        // Notes line up with the second column.
        let first = self.table.column_max_content_widths()[0] as usize;
        let indent = " ".repeat(first + 2);
        // The style draws no lines of its own and every cell is one line: the header, then one
        // line per row.
        let mut lines = self.table.lines().map(|l| l.trim_end().to_string());
        let mut out = vec![lines.next().unwrap_or_default()];
        for (line, notes) in lines.zip(&self.notes) {
            out.push(line);
            out.extend(notes.iter().map(|n| format!("{indent}{n}")));
        }
        out.join("\n")
    }
}

/// A cell on one line: a control character (a newline in a provider's field) would break the row.
fn one_line(text: &str) -> String {
    text.replace(|c: char| c.is_control(), " ")
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

/// Progress of a bulk operation on stderr: a bar on a terminal, and on a file or a pipe a line
/// every tenth of the way (logs stay short and keep the counts).
pub struct Progress {
    label: &'static str,
    total: usize,
    done: usize,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(label: &'static str, total: usize) -> Progress {
        // Nothing to count draws nothing, as on a pipe.
        let drawn = total > 0 && std::io::stderr().is_terminal();
        let bar = drawn.then(|| {
            ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
                .with_style(style("{msg} {pos}/{len} [{bar:30}] {elapsed}").progress_chars("=> "))
                .with_message(label)
        });
        Progress {
            label,
            total,
            done: 0,
            bar,
        }
    }

    pub fn tick(&mut self) {
        self.set(self.done + 1);
    }

    /// `done` of the total, as a background job reports it (never backwards).
    pub fn set(&mut self, done: usize) {
        let done = done.min(self.total);
        if done <= self.done {
            return;
        }
        let before = self.done;
        self.done = done;
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.done as u64);
                if self.done == self.total {
                    // What stays on the terminal is the line a log gets: `requeued 12/12`.
                    bar.set_style(style("{msg} {pos}/{len}"));
                    bar.finish();
                }
            }
            None => {
                // A line each time a tenth of the way is passed, and at the end.
                let step = (self.total / 10).max(1);
                if self.done / step != before / step || self.done == self.total {
                    eprintln!("{} {}/{}", self.label, self.done, self.total);
                }
            }
        }
    }
}

/// A status line on stderr for a run of unknown length (pages of a listing): rewritten in place
/// behind a spinner on a terminal, a new line each time otherwise.
pub struct Status {
    spinner: Option<ProgressBar>,
}

impl Status {
    pub fn new() -> Status {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                .with_style(style("{spinner} {msg}"))
                .with_message("asking the running payhook");
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        });
        Status { spinner }
    }

    pub fn say(&self, line: String) {
        match &self.spinner {
            Some(spinner) => spinner.set_message(line),
            None => eprintln!("{line}"),
        }
    }

    /// Leaves the last line said on the terminal.
    pub fn finish(&self) {
        if let Some(spinner) = &self.spinner {
            spinner.set_style(style("{msg}"));
            spinner.finish();
        }
    }
}

/// A run cut short by an error leaves no spinner behind: the error follows on its own line.
impl Drop for Status {
    fn drop(&mut self) {
        if let Some(spinner) = &self.spinner
            && !spinner.is_finished()
        {
            spinner.finish_and_clear();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("a valid progress template")
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
    fn columns_are_two_spaces_apart_numbers_right_notes_under_their_row() {
        let mut table = Table::new(&[">#", "status", ">attempts", "type"]);
        table.row(vec![
            "42".into(),
            "failed".into(),
            "1".into(),
            "payment_intent.succeeded".into(),
        ]);
        table.note("error: names no payment intent".into());
        table.row(vec![
            "7".into(),
            "processed".into(),
            "12".into(),
            "line\nbreak".into(),
        ]);
        let lines = [
            " #  status     attempts  type",
            "42  failed            1  payment_intent.succeeded",
            "    error: names no payment intent",
            " 7  processed        12  line break",
        ];
        assert_eq!(table.render("(none)"), lines.join("\n"));
    }

    #[test]
    fn an_empty_table_says_so() {
        let table = Table::new(&[">#", "status"]);
        assert_eq!(table.render("(no events)"), "(no events)");
    }

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

    #[test]
    fn the_progress_templates_are_valid() {
        for template in [
            "{msg} {pos}/{len} [{bar:30}] {elapsed}",
            "{msg} {pos}/{len}",
            "{spinner} {msg}",
            "{msg}",
        ] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }
}
