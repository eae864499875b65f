//! A small SVG plotting kit for reports: linear axes with "nice" ticks, lines, bands, points,
//! horizontal and vertical error bars, reference lines, categorical rows (forest and dot plots)
//! and a legend.
//!
//! Owns: geometry and markup. Must never compute statistics: callers pass the numbers to draw.
//! Output is deterministic (coordinates are printed with fixed decimals) and every piece of text
//! is escaped, so a model named `<script>` draws as text.

use std::fmt::Write;

/// The Okabe–Ito palette (colour-blind safe), ordered so that the first colours contrast well on
/// white; yellow, the faintest, comes last. Model `i` (in the report's model order) gets colour `i`.
pub const OKABE_ITO: [&str; 8] = [
    "#0072B2", // blue
    "#D55E00", // vermillion
    "#009E73", // bluish green
    "#E69F00", // orange
    "#CC79A7", // reddish purple
    "#56B4E9", // sky blue
    "#000000", // black
    "#F0E442", // yellow
];

/// Dash patterns that tell lines apart beyond the eight colours (and in greyscale print).
pub const DASHES: [&str; 4] = ["", "6 3", "2 2", "8 3 2 3"];

/// Neutral grey for reference lines, baselines and grids.
pub const GREY: &str = "#6b6b6b";

/// How a series is drawn: colour and dash pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Style {
    pub color: String,
    /// SVG `stroke-dasharray`; empty for a solid line.
    pub dash: String,
}

impl Style {
    pub fn solid(color: &str) -> Style {
        Style {
            color: color.to_string(),
            dash: String::new(),
        }
    }

    pub fn dashed(color: &str, dash: &str) -> Style {
        Style {
            color: color.to_string(),
            dash: dash.to_string(),
        }
    }

    /// The style of the `i`-th entry of a palette-coloured list: colours first, then dashes.
    pub fn nth(i: usize) -> Style {
        Style {
            color: OKABE_ITO[i % OKABE_ITO.len()].to_string(),
            dash: DASHES[(i / OKABE_ITO.len()) % DASHES.len()].to_string(),
        }
    }

    fn dash_attr(&self) -> String {
        if self.dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{}\"", self.dash)
        }
    }
}

/// Escapes text for SVG/HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A coordinate printed with two decimals: enough for screens and print, and stable bytes.
fn c(v: f64) -> String {
    let s = format!("{v:.2}");
    if s == "-0.00" { "0.00".to_string() } else { s }
}

/// A linear axis: its data range, its label and its ticks.
#[derive(Debug, Clone)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub label: String,
    pub ticks: Vec<f64>,
    /// Decimals of the tick labels.
    pub decimals: usize,
    /// Tick labels to print instead of numbers (categorical axes), by tick position.
    pub tick_labels: Vec<(f64, String)>,
}

impl Axis {
    /// An axis over `[lo, hi]` exactly, with about `n` ticks at round values.
    pub fn fixed(lo: f64, hi: f64, n: usize, label: &str) -> Axis {
        let (ticks, decimals) = nice_ticks(lo, hi, n);
        Axis {
            lo,
            hi,
            label: label.to_string(),
            ticks,
            decimals,
            tick_labels: Vec::new(),
        }
    }

    /// An axis covering `values` (and `include`, e.g. 0 for a difference), widened to round ticks.
    pub fn covering(values: &[f64], include: &[f64], n: usize, label: &str) -> Axis {
        let all: Vec<f64> = values
            .iter()
            .chain(include)
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        let (mut lo, mut hi) = all
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-9 {
            let pad = if lo.abs() > 1e-9 { lo.abs() * 0.1 } else { 0.5 };
            lo -= pad;
            hi += pad;
        }
        let step = nice_step((hi - lo) / n.max(1) as f64);
        let lo = (lo / step).floor() * step;
        let hi = (hi / step).ceil() * step;
        Axis::fixed(lo, hi, n, label)
    }

    fn frac(&self, v: f64) -> f64 {
        if self.hi > self.lo {
            (v - self.lo) / (self.hi - self.lo)
        } else {
            0.5
        }
    }

