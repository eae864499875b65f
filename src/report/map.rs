//! The regime map of a sweep: for every comparison `evaluate` declared (primary and secondary,
//! `a − b` on a cohort), a grid of ΔAUC over the sweep's axes — the first axis down the rows, the
//! second across the columns, any further axes as one grid each — with each cell's paired DeLong
//! interval, a mark where the interval excludes 0, and Holm's adjustment across the grid's cells;
//! then line plots of ΔAUC against the first axis, one line per value of the second.
//!
//! Axes are found from the evaluations' coordinates: coordinates that vary together (a `zip`
//! group) make one axis; `seed` is never an axis (an evaluation gathers its seeds). Values sort
//! by value, numbers numerically.
//!
//! The numbers are `evaluate`'s. The report's one computation on them is Holm's step-down
//! adjustment of the cells' paired DeLong p-values, which needs every cell of the grid at once
//! (within a cell, `evaluate` adjusts only across its own secondary comparisons); and the per-seed
//! differences, `a`'s per-seed AUC minus `b`'s of the same seed, summarized as mean and range.

use serde_json::Value;

use super::format as f;
use super::input::{ComparisonDoc, EvaluationInput, ModelDoc};
use super::svg::{Axis, DASHES, GREY, LegendEntry, OKABE_ITO, Plot, Style};
use super::view::{Figure, MapCell, MapGrid, MapRow, MapView, slug};
use crate::dsl::{coord_text, coords_order};

/// One axis of the grid: the coordinate names that vary together, and its positions in order.
#[derive(Debug, Clone)]
struct GridAxis {
    names: Vec<String>,
    positions: Vec<Vec<Value>>,
}

impl GridAxis {
    fn label(&self) -> String {
        self.names.join(" + ")
    }

    fn position_of(&self, e: &EvaluationInput) -> Option<usize> {
        let tuple = tuple_of(e, &self.names);
        self.positions.iter().position(|p| *p == tuple)
    }

