//! Imported external sites in a run report: `runs/<experiment>/<run>/sites/<name>/` holds the
//! `site.json` and `results.json` a site sent back (`orchestrate import-site`, which checked them).
//! Each site is shown with where and with what it was computed, every model's AUC there beside
//! the run's internal AUC with the drop and its unpaired DeLong test, and the site's paired
//! comparisons.

use std::path::Path;

use statrs::distribution::{ContinuousCDF, Normal};

use super::format as f;
use super::input::EvaluationInput;
use super::view::{Palette, SiteComparisonRow, SiteDropRow, SiteView};
use crate::results::ResultsDoc;
use crate::site::SiteDoc;

/// The folder of a run that holds imported sites.
pub const SITES: &str = "sites";

/// The sites imported into `run_dir`, with the run's own results for the internal cohort.
/// A site folder that cannot be read is reported in the second list.
pub fn read_sites(
    run_dir: &Path,
    run: Option<&ResultsDoc>,
    palette: &Palette,
) -> (Vec<SiteView>, Vec<String>) {
    let mut problems = Vec::new();
    let views = read_docs(run_dir, &mut problems)
        .iter()
        .map(|(site, results)| view(site, results, run, palette))
        .collect();
    (views, problems)
}

/// Adds each imported site of `run_dir` to a run's evaluation as a cohort of its own,
/// `site NAME` (its models, cohort figures and comparisons with the reference), so that `compare`
/// shows the site's cells beside the internal and external ones. Returns what could not be read.
pub fn merge_into(run_dir: &Path, eval: &mut EvaluationInput) -> Vec<String> {
    let mut problems = Vec::new();
    for (site, r) in read_docs(run_dir, &mut problems) {
        let name = format!("site {}", site.site);
        let rename = |c: &str| {
            if c == "test" {
                name.clone()
            } else {
                c.to_string()
            }
        };
        if let Some(c) = r.cohorts.get("test") {
            eval.results.cohorts.insert(name.clone(), c.clone());
        }
        for m in r.models.iter().filter(|m| m.cohort == "test") {
            let mut m = m.clone();
            m.cohort = rename(&m.cohort);
            eval.results.models.push(m);
        }
        for c in &r.versus_reference {
            let mut c = c.clone();
            c.cohort = rename(&c.cohort);
            eval.results.versus_reference.push(c);
        }
    }
    problems
}

/// Every readable imported site of `run_dir`, in name order; problems are appended.
fn read_docs(run_dir: &Path, problems: &mut Vec<String>) -> Vec<(SiteDoc, ResultsDoc)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(run_dir.join(SITES)) else {
        return out;
    };
    let mut dirs: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    dirs.sort();
    for dir in dirs {
        let read = || -> Result<(SiteDoc, ResultsDoc), String> {
            let site: SiteDoc = serde_json::from_slice(
                &std::fs::read(dir.join("site.json")).map_err(|e| e.to_string())?,
            )
            .map_err(|e| format!("site.json: {e}"))?;
            let v: serde_json::Value = serde_json::from_slice(
                &std::fs::read(dir.join("results.json")).map_err(|e| e.to_string())?,
            )
            .map_err(|e| format!("results.json: {e}"))?;
            Ok((site, crate::results::parse(v)?))
        };
        match read() {
            Ok(x) => out.push(x),
            Err(e) => problems.push(format!(
                "imported site `{}` cannot be read ({e}): not shown",
                dir.display()
            )),
        }
    }
    out
}

fn view(site: &SiteDoc, r: &ResultsDoc, run: Option<&ResultsDoc>, palette: &Palette) -> SiteView {
    let normal = Normal::new(0.0, 1.0).expect("the standard normal");
    let line = format!(
        "site {}, n {}, prevalence {:.3}: computed on their machine ({} {}, orchestrate {}, binary {}) \
         with kit {}, on data with digest {}, {}",
        site.site,
        site.cohort.n,
        site.cohort.prevalence,
        site.os,
        site.arch,
        site.orchestrate_version,
        &site.binary_identity[..12.min(site.binary_identity.len())],
        &site.kit[..12.min(site.kit.len())],
        &site.cohort.digest[..12.min(site.cohort.digest.len())],
        site.computed_at
    );
    let drops = r
        .models
        .iter()
        .filter(|m| m.cohort == "test")
        .map(|m| {
            let home = run.and_then(|run| {
                run.models
                    .iter()
                    .find(|x| x.model == m.model && x.cohort == "internal")
            });
            let delta = home.and_then(|h| Some(m.auc? - h.auc?));
            let se = home.and_then(|h| Some((h.delong.se?.powi(2) + m.delong.se?.powi(2)).sqrt()));
            let p = delta
                .zip(se)
                .filter(|(_, s)| *s > 0.0)
                .map(|(d, s)| 2.0 * (1.0 - normal.cdf((d / s).abs())));
            SiteDropRow {
                model: m.model.clone(),
                color: palette.style(&m.model).color,
                internal: f::auc(home.and_then(|h| h.auc)),
                site: f::auc(m.auc),
                site_ci: f::interval(m.delong.lo, m.delong.hi, 3),
                delta: f::signed(delta, 3),
                p: f::p_value(p),
            }
        })
        .collect();
    let comparisons = r
        .primary
        .iter()
        .chain(&r.secondary)
        .map(|c| SiteComparisonRow {
            a: c.a.clone(),
            b: c.b.clone(),
            delta: f::signed(c.delta, 3),
            ci: f::interval(c.delong.lo, c.delong.hi, 3),
            p: f::p_value(c.delong.p),
        })
        .collect();
    SiteView {
        name: site.site.clone(),
        line,
        drops,
        comparisons,
    }
}