    fn tick_text(&self, t: f64) -> String {
        if let Some((_, s)) = self.tick_labels.iter().find(|(p, _)| (p - t).abs() < 1e-9) {
            return s.clone();
        }
        let s = format!("{t:.*}", self.decimals);
        if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
            s[1..].to_string()
        } else {
            s
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Round tick positions inside `[lo, hi]` and the decimals they need.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> (Vec<f64>, usize) {
    let step = nice_step((hi - lo) / n.max(1) as f64);
    let first = (lo / step - 1e-9).ceil();
    let mut ticks = Vec::new();
    let mut k = first;
    while k * step <= hi + step * 1e-9 && ticks.len() < 50 {
        // Snap to the step grid so 0.30000000000000004 prints and compares as 0.3.
        let t = (k * step * 1e9).round() / 1e9;
        ticks.push(t);
        k += 1.0;
    }
    // The fewest decimals that print the step exactly (0.25 → 2, 2.5 → 1, 10 → 0).
    let decimals = (0..6)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6
        })
        .unwrap_or(6);
    (ticks, decimals)
}

/// One legend entry.
#[derive(Debug, Clone)]
pub struct LegendEntry {
    pub label: String,
    pub style: Style,
    /// Draw a filled square (bands, points) instead of a line sample.
    pub swatch: bool,
}

/// A plot under construction: an SVG drawing area with two axes.
#[derive(Debug)]
pub struct Plot {
    width: f64,
    height: f64,
    /// Margins: left, right, top, bottom (pixels of the viewBox).
    margin: [f64; 4],
    pub x: Axis,
    pub y: Axis,
    title: String,
    body: String,
    legend: Vec<LegendEntry>,
    /// Right-aligned text per categorical row (forest plots): (y value, text).
    right_column: Vec<(f64, String)>,
    right_header: Option<String>,
    square: bool,
}

impl Plot {
    /// A plot of `width`×`height` viewBox pixels. `title` is the accessible name of the figure.
    pub fn new(width: f64, height: f64, x: Axis, y: Axis, title: &str) -> Plot {
        Plot {
            width,
            height,
            margin: [56.0, 16.0, 12.0, 44.0],
            x,
            y,
            title: title.to_string(),
            body: String::new(),
            legend: Vec::new(),
            right_column: Vec::new(),
            right_header: None,
            square: false,
        }
    }

    /// Sets the margins (left, right, top, bottom).
    pub fn margins(mut self, m: [f64; 4]) -> Plot {
        self.margin = m;
        self
    }

    /// Keeps the plotting area square (ROC curves), centred horizontally.
    pub fn square(mut self) -> Plot {
        self.square = true;
        self
    }

    fn area(&self) -> (f64, f64, f64, f64) {
        let [l, r, t, b] = self.margin;
        let (mut x0, mut x1) = (l, self.width - r);
        let (y0, y1) = (t, self.height - b);
        if self.square {
            let side = (x1 - x0).min(y1 - y0);
            x1 = x0 + side;
            let _ = &mut x0;
        }
        (x0, x1, y0, y1)
    }

    fn px(&self, v: f64) -> f64 {
        let (x0, x1, _, _) = self.area();
        x0 + self.x.frac(v).clamp(-0.02, 1.02) * (x1 - x0)
    }

    fn py(&self, v: f64) -> f64 {
        let (_, _, y0, y1) = self.area();
        y1 - self.y.frac(v).clamp(-0.02, 1.02) * (y1 - y0)
    }

    /// A polyline through the points (non-finite points break the line).
    pub fn line(&mut self, pts: &[(f64, f64)], style: &Style, width: f64) {
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for &(x, y) in pts {
            if x.is_finite() && y.is_finite() {
                segments.last_mut().expect("one segment").push((x, y));
            } else if !segments.last().expect("one segment").is_empty() {
                segments.push(Vec::new());
            }
        }
        for seg in segments.iter().filter(|s| !s.is_empty()) {
            let d: Vec<String> = seg
                .iter()
                .map(|&(x, y)| format!("{},{}", c(self.px(x)), c(self.py(y))))
                .collect();
            let _ = writeln!(
                self.body,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"{width}\"{} stroke-linejoin=\"round\" points=\"{}\"/>",
                style.color,
                style.dash_attr(),
                d.join(" ")
            );
        }
    }

