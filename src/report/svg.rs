//! The timeline, drawn as inline SVG: bars of rows per bucket (ended well
//! below, did not above), runs as bands behind them, rate-limit pauses as
//! shaded spans, failures as points in a lane of their own and retries as
//! ticks in another. Every mark has a `<title>`, which a browser shows on
//! hover without any script.

use std::fmt::Write;

use crate::report::escape;
use crate::report::model::{Millis, Report};
use crate::report::read::millis;
use crate::report::view::{bucket_name, length, run_kind, time, View};

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 985.0;
const BANDS_TOP: f64 = 6.0;
const PLOT_TOP: f64 = 26.0;
const PLOT_BOTTOM: f64 = 200.0;
const FAILURE_LANE: f64 = 216.0;
const RETRY_LANE: f64 = 234.0;
const AXIS: f64 = 258.0;
const HEIGHT: f64 = 266.0;

/// Tick spacings for the time axis, in seconds; the first giving at most
/// eight ticks is used.
const TICKS_S: [i64; 16] =
    [10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

struct Scale {
    from: Millis,
    to: Millis,
}

impl Scale {
    fn x(&self, at: Millis) -> f64 {
        LEFT + (at - self.from) as f64 / (self.to - self.from) as f64 * (RIGHT - LEFT)
    }
}

/// The chart as one `<svg>` element.
pub fn render(view: &View, report: &Report) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"timeline\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"timeline-title\">\
         <title id=\"timeline-title\">Rows per {} over time</title>",
        bucket_name(view.bucket_ms)
    );
    let Some((first, last)) = view.span else {
        let _ = write!(svg, "<text x=\"{LEFT}\" y=\"{PLOT_TOP}\">No times recorded.</text></svg>");
        return svg;
    };
    let width = view.bucket_ms;
    let from = first.div_euclid(width) * width;
    let to = (last.div_euclid(width) + 1) * width;
    let scale = Scale { from, to };
    bands(&mut svg, report, &scale);
    pauses(&mut svg, report, &scale);
    bars(&mut svg, view, &scale);
    failures(&mut svg, report, &scale);
    axis(&mut svg, &scale);
    svg.push_str("</svg>");
    svg
}

fn bands(svg: &mut String, report: &Report, scale: &Scale) {
    for (i, run) in report.runs.iter().enumerate() {
        let (Some(began), Some(ended)) = (run.began(), run.ended()) else { continue };
        let (x, end) = (scale.x(began), scale.x(ended));
        let w = (end - x).max(2.0);
        let kind = run_kind(i, run);
        let _ = write!(
            svg,
            "<g class=\"band band{}\"><title>{kind} {}: {} to {}</title>\
             <rect x=\"{x:.1}\" y=\"{BANDS_TOP}\" width=\"{w:.1}\" height=\"{:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{} {kind}</text></g>",
            i % 2,
            escape::html(&run.run_id),
            time(began),
            time(ended),
            PLOT_BOTTOM - BANDS_TOP,
            x + 3.0,
            BANDS_TOP + 13.0,
            i + 1,
        );
    }
}

fn pauses(svg: &mut String, report: &Report, scale: &Scale) {
    for pause in &report.pauses {
        let x = scale.x(pause.at);
        let w = (scale.x(pause.at + pause.wait_ms as Millis) - x).max(3.0);
        let _ = write!(
            svg,
            "<g class=\"pause\"><title>every worker paused for {} at {}</title>\
             <rect x=\"{x:.1}\" y=\"{PLOT_TOP}\" width=\"{w:.1}\" height=\"{:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">429</text></g>",
            length(pause.wait_ms),
            time(pause.at),
            PLOT_BOTTOM - PLOT_TOP,
            x + 2.0,
            PLOT_TOP + 12.0,
        );
    }
}