    fn text(&self, i: usize) -> String {
        if self.names.len() == 1 {
            coord_text(&self.positions[i][0])
        } else {
            self.names
                .iter()
                .zip(&self.positions[i])
                .map(|(n, v)| format!("{n}={}", coord_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

fn tuple_of(e: &EvaluationInput, names: &[String]) -> Vec<Value> {
    names
        .iter()
        .map(|n| {
            e.coords
                .iter()
                .find(|(k, _)| k == n)
                .map_or(Value::Null, |(_, v)| v.clone())
        })
        .collect()
}

/// The distinct value tuples of `names` over the evaluations, ordered by value.
fn distinct_tuples(evals: &[EvaluationInput], names: &[String]) -> Vec<Vec<Value>> {
    let mut tuples: Vec<Vec<Value>> = Vec::new();
    for e in evals {
        let t = tuple_of(e, names);
        if !tuples.contains(&t) {
            tuples.push(t);
        }
    }
    tuples.sort_by(|a, b| {
        let pa: Vec<(String, Value)> = names.iter().cloned().zip(a.clone()).collect();
        let pb: Vec<(String, Value)> = names.iter().cloned().zip(b.clone()).collect();
        coords_order(&pa, &pb)
    });
    tuples
}

/// The sweep's axes, in declared order: varying coordinates, those that vary together merged.
fn grid_axes(evals: &[EvaluationInput]) -> Vec<GridAxis> {
    let mut names: Vec<String> = Vec::new();
    for e in evals {
        for (k, _) in &e.coords {
            if k != "seed" && !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    // Per coordinate: which evaluations share a value with which (the partition it induces).
    let signature = |name: &str| -> Vec<usize> {
        let values: Vec<Vec<Value>> = evals
            .iter()
            .map(|e| tuple_of(e, &[name.to_string()]))
            .collect();
        values
            .iter()
            .map(|v| values.iter().position(|w| w == v).unwrap_or(0))
            .collect()
    };
    let mut axes: Vec<(Vec<usize>, Vec<String>)> = Vec::new();
    for n in names {
        let sig = signature(&n);
        if sig.iter().all(|&s| s == 0) {
            continue; // the same value everywhere: not an axis
        }
        match axes.iter_mut().find(|(s, _)| *s == sig) {
            Some((_, members)) => members.push(n),
            None => axes.push((sig, vec![n])),
        }
    }
    axes.into_iter()
        .map(|(_, names)| {
            let positions = distinct_tuples(evals, &names);
            GridAxis { names, positions }
        })
        .collect()
}

/// The comparisons evaluate declared, in first-seen order: `(a, b, cohort)`.
fn comparisons(evals: &[EvaluationInput]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for e in evals {
        for c in e.results.primary.iter().chain(&e.results.secondary) {
            let k = (c.a.clone(), c.b.clone(), c.cohort.clone());
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    out
}

fn find_comparison<'a>(
    e: &'a EvaluationInput,
    key: &(String, String, String),
) -> Option<&'a ComparisonDoc> {
    e.results
        .primary
        .iter()
        .chain(&e.results.secondary)
        .find(|c| c.a == key.0 && c.b == key.1 && c.cohort == key.2)
}

fn model<'a>(e: &'a EvaluationInput, name: &str, cohort: &str) -> Option<&'a ModelDoc> {
    e.results
        .models
        .iter()
        .find(|m| m.model == name && m.cohort == cohort)
}

/// Per-seed ΔAUC over the seeds both models have: `+0.021 (−0.010 to +0.050), 3 seeds`.
fn per_seed(e: &EvaluationInput, key: &(String, String, String)) -> String {
    let (Some(a), Some(b)) = (model(e, &key.0, &key.2), model(e, &key.1, &key.2)) else {
        return String::new();
    };
    let deltas: Vec<f64> = a
        .per_seed
        .iter()
        .filter_map(|sa| {
            let sb = b.per_seed.iter().find(|sb| sb.seed == sa.seed)?;
            Some(sa.auc? - sb.auc?)
        })
        .collect();
    if deltas.is_empty() {
        return String::new();
    }
    let mean = deltas.iter().sum::<f64>() / deltas.len() as f64;
    let lo = deltas.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = deltas.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "seeds {} ({} to {}), {} seed{}",
        f::signed(Some(mean), 3),
        f::signed(Some(lo), 3),
        f::signed(Some(hi), 3),
        deltas.len(),
        if deltas.len() == 1 { "" } else { "s" }
    )
}

/// Mixes `hex` with white: `t` = 0 is white, 1 the colour.
fn tint(hex: &str, t: f64) -> String {
    let c = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(255) as f64;
    let mix = |v: f64| (255.0 + (v - 255.0) * t).round() as u8;
    format!("#{:02x}{:02x}{:02x}", mix(c(1)), mix(c(3)), mix(c(5)))
}

/// The cell colours: blue for Δ > 0, vermillion for Δ < 0, deeper with |Δ| up to 0.1.
fn colours(delta: Option<f64>) -> (String, String) {
    let Some(d) = delta.filter(|d| d.is_finite()) else {
        return ("#ffffff".to_string(), "#000000".to_string());
    };
    let t = (d.abs() / 0.1).min(1.0);
    // Okabe–Ito blue for a gain, vermillion for a loss.
    let base = if d >= 0.0 { OKABE_ITO[0] } else { OKABE_ITO[1] };
    // Black text stays above 4.5:1 contrast on every tint (at most 85% of either colour).
    (tint(base, 0.08 + 0.77 * t), "#000000".to_string())
}

/// Builds the map of a sweep's evaluations; `None` without an axis or a declared comparison.
pub fn build(evals: &[EvaluationInput], level: f64) -> Option<MapView> {
    if evals.len() < 2 {
        return None;
    }
    let axes = grid_axes(evals);
    let comparisons = comparisons(evals);
    if axes.is_empty() || comparisons.is_empty() {
        return None;
    }
    let rows_axis = &axes[0];
    let cols_axis = axes.get(1);
    let facet_axes = axes.get(2..).unwrap_or(&[]);
    let facet_names: Vec<String> = facet_axes.iter().flat_map(|a| a.names.clone()).collect();
    let facets = distinct_tuples(evals, &facet_names);
    let n_cols = cols_axis.map_or(1, |a| a.positions.len());
    let alpha = 1.0 - level;

    let mut grids = Vec::new();
    let mut figures = Vec::new();
    for key in &comparisons {
        // Holm across every cell of this comparison, all facets together.
        let cells: Vec<(usize, &EvaluationInput, &ComparisonDoc)> = evals
            .iter()
            .enumerate()
            .filter_map(|(i, e)| find_comparison(e, key).map(|c| (i, e, c)))
            .collect();
        let ps: Vec<(usize, f64)> = cells
            .iter()
            .filter_map(|(i, _, c)| c.delong.p.filter(|p| p.is_finite()).map(|p| (*i, p)))
            .collect();
        let adjusted: Vec<f64> =
            crate::multiplicity::holm(&ps.iter().map(|x| x.1).collect::<Vec<_>>())
                .unwrap_or_default();
        let p_holm = |i: usize| -> Option<f64> {
            ps.iter()
                .position(|(j, _)| *j == i)
                .and_then(|k| adjusted.get(k).copied())
        };
        let significant = adjusted.iter().filter(|p| **p < alpha).count();
        let what = format!("{} − {}", key.0, key.1);
        let holm = format!(
            "Holm across the {} cells of {what} ({}): {significant} of {} significant at {}",
            ps.len(),
            key.2,
            ps.len(),
            f::num(Some(alpha), 2)
        );
        for facet in &facets {
            let facet_text = facet_names
                .iter()
                .zip(facet)
                .map(|(n, v)| format!("{n}={}", coord_text(v)))
                .collect::<Vec<_>>()
                .join(", ");
            let in_facet = |e: &EvaluationInput| tuple_of(e, &facet_names) == *facet;
            let mut rows = Vec::new();
            let mut points: Vec<LinePoint> = Vec::new();
            for r in 0..rows_axis.positions.len() {
                let mut row_cells = Vec::new();
                for col in 0..n_cols {
                    let hit = cells.iter().find(|(_, e, _)| {
                        in_facet(e)
                            && rows_axis.position_of(e) == Some(r)
                            && cols_axis.is_none_or(|a| a.position_of(e) == Some(col))
                    });
                    let Some((i, e, c)) = hit else {
                        row_cells.push(MapCell {
                            empty: true,
                            delta: "—".to_string(),
                            interval: String::new(),
                            p_holm: String::new(),
                            seeds: String::new(),
                            mark: String::new(),
                            holm_significant: false,
                            fill: "#ffffff".to_string(),
                            ink: "#000000".to_string(),
                        });
                        continue;
                    };
                    let (lo, hi) = (c.delong.lo, c.delong.hi);
                    let mark = match (lo, hi) {
                        (Some(lo), _) if lo > 0.0 => "▲",
                        (_, Some(hi)) if hi < 0.0 => "▼",
                        _ => "",
                    };
                    let ph = p_holm(*i);
                    let (fill, ink) = colours(c.delta);
                    if let Some(d) = c.delta {
                        points.push((col, r, d, lo, hi));
                    }
                    row_cells.push(MapCell {
                        empty: false,
                        delta: f::signed(c.delta, 3),
                        interval: format!("({}, {})", f::signed(lo, 3), f::signed(hi, 3)),
                        p_holm: ph
                            .map_or(String::new(), |p| format!("p Holm {}", f::p_value(Some(p)))),
                        seeds: per_seed(e, key),
                        mark: mark.to_string(),
                        holm_significant: ph.is_some_and(|p| p < alpha),
                        fill,
                        ink,
                    });
                }
                rows.push(MapRow {
                    label: rows_axis.text(r),
                    cells: row_cells,
                });
            }
            let id = format!(
                "map-{}-{}-{}{}",
                slug(&key.0),
                slug(&key.1),
                slug(&key.2),
                if facet_text.is_empty() {
                    String::new()
                } else {
                    format!("-{}", slug(&facet_text))
                }
            );
            let title = if facet_text.is_empty() {
                format!("{what}, {} cohort", key.2)
            } else {
                format!("{what}, {} cohort, {facet_text}", key.2)
            };
            figures.push(line_plot(&id, &title, rows_axis, cols_axis, &points, level));
            grids.push(MapGrid {
                id,
                title,
                facet: facet_text,
                cols: (0..n_cols)
                    .map(|c| cols_axis.map_or(String::new(), |a| a.text(c)))
                    .collect(),
                rows,
                holm: holm.clone(),
            });
        }
    }
    let pct = f::level(Some(level));
    Some(MapView {
        rows_axis: rows_axis.label(),
        cols_axis: cols_axis.map_or(String::new(), GridAxis::label),
        grids,
        figures,
        notes: vec![
            format!(
                "Each cell: ΔAUC of the two models' seed ensembles on the cohort, with evaluate's \
                 {pct} paired DeLong interval; ▲ / ▼ mark an interval above / below 0."
            ),
            "p Holm: the cell's paired DeLong p-value, Holm-adjusted across every cell of the \
             same comparison (all grids of it); bold cells are significant after adjustment."
                .to_string(),
            "seeds: the per-seed ΔAUC (each seed's AUC of a minus that of b), mean and range: \
             training variance, which the ensemble's interval does not show."
                .to_string(),
            "Colour: blue for Δ > 0, vermillion for Δ < 0, deeper up to |Δ| = 0.1; the numbers \
             and marks carry the same information in greyscale."
                .to_string(),
        ],
    })
}

/// One point of a line plot: column, row, ΔAUC and its interval.
type LinePoint = (usize, usize, f64, Option<f64>, Option<f64>);

/// ΔAUC against the row axis, one line per column value, with the paired intervals.
fn line_plot(
    id: &str,
    title: &str,
    rows_axis: &GridAxis,
    cols_axis: Option<&GridAxis>,
    points: &[LinePoint],
    level: f64,
) -> Figure {
    let n_rows = rows_axis.positions.len();
    let n_cols = cols_axis.map_or(1, |a| a.positions.len());
    let mut values: Vec<f64> = Vec::new();
    for (_, _, d, lo, hi) in points {
        values.push(*d);
        values.extend(lo.iter().chain(hi.iter()).copied());
    }
    let mut x = Axis::covering(
        &[0.0, (n_rows.max(1) - 1) as f64],
        &[],
        5,
        &rows_axis.label(),
    );
    x.lo = -0.5;
    x.hi = n_rows as f64 - 0.5;
    x.ticks = (0..n_rows).map(|i| i as f64).collect();
    x.tick_labels = (0..n_rows).map(|i| (i as f64, rows_axis.text(i))).collect();
    let y = Axis::covering(&values, &[0.0], 5, "ΔAUC");
    let mut p = Plot::new(460.0, 300.0, x, y, title);
    p.hline(0.0, &Style::dashed(GREY, "4 3"), "no difference");
    let dodge = |c: usize| (c as f64 - (n_cols as f64 - 1.0) / 2.0) * 0.08;
    let mut legend = Vec::new();
    for c in 0..n_cols {
        let style = Style::dashed(OKABE_ITO[c % OKABE_ITO.len()], DASHES[c % DASHES.len()]);
        let mut pts: Vec<&LinePoint> = points.iter().filter(|q| q.0 == c).collect();
        pts.sort_by_key(|q| q.1);
        let line: Vec<(f64, f64)> = pts.iter().map(|q| (q.1 as f64 + dodge(c), q.2)).collect();
        p.line(&line, &style, 1.8);
        let label = cols_axis.map_or_else(
            || "ΔAUC".to_string(),
            |a| format!("{} = {}", a.label(), a.text(c)),
        );
        for q in &pts {
            let xq = q.1 as f64 + dodge(c);
            if let (Some(lo), Some(hi)) = (q.3, q.4) {
                p.vbar(xq, lo, hi, &Style::solid(&style.color), 1.3);
            }
            p.point(
                xq,
                q.2,
                3.5,
                &style.color,
                c % 2 == 1,
                &format!("{label}: {}", f::delta(Some(q.2), q.3, q.4)),
            );
        }
        legend.push(LegendEntry {
            label,
            style,
            swatch: false,
        });
    }
    p.legend(legend);
    Figure {
        id: format!("{id}-lines"),
        title: title.to_string(),
        svg: p.finish(),
        caption: format!(
            "ΔAUC against {} with the {} paired DeLong interval, one line per {} (dodged sideways; \
             dash pattern and hollow markers tell the lines apart in greyscale).",
            rows_axis.label(),
            f::level(Some(level)),
            cols_axis.map_or_else(|| "grid".to_string(), GridAxis::label)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{PairedDelongDoc, ResultsDoc};
    use serde_json::json;

    fn eval(n: u64, rho: f64, tokens: u64, delta: f64, p: f64) -> EvaluationInput {
        let results = ResultsDoc {
            primary: Some(ComparisonDoc {
                a: "jepa".into(),
                b: "scratch".into(),
                cohort: "internal".into(),
                delta: Some(delta),
                delong: PairedDelongDoc {
                    p: Some(p),
                    lo: Some(delta - 0.02),
                    hi: Some(delta + 0.02),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        EvaluationInput {
            stage: None,
            coords: vec![
                ("n_finetune".into(), json!(n)),
                ("rho".into(), json!(rho)),
                ("clin_tokens".into(), json!(tokens)),
                ("clin_width".into(), json!(tokens * 4)),
            ],
            results,
        }
    }

    #[test]
    fn a_two_axis_sweep_becomes_grids_with_numeric_order_zipped_facets_and_holm() {
        let mut evals = Vec::new();
        for n in [300, 60, 150] {
            for rho in [1.0, 0.0] {
                for t in [8, 4] {
                    let d = if rho == 1.0 && n == 60 { 0.07 } else { -0.001 };
                    evals.push(eval(n, rho, t, d, if d > 0.0 { 0.0001 } else { 0.9 }));
                }
            }
        }
        let map = build(&evals, 0.95).expect("a map");
        assert_eq!(map.rows_axis, "n_finetune");
        assert_eq!(map.cols_axis, "rho");
        // clin_tokens and clin_width vary together: one facet axis, two grids.
        assert_eq!(map.grids.len(), 2);
        let g = &map.grids[0];
        assert_eq!(g.facet, "clin_tokens=4, clin_width=16");
        let rows: Vec<&str> = g.rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(rows, ["60", "150", "300"], "rows sort numerically");
        assert_eq!(g.cols, ["0.0", "1.0"]);
        let hit = &g.rows[0].cells[1];
        assert_eq!(hit.mark, "▲");
        assert!(hit.holm_significant, "{hit:?}");
        assert_eq!(
            g.rows[1].cells[1].mark, "",
            "an interval covering 0 is unmarked"
        );
        assert!(g.holm.contains("12 cells"), "{}", g.holm);
        assert!(g.holm.contains("2 of 12 significant"), "{}", g.holm);
        assert_eq!(map.figures.len(), 2);
    }

    #[test]
    fn no_map_without_a_declared_comparison_or_an_axis() {
        let mut a = eval(60, 0.0, 4, 0.0, 0.5);
        let mut b = eval(60, 0.0, 4, 0.0, 0.5);
        assert!(
            build(&[a.clone(), b.clone()], 0.95).is_none(),
            "no varying axis"
        );
        a.coords[0].1 = json!(150);
        b.results.primary = None;
        a.results.primary = None;
        assert!(build(&[a, b], 0.95).is_none(), "no comparison");
    }
}