    /// A filled band between `lower` and `upper` (same x values, in order).
    pub fn band(&mut self, xs: &[f64], lower: &[f64], upper: &[f64], color: &str, opacity: f64) {
        let mut d = Vec::new();
        for (x, y) in xs.iter().zip(upper) {
            d.push(format!("{},{}", c(self.px(*x)), c(self.py(*y))));
        }
        for (x, y) in xs.iter().zip(lower).rev() {
            d.push(format!("{},{}", c(self.px(*x)), c(self.py(*y))));
        }
        let _ = writeln!(
            self.body,
            "<polygon fill=\"{color}\" fill-opacity=\"{opacity}\" stroke=\"none\" points=\"{}\"/>",
            d.join(" ")
        );
    }

    /// Filled circles; `title` (escaped) becomes each point's tooltip.
    pub fn point(&mut self, x: f64, y: f64, r: f64, color: &str, hollow: bool, title: &str) {
        if !(x.is_finite() && y.is_finite()) {
            return;
        }
        let fill = if hollow { "#ffffff" } else { color };
        let _ = writeln!(
            self.body,
            "<circle cx=\"{}\" cy=\"{}\" r=\"{r}\" fill=\"{fill}\" stroke=\"{color}\" stroke-width=\"1.2\"><title>{}</title></circle>",
            c(self.px(x)),
            c(self.py(y)),
            escape(title)
        );
    }

    /// A diamond marker (estimates in forest plots).
    pub fn diamond(&mut self, x: f64, y: f64, r: f64, color: &str) {
        if !(x.is_finite() && y.is_finite()) {
            return;
        }
        let (cx, cy) = (self.px(x), self.py(y));
        let _ = writeln!(
            self.body,
            "<polygon fill=\"{color}\" points=\"{},{} {},{} {},{} {},{}\"/>",
            c(cx),
            c(cy - r),
            c(cx + r),
            c(cy),
            c(cx),
            c(cy + r),
            c(cx - r),
            c(cy)
        );
    }

    /// A horizontal interval `[lo, hi]` at height `y`, with end caps.
    pub fn hbar(&mut self, y: f64, lo: f64, hi: f64, style: &Style, width: f64) {
        if !(lo.is_finite() && hi.is_finite() && y.is_finite()) {
            return;
        }
        let (a, b, yy) = (self.px(lo), self.px(hi), self.py(y));
        let _ = writeln!(
            self.body,
            "<path fill=\"none\" stroke=\"{}\" stroke-width=\"{width}\"{} d=\"M{},{}H{}M{},{}V{}M{},{}V{}\"/>",
            style.color,
            style.dash_attr(),
            c(a),
            c(yy),
            c(b),
            c(a),
            c(yy - 4.0),
            c(yy + 4.0),
            c(b),
            c(yy - 4.0),
            c(yy + 4.0)
        );
    }

    /// A vertical interval `[lo, hi]` at `x`, with end caps.
    pub fn vbar(&mut self, x: f64, lo: f64, hi: f64, style: &Style, width: f64) {
        if !(lo.is_finite() && hi.is_finite() && x.is_finite()) {
            return;
        }
        let (xx, a, b) = (self.px(x), self.py(lo), self.py(hi));
        let _ = writeln!(
            self.body,
            "<path fill=\"none\" stroke=\"{}\" stroke-width=\"{width}\" d=\"M{},{}V{}M{},{}H{}M{},{}H{}\"/>",
            style.color,
            c(xx),
            c(a),
            c(b),
            c(xx - 4.0),
            c(a),
            c(xx + 4.0),
            c(xx - 4.0),
            c(b),
            c(xx + 4.0)
        );
    }

    /// A vertical reference line at `x` across the plotting area.
    pub fn vline(&mut self, x: f64, style: &Style) {
        let (_, _, y0, y1) = self.area();
        let xx = self.px(x);
        let _ = writeln!(
            self.body,
            "<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" stroke=\"{3}\" stroke-width=\"1\"{4}/>",
            c(xx),
            c(y0),
            c(y1),
            style.color,
            style.dash_attr()
        );
    }