fn bars(svg: &mut String, view: &View, scale: &Scale) {
    let most = view.buckets.iter().map(|(_, b)| b.succeeded + b.unsuccessful).max().unwrap_or(0).max(1);
    let height = |n: u64| n as f64 / most as f64 * (PLOT_BOTTOM - PLOT_TOP);
    let _ = write!(
        svg,
        "<g class=\"grid\"><line x1=\"{LEFT}\" x2=\"{RIGHT}\" y1=\"{PLOT_TOP}\" y2=\"{PLOT_TOP}\"/>\
         <line x1=\"{LEFT}\" x2=\"{RIGHT}\" y1=\"{PLOT_BOTTOM}\" y2=\"{PLOT_BOTTOM}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{most}</text>\
         <text x=\"{:.1}\" y=\"{PLOT_BOTTOM}\" text-anchor=\"end\">0</text>\
         <text x=\"{:.1}\" y=\"{FAILURE_LANE}\" text-anchor=\"end\" dy=\"4\">did not</text>\
         <text x=\"{:.1}\" y=\"{RETRY_LANE}\" text-anchor=\"end\" dy=\"4\">retries</text></g>",
        LEFT - 6.0,
        PLOT_TOP + 4.0,
        LEFT - 6.0,
        LEFT - 6.0,
        LEFT - 6.0,
    );
    let most_retries = view.buckets.iter().map(|(_, b)| b.retries).max().unwrap_or(0).max(1);
    for (start, b) in &view.buckets {
        let x = scale.x(*start) + 0.5;
        let w = (scale.x(*start + view.bucket_ms) - x - 0.5).max(1.0);
        let (good, bad) = (height(b.succeeded), height(b.unsuccessful));
        let _ = write!(
            svg,
            "<g class=\"bar\"><title>{}: {} ended well, {} did not, {} retries, {} answers of 429</title>\
             <rect class=\"good\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{good:.1}\"/>\
             <rect class=\"bad\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{bad:.1}\"/>",
            time(*start),
            b.succeeded,
            b.unsuccessful,
            b.retries,
            b.rate_limited,
            PLOT_BOTTOM - good,
            PLOT_BOTTOM - good - bad,
        );
        if b.retries > 0 {
            let tick = 3.0 + 9.0 * b.retries as f64 / most_retries as f64;
            let _ = write!(
                svg,
                "<rect class=\"retry\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{tick:.1}\"/>",
                RETRY_LANE - tick / 2.0
            );
        }
        svg.push_str("</g>");
    }
}

fn failures(svg: &mut String, report: &Report, scale: &Scale) {
    svg.push_str("<g class=\"failure\">");
    for row in &report.unfinished {
        let Some(at) = millis(&row.finished_at) else { continue };
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{FAILURE_LANE}\" r=\"3.5\"><title>line {}: {} {} {}</title></circle>",
            scale.x(at),
            escape::html(&row.line),
            row.outcome.as_str(),
            escape::html(&row.error_message),
            escape::html(&row.cf_ray),
        );
    }
    svg.push_str("</g>");
}

fn axis(svg: &mut String, scale: &Scale) {
    let span_s = (scale.to - scale.from) / 1000;
    let step = TICKS_S.iter().copied().find(|s| span_s / s <= 8).unwrap_or(*TICKS_S.last().unwrap()) * 1000;
    let days = time(scale.from)[..10] != time(scale.to)[..10];
    svg.push_str("<g class=\"axis\">");
    let mut at = (scale.from + step - 1).div_euclid(step) * step;
    while at <= scale.to {
        let stamp = time(at);
        let clock = if step < 60_000 { &stamp[11..19] } else { &stamp[11..16] };
        let text = if days { format!("{} {clock}", &stamp[5..10]) } else { clock.to_string() };
        let x = scale.x(at);
        // Labels at the ends stay inside the chart.
        let anchor = match x {
            x if x < LEFT + 30.0 => "start",
            x if x > RIGHT - 30.0 => "end",
            _ => "middle",
        };
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{PLOT_BOTTOM}\" y2=\"{:.1}\"/>\
             <text x=\"{x:.1}\" y=\"{AXIS}\" text-anchor=\"{anchor}\">{text}</text>",
            PLOT_BOTTOM + 4.0
        );
        at += step;
    }
    let _ = write!(svg, "<text x=\"{LEFT}\" y=\"{HEIGHT}\" dx=\"-50\">UTC</text></g>");
}
