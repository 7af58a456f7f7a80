//! The report as one self-contained HTML page: styles inline, the timeline
//! as inline SVG, no script, font, image or link to anything outside it, so
//! it opens the same from an email attachment or on an air-gapped laptop.
//! A print stylesheet keeps it plain on paper; on a phone the tables scroll
//! sideways inside their own box.

use std::fmt::Write;

use crate::report::escape::html as esc;
use crate::report::model::Report;
use crate::report::view::{Table, View};

const STYLE: &str = "
:root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --good: #2f6f9f;
  --bad: #c62828; --pause: #f0a030; --band0: #eef3f8; --band1: #f6f1e7; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1100px; padding: 1rem; color: var(--ink); background: #fff;
  font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 1.75rem 0 .4rem; border-bottom: 1px solid var(--line); padding-bottom: .2rem; }
p { margin: .3rem 0 .6rem; }
.sub, .intro, .legend { color: var(--muted); font-size: .9rem; }
.headline { display: grid; grid-template-columns: repeat(auto-fill, minmax(10.5rem, 1fr)); gap: .5rem;
  margin: 1rem 0; padding: 0; list-style: none; }
.headline li { border: 1px solid var(--line); border-radius: 6px; padding: .45rem .6rem; }
.headline .value { display: block; font-size: 1.35rem; font-weight: 600; overflow-wrap: anywhere; }
.headline .label { color: var(--muted); font-size: .85rem; }
.headline .alarm { border-color: var(--bad); }
.headline .alarm .value { color: var(--bad); }
.scroll { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f6f8fa; white-space: nowrap; }
tr:last-child td { border-bottom: 0; }
td { font-variant-numeric: tabular-nums; }
td.id, td.code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .8rem; }
td.id { white-space: nowrap; } td.code { overflow-wrap: anywhere; min-width: 14rem; }
.chart { overflow-x: auto; }
svg.timeline { width: 100%; min-width: 640px; height: auto; display: block; font: 11px system-ui, sans-serif; }
svg .band0 rect { fill: var(--band0); } svg .band1 rect { fill: var(--band1); }
svg .band text { fill: var(--muted); }
svg .pause rect { fill: var(--pause); opacity: .35; } svg .pause text { fill: #8a5300; font-weight: 600; }
svg .good { fill: var(--good); } svg .bad { fill: var(--bad); } svg .retry { fill: var(--pause); }
svg .failure circle { fill: var(--bad); opacity: .8; }
svg .grid line, svg .axis line { stroke: var(--line); } svg text { fill: var(--muted); }
.key { display: inline-block; width: .8em; height: .8em; margin: 0 .25em 0 .8em; vertical-align: -.05em; }
details summary { cursor: pointer; color: var(--muted); margin: .4rem 0; }
@media (max-width: 600px) { body { padding: .6rem; font-size: 14px; } .headline .value { font-size: 1.1rem; } }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  .scroll, .chart { overflow: visible; border: 0; } svg.timeline { min-width: 0; }
  table { font-size: 8pt; } tr, .headline li, svg { break-inside: avoid; }
  h2 { break-after: avoid; }
  details > *:not(summary) { display: block; }
}
";

/// The page. `report` gives the timeline what the view's tables do not.
pub fn render(view: &View, report: &Report) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n<p class=\"sub\">{}</p>\n",
        esc(&view.title),
        esc(&view.title),
        esc(&view.subtitle)
    );
    page.push_str("<ul class=\"headline\">\n");
    for figure in &view.headline {
        let _ = writeln!(
            page,
            "<li{}><span class=\"value\">{}</span><span class=\"label\">{}</span></li>",
            if figure.alarm { " class=\"alarm\"" } else { "" },
            esc(&figure.value),
            esc(&figure.label)
        );
    }
    page.push_str("</ul>\n<h2 id=\"timeline\">Timeline</h2>\n");
    page.push_str("<div class=\"chart\">");
    page.push_str(&crate::report::svg::render(view, report));
    page.push_str("</div>");
    page.push_str(
        "\n<p class=\"legend\"><span class=\"key\" style=\"background:var(--good)\"></span>ended well\
         <span class=\"key\" style=\"background:var(--bad)\"></span>did not (bars; points: each row listed below)\
         <span class=\"key\" style=\"background:var(--pause)\"></span>rate-limit pause, retries\
         <span class=\"key\" style=\"background:var(--band0);border:1px solid var(--line)\"></span>runs</p>\n",
    );
    for table in &view.tables {
        // The timeline's table repeats the chart in numbers: folded away on
        // screen, printed in full.
        if table.id == "timeline-table" {
            let _ = writeln!(page, "<details id=\"{}\"><summary>{}</summary>", table.id, esc(&table.intro));
            write_table(&mut page, table);
            page.push_str("</details>\n");
            continue;
        }
        let _ = write!(
            page,
            "<h2 id=\"{}\">{}</h2>\n<p class=\"intro\">{}</p>\n",
            table.id,
            esc(table.title),
            esc(&table.intro)
        );
        if !table.rows.is_empty() {
            write_table(&mut page, table);
        }
    }
    page.push_str("</body>\n</html>\n");
    page
}

/// The class of a column: ids in a monospace font, kept whole to be copied;
/// errors and the evidence's values (hashes, command lines) wrapping anywhere.
fn class_of(header: &str) -> &'static str {
    match header {
        "run id" | "zone" | "certificate" | "cf_ray" | "run" => " class=\"id\"",
        "error" | "value" => " class=\"code\"",
        _ => "",
    }
}

fn write_table(page: &mut String, table: &Table) {
    page.push_str("<div class=\"scroll\"><table>\n<thead><tr>");
    for header in &table.headers {
        let _ = write!(page, "<th scope=\"col\">{}</th>", esc(header));
    }
    page.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        page.push_str("<tr>");
        for (cell, header) in row.iter().zip(&table.headers) {
            let _ = write!(page, "<td{}>{}</td>", class_of(header), esc(cell));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody></table></div>\n");
}
