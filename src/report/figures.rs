//! The report's figures: ROC curves, the ΔAUC forest plot, seed spread against the test-sampling
//! interval, sweeps, and training/pretraining curves with the collapse monitor. Each function
//! draws numbers it is given (from results.json or a curve file) and writes a caption naming the
//! method behind them; none computes a statistic.

use serde_json::Value;

use super::format as f;
use super::input::{ComparisonDoc, CurveInput, EvaluationInput, ModelDoc};
use super::svg::{Axis, GREY, LegendEntry, Plot, Style};
use super::view::{CurveView, Figure, MethodsView, Palette, SweepRow, slug};
use crate::dsl::coord_text;

fn pair(p: &[Option<f64>; 2]) -> Option<(f64, f64)> {
    Some((p[0]?, p[1]?))
}

/// ROC curves of every model on one cohort, with the AUC and its DeLong interval in the legend,
/// and a pointwise band where results.json provides one (`roc_band`).
pub fn roc(
    id: &str,
    cohort: &str,
    models: &[&ModelDoc],
    palette: &Palette,
    bayes: Option<f64>,
    methods: &MethodsView,
) -> Figure {
    let title = format!("ROC curves, {cohort} cohort");
    let mut p = Plot::new(
        380.0,
        380.0,
        Axis::fixed(0.0, 1.0, 5, "1 − specificity (false-positive rate)"),
        Axis::fixed(0.0, 1.0, 5, "sensitivity (true-positive rate)"),
        &title,
    )
    .margins([52.0, 12.0, 10.0, 44.0]);
    p.line(&[(0.0, 0.0), (1.0, 1.0)], &Style::dashed(GREY, "4 4"), 1.0);
    let mut any_band = false;
    for m in models {
        let style = palette.style(&m.model);
        if !m.roc_band.is_empty() {
            any_band = true;
            let pts: Vec<(f64, f64, f64)> = m
                .roc_band
                .iter()
                .filter_map(|b| Some((b[0]?, b[1]?, b[2]?)))
                .collect();
            let xs: Vec<f64> = pts.iter().map(|t| t.0).collect();
            let lo: Vec<f64> = pts.iter().map(|t| t.1).collect();
            let hi: Vec<f64> = pts.iter().map(|t| t.2).collect();
            p.band(&xs, &lo, &hi, &style.color, 0.15);
        }
    }
    let mut legend = Vec::new();
    for m in models {
        let style = palette.style(&m.model);
        let pts: Vec<(f64, f64)> = m.roc.iter().filter_map(pair).collect();
        p.line(&pts, &style, 2.0);
        legend.push(LegendEntry {
            label: format!(
                "{}  {}",
                m.model,
                f::estimate(m.auc, m.delong.lo, m.delong.hi)
            ),
            style,
            swatch: false,
        });
    }
    p.legend(legend);
    let mut caption = format!(
        "ROC curve of each model's seed ensemble ({} patients). Legend: AUC with its {} DeLong interval.",
        models
            .first()
            .and_then(|m| m.n)
            .map_or("?".to_string(), |n| n.to_string()),
        methods.level
    );
    if any_band {
        caption.push_str(&format!(
            " Shaded: pointwise {} bootstrap band of the true-positive rate ({}).",
            methods.level, methods.bootstrap
        ));
    } else {
        caption.push_str(" No pointwise band: results.json carries interval bounds for the AUC only (see the table for the bootstrap interval).");
    }
    if let Some(b) = bayes {
        caption.push_str(&format!(
            " Bayes AUC (true-logit ceiling) of this cohort: {}.",
            f::auc(Some(b))
        ));
    }
    caption.push_str(" Dashed diagonal: chance.");
    Figure {
        id: format!("{id}-roc"),
        title,
        svg: p.finish(),
        caption,
    }
}

fn label_width(labels: &[String]) -> f64 {
    (labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64 * 6.3 + 14.0)
        .clamp(80.0, 300.0)
}

