//! Building a report's view model: [`build`] turns typed inputs (results, curves, config, the
//! `paper:` block and, for a run, its manifest and context) into a [`ReportView`], provenance
//! and reproduction sections included. It is a pure function: the same inputs give the same
//! view, byte for byte, which is what the snapshot tests rely on.

use std::collections::BTreeSet;

use serde_json::Value;

use super::context::RunInfo;
use super::figures;
use super::format as f;
use super::input::{ComparisonDoc, EvaluationInput, ModelDoc, ReportConfig, ResultsDoc, SECTIONS};
use super::view::*;
use crate::dsl::coord_text;
use crate::exec::manifest::{RunStatus, StageStatus};

fn coords_label(coords: &[(String, Value)]) -> String {
    coords
        .iter()
        .map(|(k, v)| format!("{k}={}", coord_text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn text_or(s: &Option<String>, default: &str) -> String {
    s.clone().unwrap_or_else(|| default.to_string())
}

fn methods_view(r: &ResultsDoc) -> MethodsView {
    let m = &r.methods;
    let level = m.level.or(m.bootstrap.level);
    let b = &m.bootstrap;
    let bootstrap = format!(
        "{}{} bootstrap, {} resamples, seed {}, {} interval",
        match b.stratified {
            Some(true) => "stratified (cases and controls resampled separately) ",
            Some(false) => "",
            None => "",
        },
        b.method.as_deref().unwrap_or("percentile"),
        b.resamples.map_or("?".to_string(), |n| n.to_string()),
        b.seed.map_or("?".to_string(), |n| n.to_string()),
        f::level(level),
    );
    MethodsView {
        level: f::level(level),
        auc: text_or(&m.auc, "Mann–Whitney AUC"),
        ensemble: text_or(&m.ensemble, "scores averaged over training seeds"),
        delong: text_or(&m.delong, "DeLong variance, normal interval"),
        bootstrap,
        paired: text_or(&m.paired, "paired DeLong test and paired bootstrap"),
        unpaired: text_or(&m.unpaired, "unpaired DeLong test"),
        adjustment: text_or(&m.adjustment, "Holm across the secondary comparisons"),
        seed_spread: text_or(&m.seed_spread, "spread of the per-seed AUCs"),
        calibration: text_or(&m.calibration, "logistic recalibration"),
    }
}

fn comparison_row(c: &ComparisonDoc, role: &str, palette: &Palette) -> ComparisonRow {
    ComparisonRow {
        role: role.to_string(),
        a: c.a.clone(),
        b: c.b.clone(),
        color: palette.style(&c.a).color,
        cohort: c.cohort.clone(),
        aucs: format!("{} vs {}", f::auc(c.auc_a), f::auc(c.auc_b)),
        delta_delong: f::delta(c.delta, c.delong.lo, c.delong.hi),
        delta_bootstrap: f::delta(c.delta, c.bootstrap.lo, c.bootstrap.hi),
        p: f::p_value(c.delong.p),
        p_holm: (role == "secondary").then(|| f::p_value(c.delong.p_holm)),
        p_bootstrap: f::p_value(c.bootstrap.p),
    }
}

/// The comparisons of one evaluation, primary first, each (a, b, cohort) once.
fn comparisons(r: &ResultsDoc) -> Vec<(&'static str, &ComparisonDoc)> {
    let mut out: Vec<(&'static str, &ComparisonDoc)> = Vec::new();
    let mut seen = BTreeSet::new();
    let items = r
        .primary
        .iter()
        .map(|c| ("primary", c))
        .chain(r.secondary.iter().map(|c| ("secondary", c)))
        .chain(r.versus_reference.iter().map(|c| ("vs reference", c)));
    for (role, c) in items {
        if seen.insert((c.a.clone(), c.b.clone(), c.cohort.clone())) {
            out.push((role, c));
        }
    }
    out
}

fn model_row(m: &ModelDoc, palette: &Palette, reference: Option<&str>) -> ResultRow {
    let s = &m.seed_spread;
    ResultRow {
        model: m.model.clone(),
        color: palette.style(&m.model).color,
        reference: reference == Some(m.model.as_str()),
        auc: f::auc(m.auc),
        delong: f::interval(m.delong.lo, m.delong.hi, 3),
        bootstrap: f::interval(m.bootstrap.lo, m.bootstrap.hi, 3),
        seeds: m.seeds.unwrap_or(m.per_seed.len()).to_string(),
        seed_mean_sd: format!("{} ± {}", f::auc(s.mean), f::auc(s.sd)),
        seed_range: f::interval(s.min, s.max, 3),
    }
}

fn evaluation_view(
    index: usize,
    e: &EvaluationInput,
    palette: &Palette,
    methods: &MethodsView,
    config_reference: Option<&str>,
) -> EvaluationView {
    let r = &e.results;
    let reference = config_reference.or(r.reference.as_deref());
    let label = coords_label(&e.coords);
    let id = if label.is_empty() {
        format!("e{}", index + 1)
    } else {
        format!("e{}-{}", index + 1, slug(&label))
    };
    let mut cohorts = Vec::new();
    for (name, info) in cohort_order(&r.cohorts) {
        let models: Vec<&ModelDoc> = r.models.iter().filter(|m| &m.cohort == name).collect();
        let rows = models
            .iter()
            .map(|m| model_row(m, palette, reference))
            .collect();
        let cid = format!("{id}-{}", slug(name));
        cohorts.push(CohortResults {
            name: name.clone(),
            id: cid.clone(),
            size: format!(
                "n = {} ({} positive, {})",
                info.n,
                info.n_pos,
                f::percent(info.prevalence)
            ),
            bayes_auc: info.bayes_auc.map(|b| f::auc(Some(b))),
            rows,
            roc: figures::roc(&cid, name, &models, palette, info.bayes_auc, methods),
        });
    }
    let comps = comparisons(r);
    let comparisons_rows: Vec<ComparisonRow> = comps
        .iter()
        .map(|(role, c)| comparison_row(c, role, palette))
        .collect();
    let forest = (!comps.is_empty()).then(|| figures::forest(&id, &comps, palette, methods));
    let seeds: Vec<SeedRow> = r
        .models
        .iter()
        .map(|m| SeedRow {
            model: m.model.clone(),
            color: palette.style(&m.model).color,
            cohort: m.cohort.clone(),
            seeds: m.per_seed.len(),
            per_seed: m
                .per_seed
                .iter()
                .map(|s| format!("{}: {}", s.seed, f::auc(s.auc)))
                .collect::<Vec<_>>()
                .join(", "),
            mean_sd: format!(
                "{} ± {}",
                f::auc(m.seed_spread.mean),
                f::auc(m.seed_spread.sd)
            ),
            range: f::interval(m.seed_spread.min, m.seed_spread.max, 3),
            test_ci_width: f::auc(m.delong.hi.zip(m.delong.lo).map(|(h, l)| h - l)),
            seed_range_width: f::auc(m.seed_spread.max.zip(m.seed_spread.min).map(|(h, l)| h - l)),
        })
        .collect();
    let seeds_figure =
        (!r.models.is_empty()).then(|| figures::seed_spread(&id, &r.models, palette, methods));
    let calibration = r
        .models
        .iter()
        .map(|m| {
            let c = m.calibration.clone().unwrap_or_default();
            CalibrationRow {
                model: m.model.clone(),
                color: palette.style(&m.model).color,
                cohort: m.cohort.clone(),
                intercept: format!(
                    "{} (SE {})",
                    f::num(c.intercept, 2),
                    f::num(c.intercept_se, 2)
                ),
                slope: format!("{} (SE {})", f::num(c.slope, 2), f::num(c.slope_se, 2)),
            }
        })
        .collect();
    let shifts = r
        .external_shift
        .iter()
        .map(|s| ShiftRow {
            model: s.model.clone(),
            color: palette.style(&s.model).color,
            internal: f::auc(s.auc_internal),
            external: f::auc(s.auc_external),
            delta: f::signed(s.delta, 3),
            p: f::p_value(s.p),
        })
        .collect();
    EvaluationView {
        id,
        label,
        stage: e.stage.clone(),
        reference: reference.map(str::to_string),
        cohorts,
        comparisons: comparisons_rows,
        forest,
        seeds,
        seeds_figure,
        calibration,
        shifts,
    }
}

fn summary(first: Option<&EvaluationInput>, palette: &Palette, n_eval: usize) -> SummaryView {
    let r = first.map(|e| &e.results);
    let cohorts: Vec<CohortRow> = r
        .map(|r| {
            cohort_order(&r.cohorts)
                .into_iter()
                .map(|(name, c)| CohortRow {
                    name: name.clone(),
                    n: c.n,
                    n_pos: c.n_pos,
                    n_neg: c.n_neg.unwrap_or(c.n.saturating_sub(c.n_pos)),
                    prevalence: f::percent(c.prevalence),
                    bayes_auc: c.bayes_auc.map(|b| f::auc(Some(b))),
                })
                .collect()
        })
        .unwrap_or_default();
    let reference = r.and_then(|r| r.reference.clone());
    let models: Vec<ModelKey> = palette
        .names()
        .iter()
        .map(|m| {
            let s = palette.style(m);
            ModelKey {
                name: m.clone(),
                color: s.color,
                dash: s.dash,
                reference: reference.as_deref() == Some(m.as_str()),
            }
        })
        .collect();
    let compared = format!(
        "{} model{} on {} cohort{}{}",
        models.len(),
        if models.len() == 1 { "" } else { "s" },
        cohorts.len(),
        if cohorts.len() == 1 { "" } else { "s" },
        if n_eval > 1 {
            format!(", in {n_eval} variants")
        } else {
            String::new()
        }
    );
    let primary = r.and_then(|r| r.primary.as_ref());
    SummaryView {
        compared,
        models,
        cohorts,
        primary: primary.map(|p| {
            format!(
                "ΔAUC = AUC({}) − AUC({}) on the {} cohort (paired, not adjusted)",
                p.a, p.b, p.cohort
            )
        }),
        primary_result: primary.map(|p| {
            format!(
                "{}; DeLong p {}",
                f::delta(p.delta, p.delong.lo, p.delong.hi),
                f::p_value(p.delong.p)
            )
        }),
        secondary: r
            .map(|r| {
                r.secondary
                    .iter()
                    .map(|c| format!("{} − {} on {}", c.a, c.b, c.cohort))
                    .collect()
            })
            .unwrap_or_default(),
        reference,
    }
}

/// Reads the `paper:` block: `{citation, note, models: {ours: published label}, auc: {cohort:
/// {model: value | {auc, lo, hi}}}}`. Anything else is shown as given.
fn paper_view(paper: &Value, e: Option<&EvaluationInput>, palette: &Palette) -> Option<PaperView> {
    if paper.is_null() {
        return None;
    }
    let text = |k: &str| paper.get(k).and_then(Value::as_str).map(str::to_string);
    let labels = paper.get("models").and_then(Value::as_object);
    let table = paper
        .get("auc")
        .or_else(|| paper.get("results"))
        .and_then(Value::as_object);
    let raw = || serde_json::to_string_pretty(paper).ok();
    let Some(table) = table else {
        return Some(PaperView {
            citation: text("citation"),
            note: text("note"),
            cohorts: Vec::new(),
            raw: raw(),
            compared_with: String::new(),
        });
    };
    let mut cohorts = Vec::new();
    let mut understood = true;
    for (cohort, models) in table {
        let Some(models) = models.as_object() else {
            understood = false;
            continue;
        };
        let mut rows = Vec::new();
        for (model, v) in models {
            let published = v.as_f64().or_else(|| v.get("auc").and_then(Value::as_f64));
            if published.is_none() && !v.is_null() {
                understood = false;
            }
            let (plo, phi) = (
                v.get("lo").and_then(Value::as_f64),
                v.get("hi").and_then(Value::as_f64),
            );
            let ours = e.and_then(|e| {
                e.results
                    .models
                    .iter()
                    .find(|m| &m.model == model && &m.cohort == cohort)
            });
            let inside = match (published, ours) {
                (Some(p), Some(m)) => match (m.delong.lo, m.delong.hi) {
                    (Some(lo), Some(hi)) => {
                        if lo <= p && p <= hi {
                            "yes".to_string()
                        } else {
                            "no".to_string()
                        }
                    }
                    _ => "—".to_string(),
                },
                _ => "—".to_string(),
            };
            rows.push(PaperRow {
                model: model.clone(),
                color: palette.style(model).color,
                published_label: labels
                    .and_then(|l| l.get(model))
                    .and_then(Value::as_str)
                    .unwrap_or(model)
                    .to_string(),
                published: match (plo, phi) {
                    (Some(_), Some(_)) => f::estimate(published, plo, phi),
                    _ => published.map_or("—".to_string(), |p| format!("{p:.2}")),
                },
                ours: ours.map_or("not in this run".to_string(), |m| {
                    f::estimate(m.auc, m.delong.lo, m.delong.hi)
                }),
                difference: match (ours.and_then(|m| m.auc), published) {
                    (Some(o), Some(p)) => f::signed(Some(o - p), 3),
                    _ => "—".to_string(),
                },
                inside,
            });
        }
        cohorts.push(PaperCohort {
            cohort: cohort.clone(),
            rows,
        });
    }
    let rank = |c: &str| match c {
        "internal" => 0,
        "external" => 1,
        _ => 2,
    };
    cohorts.sort_by(|a, b| (rank(&a.cohort), &a.cohort).cmp(&(rank(&b.cohort), &b.cohort)));
    Some(PaperView {
        citation: text("citation"),
        note: text("note"),
        cohorts,
        raw: if understood { None } else { raw() },
        compared_with: e
            .map(|e| {
                let l = coords_label(&e.coords);
                if l.is_empty() {
                    String::new()
                } else {
                    format!("variant {l}")
                }
            })
            .unwrap_or_default(),
    })
}

fn sections(cfg: &ReportConfig) -> Sections {
    Sections(
        SECTIONS
            .iter()
            .map(|s| (s.to_string(), cfg.sections.iter().any(|c| c == s)))
            .collect(),
    )
}

/// Builds the view model of one report.
pub fn build(inputs: &ReportInputs) -> ReportView {
    let mut warnings = Vec::new();
    let palette = Palette::new(
        inputs
            .evaluations
            .iter()
            .flat_map(|e| e.results.models.iter().map(|m| m.model.as_str()))
            .chain(
                inputs
                    .evaluations
                    .iter()
                    .filter_map(|e| e.results.reference.as_deref()),
            ),
    );
    let first = inputs.evaluations.first();
    let methods = first.map_or_else(
        || methods_view(&ResultsDoc::default()),
        |e| methods_view(&e.results),
    );
    if let Some(cr) = &inputs.config.reference {
        for e in &inputs.evaluations {
            if let Some(er) = &e.results.reference
                && er != cr
            {
                warnings.push(format!(
                    "the report's reference `{cr}` differs from evaluate's `{er}`: ΔAUC figures show evaluate's comparisons (against `{er}`)"
                ));
            }
        }
    }
    if inputs.evaluations.is_empty() {
        warnings.push("no evaluation results: nothing to show but provenance".to_string());
    }
    let evaluations: Vec<EvaluationView> = inputs
        .evaluations
        .iter()
        .enumerate()
        .map(|(i, e)| evaluation_view(i, e, &palette, &methods, inputs.config.reference.as_deref()))
        .collect();
    let sweep = (inputs.evaluations.len() > 1)
        .then(|| figures::sweep(&inputs.evaluations, &palette, &methods))
        .map(|(axis, figures, rows)| SweepView {
            axis,
            figures,
            rows,
        });
    let level = first.and_then(|e| e.results.methods.level).unwrap_or(0.95);
    let map = super::map::build(&inputs.evaluations, level);
    let curves = inputs
        .curves
        .iter()
        .enumerate()
        .map(|(i, c)| figures::curve(i, c))
        .collect();
    let title = inputs
        .config
        .title
        .clone()
        .unwrap_or_else(|| inputs.experiment.clone());
    let notes = inputs
        .config
        .notes
        .as_deref()
        .map(|n| {
            n.split("\n\n")
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let (provenance, reproduce, source) = match &inputs.run {
        Some(run) => (
            Some(provenance_view(run, first)),
            reproduce_view(run),
            format!("run {} of {}", run.manifest.run_id, run.manifest.file),
        ),
        None => (
            None,
            ReproduceView {
                steps: vec![KeyValue {
                    key: "recompute every stage from scratch in an isolated store".to_string(),
                    value: format!("orchestrate reproduce experiments/{}.yaml", inputs.experiment),
                }],
                caveats: vec![
                    "this report was rendered by a `report` stage: the run's own report.html (runs/EXPERIMENT/RUN-ID/) adds provenance: git commit, keys, digests, timings".to_string(),
                ],
                verification: None,
            },
            "the `report` stage".to_string(),
        ),
    };
    ReportView {
        title,
        experiment: inputs.experiment.clone(),
        description: inputs.description.clone(),
        notes,
        source,
        show: sections(&inputs.config),
        summary: summary(first, &palette, inputs.evaluations.len()),
        methods,
        evaluations,
        sweep,
        map,
        curves,
        paper: paper_view(&inputs.paper, first, &palette),
        provenance,
        reproduce,
        sites: Vec::new(),
        warnings,
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

fn kv(k: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: v.into(),
    }
}

/// The provenance section: git, binary, code identity, compute, seeds, machine, every stage.
pub fn provenance_view(run: &RunInfo, first: Option<&EvaluationInput>) -> ProvenanceView {
    let m = &run.manifest;
    let p = &m.provenance;
    let mut git = Vec::new();
    let mut dirty = false;
    match &p.git {
        Some(g) => {
            git.push(kv(
                "commit",
                g.commit
                    .clone()
                    .unwrap_or_else(|| "none (no commit yet)".into()),
            ));
            git.push(kv(
                "branch",
                g.branch.clone().unwrap_or_else(|| "detached".into()),
            ));
            dirty = g.dirty;
            git.push(kv(
                "working tree",
                if g.dirty {
                    format!(
                        "dirty: {} changed path(s): {}{}",
                        g.changed.len(),
                        g.changed
                            .iter()
                            .take(10)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", "),
                        if g.changed.len() > 10 { ", …" } else { "" }
                    )
                } else {
                    "clean".to_string()
                },
            ));
            if let Some(d) = &g.diff_digest {
                git.push(kv(
                    "diff digest (SHA-256 of the patch against HEAD)",
                    d.clone(),
                ));
            }
        }
        None => git.push(kv("repository", "not a git repository")),
    }
    let binary = vec![
        kv("orchestrate version", p.orchestrate_version.clone()),
        kv(
            "binary identity (digest of its sources)",
            p.binary_identity.clone(),
        ),
    ];
    let ctx = run.context.as_ref();
    let kinds_used: std::collections::BTreeSet<&str> =
        m.stages.iter().map(|s| s.kind.as_str()).collect();
    let code_identity = ctx
        .map(|c| {
            c.code_identity
                .iter()
                .filter(|(k, _)| kinds_used.contains(k.as_str()))
                .map(|(k, v)| kv(k, v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut compute = Vec::new();
    if let Some(c) = ctx {
        compute.push(kv("backend (experiment)", c.backend.clone()));
        for u in &c.compute {
            compute.push(kv(
                &u.stage,
                format!(
                    "{}{}{}; {} thread(s)",
                    u.backend.clone().unwrap_or_else(|| "—".into()),
                    u.device
                        .as_ref()
                        .map_or(String::new(), |d| format!(" on {d}")),
                    if u.devices.is_empty() {
                        String::new()
                    } else {
                        format!(" (CUDA_VISIBLE_DEVICES={})", u.devices.join(","))
                    },
                    u.threads
                ),
            ));
        }
    }
    let mut seeds = Vec::new();
    if let Some(c) = ctx {
        seeds.push(kv("experiment seed", c.seed.to_string()));
    }
    let stage_seeds: std::collections::BTreeSet<u64> = m.stages.iter().map(|s| s.seed).collect();
    seeds.push(kv(
        "stage seeds",
        stage_seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    ));
    if let Some(e) = first {
        let b = &e.results.methods.bootstrap;
        seeds.push(kv(
            "bootstrap seed",
            b.seed.map_or("—".to_string(), |s| s.to_string()),
        ));
    }
    let hosts: std::collections::BTreeSet<&str> = ctx
        .map(|c| c.compute.iter().map(|u| u.host.as_str()).collect())
        .unwrap_or_default();
    let mut machine = vec![
        kv("dispatcher host", p.host.clone()),
        kv("operating system", format!("{} {}", p.os, p.arch)),
        kv("CPUs", p.cpus.to_string()),
        kv("command line", p.argv.join(" ")),
    ];
    let others: Vec<&str> = hosts.into_iter().filter(|h| *h != p.host).collect();
    if !others.is_empty() {
        machine.push(kv("worker hosts", others.join(", ")));
    }
    let stages = m
        .stages
        .iter()
        .map(|s| StageRow {
            name: s.name.clone(),
            kind: s.kind.clone(),
            status: s.status.to_string(),
            seed: s.seed,
            key: s.key.clone().unwrap_or_else(|| "—".into()),
            object: s.object.clone().unwrap_or_else(|| "—".into()),
            outs: s.outs.iter().map(|(k, v)| kv(k, v.clone())).collect(),
            duration: s.duration_ms.map_or("—".to_string(), f::duration_ms),
            attempts: s.attempts.map_or("—".to_string(), |a| a.to_string()),
            reasons: if s.status == StageStatus::Fresh {
                "reused from the store".to_string()
            } else if let Some(e) = &s.error {
                e.clone()
            } else {
                s.reasons.join("; ")
            },
        })
        .collect();
    ProvenanceView {
        run_id: m.run_id.clone(),
        experiment_file: m.file.clone(),
        status: m.status.to_string(),
        started_at: m.started_at.clone(),
        finished_at: m.finished_at.clone(),
        duration: f::duration_ms(m.duration_ms),
        git,
        dirty,
        binary,
        code_identity,
        compute,
        seeds,
        machine,
        stages,
    }
}

/// "How to reproduce this": the exact commands.
pub fn reproduce_view(run: &RunInfo) -> ReproduceView {
    let m = &run.manifest;
    let mut steps = Vec::new();
    let mut caveats = Vec::new();
    if let Some(g) = &m.provenance.git {
        if let Some(c) = &g.commit {
            steps.push(kv(
                "check out the code of this run",
                format!("git checkout {c}"),
            ));
        }
        if g.dirty {
            caveats.push(format!(
                "the run was made from a working tree with uncommitted changes{}: the commit alone may not reproduce it",
                g.diff_digest
                    .as_ref()
                    .map_or(String::new(), |d| format!(" (diff digest {})", &d[..d.len().min(16)]))
            ));
        }
    }
    steps.push(kv(
        "recompute everything from scratch in an isolated store and compare",
        format!("orchestrate reproduce {}", m.file),
    ));
    steps.push(kv(
        "or re-run only what is stale in the shared store",
        format!("orchestrate run {}", m.file),
    ));
    steps.push(kv(
        "re-render this report (nothing is recomputed)",
        format!("orchestrate report {}/{}", m.experiment, m.run_id),
    ));
    if m.status != RunStatus::Ok {
        caveats.push(format!(
            "this run finished with status `{}`: some stages did not complete",
            m.status
        ));
    }
    let verification = run
        .dir
        .join("verification.html")
        .is_file()
        .then(|| "verification.html".to_string());
    ReproduceView {
        steps,
        caveats,
        verification,
    }
}