    /// A horizontal reference line at `y` across the plotting area, with an optional label.
    pub fn hline(&mut self, y: f64, style: &Style, label: &str) {
        let (x0, x1, _, _) = self.area();
        let yy = self.py(y);
        let _ = writeln!(
            self.body,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{2}\" y2=\"{2}\" stroke=\"{3}\" stroke-width=\"1\"{4}/>",
            c(x0),
            c(x1),
            c(yy),
            style.color,
            style.dash_attr()
        );
        if !label.is_empty() {
            let _ = writeln!(
                self.body,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"10\" fill=\"{}\">{}</text>",
                c(x1 - 2.0),
                c(yy - 3.0),
                style.color,
                escape(label)
            );
        }
    }

    /// Text anchored at a data position.
    pub fn label(&mut self, x: f64, y: f64, text: &str, anchor: &str, color: &str) {
        let _ = writeln!(
            self.body,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\" font-size=\"10\" fill=\"{color}\">{}</text>",
            c(self.px(x)),
            c(self.py(y)),
            escape(text)
        );
    }

    /// A text column at the right edge, one entry per categorical row.
    pub fn right_text(&mut self, y: f64, text: &str) {
        self.right_column.push((y, text.to_string()));
    }

    pub fn right_header(&mut self, text: &str) {
        self.right_header = Some(text.to_string());
    }

    pub fn legend(&mut self, entries: Vec<LegendEntry>) {
        self.legend = entries;
    }

