//! The verification table as plain text (the terminal) and as a small self-contained HTML page
//! (`verification.html` beside the run's report). No statistics here: only presentation.

use std::fmt::Write as _;

use super::verdict::{Outcome, Row, StageRole, Verification, delta_text};

/// Digests are shown by their first 12 hex digits, long values cut to this many characters.
const SHORT_DIGEST: usize = 12;
const MAX_VALUE: usize = 28;

fn short(v: Option<&String>) -> String {
    let Some(v) = v else {
        return "absent".to_string();
    };
    if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return v[..SHORT_DIGEST].to_string();
    }
    if v.chars().count() > MAX_VALUE {
        format!("{}…", v.chars().take(MAX_VALUE - 1).collect::<String>())
    } else {
        v.clone()
    }
}

/// The RESULT cell: the outcome, the tolerance used, and for differing rows the stage's role.
fn result_cell(v: &Verification, r: &Row) -> String {
    let mut s = r.outcome.label().to_string();
    let notes: Vec<String> = (r.tolerance.map(|t| format!("±{t}")).into_iter())
        .chain(r.delta.map(|d| format!("Δ {}", delta_text(d))))
        .collect();
    if !notes.is_empty() {
        let _ = write!(s, " ({})", notes.join(", "));
    }
    if r.outcome == Outcome::Different {
        match v.verdict(&r.stage).and_then(|x| x.role.as_ref()) {
            Some(StageRole::RootCause { .. }) => s.push_str(" (root cause)"),
            Some(StageRole::Consequence { .. }) => s.push_str(" (consequence)"),
            None => {}
        }
    }
    s
}

fn mode_sentence(v: &Verification) -> String {
    let rule = if v.mode == "identical" {
        "every item must be identical".to_string()
    } else {
        "metrics are compared within the lock's tolerances, artifacts of stages on a tensor backend may differ".to_string()
    };
    if v.expected_platform == v.actual_platform {
        format!("locked and reproduced on {}: {rule}", v.actual_platform)
    } else {
        format!(
            "locked on {}, reproduced on {}: {rule}",
            v.expected_platform, v.actual_platform
        )
    }
}

/// The lines after the table: counts, the root cause and its consequences, the conclusion.
fn summary_lines(v: &Verification) -> Vec<String> {
    let mut lines = vec![format!(
        "{} identical, {} within tolerance, {} different",
        v.counts.get("identical").copied().unwrap_or(0),
        v.counts.get("within tolerance").copied().unwrap_or(0),
        v.counts.get("different").copied().unwrap_or(0),
    )];
    for s in &v.stages {
        match &s.role {
            Some(StageRole::RootCause { reasons }) => {
                let first = v.root_cause.as_deref() == Some(s.stage.as_str());
                lines.push(format!(
                    "{} `{}`: {}",
                    if first {
                        "Root cause:"
                    } else {
                        "Also differs on its own:"
                    },
                    s.stage,
                    reasons.join("; ")
                ));
            }
            Some(StageRole::Consequence { of }) => lines.push(format!(
                "Consequence: `{}` (downstream of {})",
                s.stage,
                of.iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None => {}
        }
    }
    lines.push(format!("Policy: {} ({}).", v.policy, v.policy_source));
    lines.push(if v.ok {
        "Reproduced: every item is within policy.".to_string()
    } else {
        "NOT reproduced.".to_string()
    });
    lines
}

/// The table for the terminal, with a heading and a summary.
pub fn render_table(v: &Verification) -> String {
    let header = ["STAGE", "ITEM", "LOCK", "REPRODUCED", "RESULT"];
    let mut cells: Vec<[String; 5]> = Vec::with_capacity(v.rows.len());
    let mut last_stage = "";
    for r in &v.rows {
        let stage = if r.stage == last_stage {
            String::new()
        } else {
            r.stage.clone()
        };
        last_stage = &r.stage;
        cells.push([
            stage,
            r.item.clone(),
            short(r.expected.as_ref()),
            short(r.actual.as_ref()),
            result_cell(v, r),
        ]);
    }
    let mut width = header.map(|h| h.chars().count());
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Verification of `{}` against {}",
        v.experiment, v.reference
    );
    let _ = writeln!(out, "({})\n", mode_sentence(v));
    let line = |out: &mut String, c: &[String]| {
        let mut l = String::new();
        for (i, (s, w)) in c.iter().zip(width).enumerate() {
            if i + 1 == c.len() {
                l.push_str(s);
            } else {
                let _ = write!(l, "{s:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(&mut out, &header.map(str::to_string));
    for c in &cells {
        line(&mut out, c);
    }
    out.push('\n');
    for l in summary_lines(v) {
        let _ = writeln!(out, "{l}");
    }
    out
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#x27;"),
            c => o.push(c),
        }
    }
    o
}

/// A self-contained page (inline CSS, no scripts, no network) with the same table.
pub fn render_html(v: &Verification) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Verification of {exp}</title>\n<style>\n\
         body{{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#222}}\n\
         table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.2rem .6rem;border-bottom:1px solid #ddd}}\n\
         td.v{{font-family:ui-monospace,monospace}}tr.identical td.r{{color:#1a7f37}}\n\
         tr.within_tolerance td.r{{color:#9a6700}}tr.different td{{background:#fff0f0}}tr.different td.r{{color:#cf222e;font-weight:600}}\n\
         .ok{{color:#1a7f37}}.fail{{color:#cf222e}}\n</style>\n</head>\n<body>\n\
         <h1>Verification of <code>{exp}</code></h1>\n<p>Against {reference}. {mode}.</p>\n",
        exp = esc(&v.experiment),
        reference = esc(&v.reference),
        mode = esc(&mode_sentence(v)),
    );
    let lines = summary_lines(v);
    let (last, rest) = lines.split_last().expect("summary has a conclusion");
    let _ = writeln!(
        h,
        "<p class=\"{}\"><strong>{}</strong></p>\n<ul>",
        if v.ok { "ok" } else { "fail" },
        esc(last)
    );
    for l in rest {
        let _ = writeln!(h, "<li>{}</li>", esc(l));
    }
    h.push_str(
        "</ul>\n<table>\n<thead><tr><th>Stage</th><th>Item</th><th>Lock</th><th>Reproduced</th><th>Result</th></tr></thead>\n<tbody>\n",
    );
    for r in &v.rows {
        let cls = match r.outcome {
            Outcome::Identical => "identical",
            Outcome::WithinTolerance => "within_tolerance",
            Outcome::Different => "different",
        };
        let _ = writeln!(
            h,
            "<tr class=\"{cls}\"><td>{}</td><td>{}</td><td class=\"v\" title=\"{}\">{}</td><td class=\"v\" title=\"{}\">{}</td><td class=\"r\">{}</td></tr>",
            esc(&r.stage),
            esc(&r.item),
            esc(r.expected.as_deref().unwrap_or("absent")),
            esc(&short(r.expected.as_ref())),
            esc(r.actual.as_deref().unwrap_or("absent")),
            esc(&short(r.actual.as_ref())),
            esc(&result_cell(v, r)),
        );
    }
    h.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    h
}
