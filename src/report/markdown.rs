//! The report as Markdown, for a ticket: the same view as the HTML, the
//! timeline as its table of buckets. Every cell is escaped so that nothing
//! read from a file can end a row, split a cell or open markup.

use std::fmt::Write;

use crate::report::escape::markdown as esc;
use crate::report::view::View;

pub fn render(view: &View) -> String {
    let mut text = String::new();
    let _ = write!(text, "# {}\n\n{}\n\n", esc(&view.title), esc(&view.subtitle));
    text.push_str("| figure | value |\n|---|---|\n");
    for figure in &view.headline {
        let mark = if figure.alarm { " (!)" } else { "" };
        let _ = writeln!(text, "| {} | {}{mark} |", esc(&figure.label), esc(&figure.value));
    }
    for table in &view.tables {
        let _ = write!(text, "\n## {}\n\n{}\n\n", esc(table.title), esc(&table.intro));
        if table.rows.is_empty() {
            continue;
        }
        let headers: Vec<String> = table.headers.iter().map(|h| esc(h)).collect();
        let _ = writeln!(text, "| {} |", headers.join(" | "));
        let _ = writeln!(text, "|{}|", vec!["---"; headers.len()].join("|"));
        for row in &table.rows {
            let cells: Vec<String> = row.iter().map(|c| esc(c)).collect();
            let _ = writeln!(text, "| {} |", cells.join(" | "));
        }
    }
    text
}