/// Forest plot of ΔAUC with the paired DeLong interval (thick) and the paired bootstrap interval
/// (thin, below), one row per comparison, p-values at the right.
pub fn forest(
    id: &str,
    comps: &[(&'static str, &ComparisonDoc)],
    palette: &Palette,
    methods: &MethodsView,
) -> Figure {
    let labels: Vec<String> = comps
        .iter()
        .map(|(_, c)| format!("{} − {} · {}", c.a, c.b, c.cohort))
        .collect();
    let n = comps.len();
    let values: Vec<f64> = comps
        .iter()
        .flat_map(|(_, c)| {
            [
                c.delong.lo,
                c.delong.hi,
                c.bootstrap.lo,
                c.bootstrap.hi,
                c.delta,
            ]
            .into_iter()
            .flatten()
        })
        .collect();
    let mut y = Axis::fixed(-0.5, n as f64 - 0.5, 1, "");
    y.ticks = (0..n).map(|i| i as f64).collect();
    // Row 0 at the top: positions count down.
    y.tick_labels = labels
        .iter()
        .enumerate()
        .map(|(i, l)| ((n - 1 - i) as f64, l.clone()))
        .collect();
    let left = label_width(&labels);
    let title = "ΔAUC against the reference, with intervals".to_string();
    let mut p = Plot::new(
        left + 420.0 + 150.0,
        28.0 * n as f64 + 62.0,
        Axis::covering(&values, &[0.0], 5, "ΔAUC (first model − second model)"),
        y,
        &title,
    )
    .margins([left, 150.0, 18.0, 44.0]);
    p.vline(0.0, &Style::dashed(GREY, "4 3"));
    p.right_header("p (DeLong)");
    for (i, (role, c)) in comps.iter().enumerate() {
        let row = (n - 1 - i) as f64;
        let style = palette.style(&c.a);
        if let (Some(lo), Some(hi)) = (c.delong.lo, c.delong.hi) {
            p.hbar(row, lo, hi, &Style::solid(&style.color), 2.5);
        }
        if let (Some(lo), Some(hi)) = (c.bootstrap.lo, c.bootstrap.hi) {
            p.hbar(row - 0.25, lo, hi, &Style::dashed(&style.color, "3 2"), 1.2);
        }
        if let Some(d) = c.delta {
            p.diamond(d, row, 5.5, &style.color);
        }
        let mut pt = f::p_value(c.delong.p);
        if *role == "secondary" {
            pt = format!("{pt}; Holm {}", f::p_value(c.delong.p_holm));
        } else if *role == "primary" {
            pt = format!("{pt} (primary)");
        }
        p.right_text(row, &pt);
    }
    Figure {
        id: format!("{id}-forest"),
        title,
        svg: p.finish(),
        caption: format!(
            "Diamond: ΔAUC of the seed ensembles on the same patients. Thick bar: {} interval of the paired DeLong test; thin dashed bar: paired bootstrap ({}). p: paired DeLong z-test; secondary comparisons also Holm-adjusted ({}); the primary comparison is not adjusted; comparisons against the reference are unadjusted.",
            methods.level, methods.bootstrap, methods.adjustment
        ),
    }
}

/// Per-seed AUCs (hollow dots) against the ensemble's test-sampling interval (DeLong bar), one
/// row per model and cohort.
pub fn seed_spread(
    id: &str,
    models: &[ModelDoc],
    palette: &Palette,
    methods: &MethodsView,
) -> Figure {
    let labels: Vec<String> = models
        .iter()
        .map(|m| format!("{} · {}", m.model, m.cohort))
        .collect();
    let n = models.len();
    let values: Vec<f64> = models
        .iter()
        .flat_map(|m| {
            m.per_seed
                .iter()
                .filter_map(|s| s.auc)
                .chain([m.delong.lo, m.delong.hi, m.auc].into_iter().flatten())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut y = Axis::fixed(-0.5, n as f64 - 0.5, 1, "");
    y.ticks = (0..n).map(|i| i as f64).collect();
    y.tick_labels = labels
        .iter()
        .enumerate()
        .map(|(i, l)| ((n - 1 - i) as f64, l.clone()))
        .collect();
    let left = label_width(&labels);
    let title = "Training-seed spread against the test-sampling interval".to_string();
    let mut xa = Axis::covering(&values, &[], 5, "AUC");
    xa.hi = xa.hi.min(1.0);
    xa.ticks.retain(|t| *t <= 1.0 + 1e-9);
    let mut p = Plot::new(left + 330.0 + 130.0, 26.0 * n as f64 + 62.0, xa, y, &title)
        .margins([left, 130.0, 18.0, 44.0]);
    p.right_header("seed sd");
    for (i, m) in models.iter().enumerate() {
        let row = (n - 1 - i) as f64;
        let style = palette.style(&m.model);
        if let (Some(lo), Some(hi)) = (m.delong.lo, m.delong.hi) {
            p.hbar(row, lo, hi, &Style::solid(&style.color), 2.0);
        }
        if let Some(a) = m.auc {
            p.diamond(a, row, 5.0, &style.color);
        }
        for s in &m.per_seed {
            if let Some(a) = s.auc {
                p.point(
                    a,
                    row - 0.25,
                    3.2,
                    &style.color,
                    true,
                    &format!("seed {}: AUC {}", s.seed, f::auc(Some(a))),
                );
            }
        }
        p.right_text(
            row,
            &format!("{} (n={})", f::auc(m.seed_spread.sd), m.per_seed.len()),
        );
    }
    Figure {
        id: format!("{id}-seeds"),
        title,
        svg: p.finish(),
        caption: format!(
            "Diamond and bar: AUC of the seed ensemble with its {} DeLong interval (test-sampling uncertainty). Hollow dots: each training seed's own AUC (training variance: {}).",
            methods.level, methods.seed_spread
        ),
    }
}

/// A sweep point: x, estimate, interval bounds.
type SweepPoint = (f64, Option<f64>, Option<f64>, Option<f64>);

/// The sweep's x positions: the swept value when one numeric axis varies, else the variant's
/// rank with its label as the tick.
fn sweep_axis(evals: &[EvaluationInput]) -> (String, Vec<f64>, Vec<(f64, String)>) {
    let names: Vec<String> = evals
        .first()
        .map(|e| e.coords.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    let varying: Vec<usize> = (0..names.len())
        .filter(|&i| {
            let first = evals[0].coords.get(i).map(|c| &c.1);
            evals.iter().any(|e| e.coords.get(i).map(|c| &c.1) != first)
        })
        .collect();
    if let [i] = varying[..] {
        let xs: Option<Vec<f64>> = evals
            .iter()
            .map(|e| e.coords.get(i).and_then(|c| c.1.as_f64()))
            .collect();
        if let Some(xs) = xs {
            return (names[i].clone(), xs, Vec::new());
        }
    }
    let labels: Vec<(f64, String)> = evals
        .iter()
        .enumerate()
        .map(|(k, e)| {
            let l = e
                .coords
                .iter()
                .map(|(k, v)| format!("{k}={}", coord_text(v)))
                .collect::<Vec<_>>()
                .join(", ");
            (
                k as f64,
                if l.is_empty() {
                    e.stage.clone().unwrap_or_else(|| format!("#{}", k + 1))
                } else {
                    l
                },
            )
        })
        .collect();
    let axis = if names.is_empty() {
        "variant".to_string()
    } else {
        names.join(", ")
    };
    (axis, (0..evals.len()).map(|k| k as f64).collect(), labels)
}

/// AUC per model against the swept value (one panel per cohort), and ΔAUC against the
/// reference where evaluate computed it.
pub fn sweep(
    evals: &[EvaluationInput],
    palette: &Palette,
    methods: &MethodsView,
) -> (String, Vec<Figure>, Vec<SweepRow>) {
    let (axis, xs, tick_labels) = sweep_axis(evals);
    let cohorts: std::collections::BTreeSet<&str> = evals
        .iter()
        .flat_map(|e| e.results.models.iter().map(|m| m.cohort.as_str()))
        .collect();
    let xaxis = |label: &str| {
        let mut a = Axis::covering(&xs, &[], 5, label);
        if !tick_labels.is_empty() {
            a.lo = -0.5;
            a.hi = xs.len() as f64 - 0.5;
            a.ticks = xs.clone();
            a.tick_labels = tick_labels.clone();
        } else {
            let pad = (a.hi - a.lo) * 0.04;
            a.lo -= pad;
            a.hi += pad;
        }
        a
    };
    // Dodge models sideways a little so their intervals do not overlap.
    let span = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        - xs.iter().cloned().fold(f64::INFINITY, f64::min);
    let dodge_unit = if span > 0.0 { span * 0.012 } else { 0.03 };
    let names = palette.names();
    let dodge = |m: &str| {
        let i = names.iter().position(|n| n == m).unwrap_or(0) as f64;
        (i - (names.len() as f64 - 1.0) / 2.0) * dodge_unit
    };
    let mut figures = Vec::new();
    let mut rows = Vec::new();
    for cohort in &cohorts {
        for delta in [false, true] {
            let mut values = Vec::new();
            let mut series: Vec<(String, Vec<SweepPoint>)> = Vec::new();
            for model in names {
                let mut pts = Vec::new();
                for (e, &x) in evals.iter().zip(&xs) {
                    let r = &e.results;
                    let item = if delta {
                        r.versus_reference
                            .iter()
                            .find(|c| &c.a == model && &c.cohort == cohort)
                            .map(|c| (c.delta, c.delong.lo, c.delong.hi))
                    } else {
                        r.models
                            .iter()
                            .find(|m| &m.model == model && &m.cohort == cohort)
                            .map(|m| (m.auc, m.delong.lo, m.delong.hi))
                    };
                    if let Some((v, lo, hi)) = item {
                        values.extend([v, lo, hi].into_iter().flatten());
                        pts.push((x, v, lo, hi));
                    }
                }
                if !pts.is_empty() {
                    series.push((model.clone(), pts));
                }
            }
            if series.is_empty() {
                continue;
            }
            let reference = evals
                .iter()
                .find_map(|e| e.results.reference.clone())
                .unwrap_or_default();
            let ylabel = if delta {
                format!("ΔAUC vs {reference}")
            } else {
                "AUC".to_string()
            };
            let title = if delta {
                format!("ΔAUC against {reference} across the sweep, {cohort} cohort")
            } else {
                format!("AUC across the sweep, {cohort} cohort")
            };
            let include: &[f64] = if delta { &[0.0] } else { &[] };
            let mut p = Plot::new(
                460.0,
                300.0,
                xaxis(&axis),
                Axis::covering(&values, include, 5, &ylabel),
                &title,
            );
            if delta {
                p.hline(0.0, &Style::dashed(GREY, "4 3"), "no difference");
            }
            let mut legend = Vec::new();
            for (model, pts) in &series {
                let style = palette.style(model);
                let dx = dodge(model);
                let line: Vec<(f64, f64)> = pts
                    .iter()
                    .filter_map(|(x, v, _, _)| Some((x + dx, (*v)?)))
                    .collect();
                p.line(&line, &style, 1.8);
                for (x, v, lo, hi) in pts {
                    if let (Some(lo), Some(hi)) = (lo, hi) {
                        p.vbar(x + dx, *lo, *hi, &Style::solid(&style.color), 1.3);
                    }
                    if let Some(v) = v {
                        p.point(
                            x + dx,
                            *v,
                            3.5,
                            &style.color,
                            false,
                            &format!("{model}: {}", f::estimate(Some(*v), *lo, *hi)),
                        );
                    }
                }
                legend.push(LegendEntry {
                    label: model.clone(),
                    style,
                    swatch: false,
                });
            }
            p.legend(legend);
            let id = format!(
                "sweep-{}-{}",
                slug(cohort),
                if delta { "delta" } else { "auc" }
            );
            figures.push(Figure {
                id,
                title,
                svg: p.finish(),
                caption: if delta {
                    format!(
                        "ΔAUC against the reference with the {} paired DeLong interval, per variant (models dodged sideways for legibility).",
                        methods.level
                    )
                } else {
                    format!(
                        "AUC of each model's seed ensemble with its {} DeLong interval, per variant (models dodged sideways for legibility).",
                        methods.level
                    )
                },
            });
        }
    }
    for (k, e) in evals.iter().enumerate() {
        let label = tick_labels.get(k).map(|t| t.1.clone()).unwrap_or_else(|| {
            e.coords
                .iter()
                .map(|(k, v)| format!("{k}={}", coord_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        });
        for m in &e.results.models {
            let d = e
                .results
                .versus_reference
                .iter()
                .find(|c| c.a == m.model && c.cohort == m.cohort);
            rows.push(SweepRow {
                variant: label.clone(),
                model: m.model.clone(),
                color: palette.style(&m.model).color,
                cohort: m.cohort.clone(),
                auc: f::estimate(m.auc, m.delong.lo, m.delong.hi),
                delta: d.map_or("—".to_string(), |c| {
                    format!(
                        "{}; p {}",
                        f::delta(c.delta, c.delong.lo, c.delong.hi),
                        f::p_value(c.delong.p)
                    )
                }),
            });
        }
    }
    (axis, figures, rows)
}

/// A curve's series by name, over its epochs.
struct Series {
    epochs: Vec<f64>,
    series: Vec<(String, Vec<Option<f64>>)>,
}

fn read_series(v: &Value) -> Option<Series> {
    let epochs = v.get("epochs")?.as_array()?;
    if let Some(map) = v.get("series").and_then(Value::as_object) {
        let xs: Vec<f64> = epochs.iter().filter_map(Value::as_f64).collect();
        let series = map
            .iter()
            .filter_map(|(k, s)| {
                Some((k.clone(), s.as_array()?.iter().map(Value::as_f64).collect()))
            })
            .collect();
        return Some(Series { epochs: xs, series });
    }
    // A list of per-epoch objects: every numeric field but `epoch` is a series.
    let mut names: Vec<String> = Vec::new();
    for e in epochs {
        for (k, x) in e.as_object()? {
            if k != "epoch" && x.is_number() && !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    let xs = epochs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            e.get("epoch")
                .and_then(Value::as_f64)
                .unwrap_or(i as f64 + 1.0)
        })
        .collect();
    let series = names
        .into_iter()
        .map(|k| {
            let vals = epochs
                .iter()
                .map(|e| e.get(&k).and_then(Value::as_f64))
                .collect();
            (k, vals)
        })
        .collect();
    Some(Series { epochs: xs, series })
}

fn series_style(name: &str, i: usize) -> Style {
    match name {
        "loss" | "train_loss" => Style::solid("#0072B2"),
        "val_loss" => Style::solid("#D55E00"),
        "baseline" => Style::dashed(GREY, "5 3"),
        "target_std" => Style::solid("#009E73"),
        "val_auc" => Style::solid("#CC79A7"),
        _ => Style::nth(i + 3),
    }
}

fn panel(
    id: String,
    title: &str,
    ylabel: &str,
    s: &Series,
    names: &[&str],
    threshold: Option<f64>,
) -> Option<Figure> {
    let chosen: Vec<&(String, Vec<Option<f64>>)> = s
        .series
        .iter()
        .filter(|(k, _)| names.contains(&k.as_str()))
        .collect();
    if chosen.is_empty() || s.epochs.is_empty() {
        return None;
    }
    let values: Vec<f64> = chosen
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().copied())
        .chain(threshold)
        .collect();
    let include: &[f64] = if threshold.is_some() { &[0.0] } else { &[] };
    let mut p = Plot::new(
        360.0,
        240.0,
        Axis::covering(&s.epochs, &[], 5, "epoch"),
        Axis::covering(&values, include, 5, ylabel),
        title,
    );
    if let Some(t) = threshold {
        p.hline(t, &Style::dashed("#D55E00", "4 3"), "collapse threshold");
    }
    let mut legend = Vec::new();
    for (i, (k, v)) in chosen.iter().enumerate() {
        let style = series_style(k, i);
        let pts: Vec<(f64, f64)> = s
            .epochs
            .iter()
            .zip(v.iter())
            .map(|(x, y)| (*x, y.unwrap_or(f64::NAN)))
            .collect();
        p.line(&pts, &style, 1.8);
        legend.push(LegendEntry {
            label: k.replace('_', " "),
            style,
            swatch: false,
        });
    }
    p.legend(legend);
    Some(Figure {
        id,
        title: title.to_string(),
        svg: p.finish(),
        caption: String::new(),
    })
}

/// A training or pretraining curve: loss panel, validation AUC panel, and for JEPA the collapse
/// monitor (the target features' std across patients, with the stage's threshold).
pub fn curve(index: usize, c: &CurveInput) -> CurveView {
    let id = format!("curve-{}-{}", index + 1, slug(&c.name));
    let method = c.curve.get("method").and_then(Value::as_str);
    let class = c.curve.get("model_class").and_then(Value::as_str);
    let Some(s) = read_series(&c.curve) else {
        return CurveView {
            name: c.name.clone(),
            id,
            kind: "unreadable curve".to_string(),
            summary: "expected `epochs` as a list of per-epoch objects, or `epochs` and `series`"
                .to_string(),
            collapse: None,
            collapse_text: None,
            figures: Vec::new(),
        };
    };
    let has = |k: &str| s.series.iter().any(|(n, _)| n == k);
    let jepa = method == Some("jepa") || has("target_std");
    let kind = match (method, class) {
        (Some("jepa"), _) => "JEPA pretraining".to_string(),
        (Some("supervised"), _) => "supervised pretraining".to_string(),
        (_, Some(cl)) => format!("training ({cl})"),
        _ if jepa => "JEPA pretraining".to_string(),
        _ => "training".to_string(),
    };
    let mut figures = Vec::new();
    figures.extend(panel(
        format!("{id}-loss"),
        &format!("{}: loss", c.name),
        "loss",
        &s,
        &["loss", "train_loss", "val_loss", "baseline"],
        None,
    ));
    let generic: Vec<&str> = s
        .series
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.contains("loss") && !["loss", "train_loss", "val_loss"].contains(k))
        .collect();
    figures.extend(panel(
        format!("{id}-other-loss"),
        &format!("{}: other losses", c.name),
        "loss",
        &s,
        &generic,
        None,
    ));
    let threshold = c
        .collapse_std
        .or_else(|| c.curve.get("collapse_std").and_then(Value::as_f64));
    if jepa {
        figures.extend(panel(
            format!("{id}-collapse"),
            &format!("{}: collapse monitor", c.name),
            "target feature std",
            &s,
            &["target_std"],
            threshold,
        ));
    }
    figures.extend(panel(
        format!("{id}-auc"),
        &format!("{}: validation AUC", c.name),
        "AUC",
        &s,
        &["val_auc"],
        None,
    ));
    let last = |k: &str| {
        s.series
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.iter().rev().flatten().next().copied())
    };
    let mut summary = format!("{} epochs", s.epochs.len());
    for k in ["loss", "train_loss", "val_loss", "baseline", "val_auc"] {
        if let Some(v) = last(k) {
            summary.push_str(&format!(
                "; last {} {}",
                k.replace('_', " "),
                f::num(Some(v), 4)
            ));
        }
    }
    // The epoch choice of a `train` curve: which epoch was kept, from when one could be.
    if let Some(best) = c.curve.get("best_epoch").and_then(Value::as_u64) {
        summary.push_str(&format!("; kept epoch {best}"));
        let eligible = c.curve.get("first_eligible_epoch").and_then(Value::as_u64);
        let head = c
            .curve
            .get("head_epochs")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if let Some(e) = eligible.filter(|e| *e > 0) {
            summary.push_str(&format!(" (eligible from epoch {e}"));
            if head > 0 {
                summary.push_str(&format!("; the first {head} trained the head alone"));
            }
            summary.push(')');
        }
        match c.curve.get("stopped_early").and_then(Value::as_bool) {
            Some(true) => summary.push_str("; stopped early"),
            Some(false) => summary.push_str("; ran every epoch"),
            None => {}
        }
    }
    let collapsed = c
        .collapsed
        .or_else(|| c.curve.get("collapsed").and_then(Value::as_bool));
    let (collapse, collapse_text) = if jepa {
        let min = s
            .series
            .iter()
            .find(|(n, _)| n == "target_std")
            .map(|(_, v)| v.iter().flatten().copied().fold(f64::INFINITY, f64::min))
            .filter(|m| m.is_finite());
        let state = match collapsed {
            Some(true) => "collapsed",
            Some(false) => "healthy",
            None => "unknown",
        };
        let text = format!(
            "Collapse monitor: the std across patients of the target encoder's features, averaged over slots and dimensions (minimum {}{}). {}",
            f::num(min, 4),
            threshold.map_or(String::new(), |t| format!(
                "; the stage flags collapse below {}",
                f::num(Some(t), 4)
            )),
            match collapsed {
                Some(true) =>
                    "The stage flagged representation collapse: downstream results from this encoder are suspect.",
                Some(false) => "The stage did not flag collapse.",
                None => "The curve does not say whether the stage flagged collapse.",
            }
        );
        (Some(state.to_string()), Some(text))
    } else {
        (None, None)
    };
    CurveView {
        name: c.name.clone(),
        id,
        kind,
        summary,
        collapse,
        collapse_text,
        figures,
    }
}