    /// The finished `<svg>` element: grid, axes, ticks, labels, the drawn body, the legend.
    pub fn finish(self) -> String {
        let (x0, x1, y0, y1) = self.area();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" role=\"img\" aria-label=\"{2}\" class=\"plot\" font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif\">",
            c(self.width),
            c(self.height),
            escape(&self.title)
        );
        let _ = writeln!(s, "<title>{}</title>", escape(&self.title));
        // Grid and ticks.
        let _ = writeln!(
            s,
            "<g class=\"grid\" stroke=\"#e3e3e3\" stroke-width=\"1\">"
        );
        for &t in &self.x.ticks {
            let xx = self.px(t);
            let _ = writeln!(
                s,
                "<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\"/>",
                c(xx),
                c(y0),
                c(y1)
            );
        }
        for &t in &self.y.ticks {
            let yy = self.py(t);
            let _ = writeln!(
                s,
                "<line x1=\"{}\" x2=\"{}\" y1=\"{2}\" y2=\"{2}\"/>",
                c(x0),
                c(x1),
                c(yy)
            );
        }
        let _ = writeln!(s, "</g>");
        s.push_str(&self.body);
        // Axes frame.
        let _ = writeln!(
            s,
            "<path fill=\"none\" stroke=\"#333\" stroke-width=\"1\" d=\"M{},{}V{}H{}\"/>",
            c(x0),
            c(y0),
            c(y1),
            c(x1)
        );
        let _ = writeln!(s, "<g font-size=\"11\" fill=\"#333\">");
        for &t in &self.x.ticks {
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                c(self.px(t)),
                c(y1 + 15.0),
                escape(&self.x.tick_text(t))
            );
        }
        for &t in &self.y.ticks {
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                c(x0 - 5.0),
                c(self.py(t) + 4.0),
                escape(&self.y.tick_text(t))
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\">{}</text>",
            c((x0 + x1) / 2.0),
            c(self.height - 8.0),
            escape(&self.x.label)
        );
        if !self.y.label.is_empty() {
            let _ = writeln!(
                s,
                "<text transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">{}</text>",
                c(13.0),
                c((y0 + y1) / 2.0),
                escape(&self.y.label)
            );
        }
        if let Some(h) = &self.right_header {
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"start\" font-weight=\"600\">{}</text>",
                c(x1 + 10.0),
                c(y0 - 2.0),
                escape(h)
            );
        }
        for (y, t) in &self.right_column {
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"start\">{}</text>",
                c(x1 + 10.0),
                c(self.py(*y) + 4.0),
                escape(t)
            );
        }
        let _ = writeln!(s, "</g>");
        if !self.legend.is_empty() {
            // Legend inside the plot, bottom-right: where ROC curves leave room.
            let line_h = 15.0;
            let w = self
                .legend
                .iter()
                .map(|e| e.label.chars().count())
                .max()
                .unwrap_or(0) as f64
                * 6.2
                + 34.0;
            let h = line_h * self.legend.len() as f64 + 6.0;
            let lx = (x1 - w - 6.0).max(x0 + 4.0);
            let ly = y1 - h - 6.0;
            let _ = writeln!(
                s,
                "<g class=\"legend\" font-size=\"11\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#ffffff\" fill-opacity=\"0.9\" stroke=\"#cccccc\"/>",
                c(lx),
                c(ly),
                c(w),
                c(h)
            );
            for (i, e) in self.legend.iter().enumerate() {
                let yy = ly + 4.0 + line_h * (i as f64 + 0.5);
                if e.swatch {
                    let _ = writeln!(
                        s,
                        "<rect x=\"{}\" y=\"{}\" width=\"18\" height=\"9\" fill=\"{}\" fill-opacity=\"0.35\" stroke=\"{}\"/>",
                        c(lx + 6.0),
                        c(yy - 4.5),
                        e.style.color,
                        e.style.color
                    );
                } else {
                    let _ = writeln!(
                        s,
                        "<line x1=\"{}\" x2=\"{}\" y1=\"{2}\" y2=\"{2}\" stroke=\"{3}\" stroke-width=\"2.5\"{4}/>",
                        c(lx + 6.0),
                        c(lx + 24.0),
                        c(yy),
                        e.style.color,
                        e.style.dash_attr()
                    );
                }
                let _ = writeln!(
                    s,
                    "<text x=\"{}\" y=\"{}\" fill=\"#222\">{}</text>",
                    c(lx + 30.0),
                    c(yy + 4.0),
                    escape(&e.label)
                );
            }
            let _ = writeln!(s, "</g>");
        }
        s.push_str("</svg>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        let (t, d) = nice_ticks(0.0, 1.0, 5);
        assert_eq!(t, vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(d, 1);
        let (t, d) = nice_ticks(-0.15, 0.1, 5);
        assert_eq!(t, vec![-0.15, -0.1, -0.05, 0.0, 0.05, 0.1]);
        assert_eq!(d, 2);
        let (t, d) = nice_ticks(0.0, 40.0, 4);
        assert_eq!(t, vec![0.0, 10.0, 20.0, 30.0, 40.0]);
        assert_eq!(d, 0);
    }

    #[test]
    fn text_in_a_figure_is_escaped() {
        let mut p = Plot::new(
            300.0,
            200.0,
            Axis::fixed(0.0, 1.0, 5, "x <b>"),
            Axis::fixed(0.0, 1.0, 5, "y"),
            "<script>alert(1)</script>",
        );
        p.legend(vec![LegendEntry {
            label: "<script>alert(1)</script>".into(),
            style: Style::nth(0),
            swatch: false,
        }]);
        p.point(0.5, 0.5, 3.0, "#000", false, "a\"b");
        let s = p.finish();
        assert!(!s.contains("<script>"), "{s}");
        assert!(s.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(s.contains("x &lt;b&gt;"));
        assert!(s.contains("a&quot;b"));
    }

    #[test]
    fn the_same_plot_gives_the_same_bytes() {
        let make = || {
            let mut p = Plot::new(
                300.0,
                200.0,
                Axis::fixed(0.0, 1.0, 5, "x"),
                Axis::covering(&[0.1, 0.7], &[0.0], 5, "y"),
                "t",
            );
            p.line(
                &[(0.0, 0.1), (0.5, f64::NAN), (1.0 / 3.0, 0.7)],
                &Style::nth(9),
                2.0,
            );
            p.band(&[0.0, 1.0], &[0.0, 0.1], &[0.2, 0.3], "#0072B2", 0.2);
            p.hbar(0.5, 0.2, 0.8, &Style::solid("#000"), 1.5);
            p.finish()
        };
        assert_eq!(make(), make());
        assert!(make().contains("stroke-dasharray=\"6 3\""));
    }
}
