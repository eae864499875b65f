//! DeLong, DeLong & Clarke-Pearson (1988) variance of the AUC, its confidence interval, and tests
//! comparing two AUCs (paired: same rows; unpaired: different cohorts). Matches pROC 1.18.
//!
//! Placements are computed by the fast algorithm of Sun & Xu (2014): with mid-ranks, the placement
//! of a positive is `(rank among all − rank among positives) / n_neg`. On sorted tie groups this is
//! `(negatives strictly below + ½ negatives tied) / n_neg`, i.e. one sort and one linear pass:
//! O(n log n) instead of the O(n·m) pair table.

use super::StatsError;
use super::auc::{Direction, TieGroups};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// DeLong's structural components: one placement per row of each class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DelongPlacements {
    /// The AUC (mean of either placement vector).
    pub auc: f64,
    /// For each positive row (input order): fraction of negatives it outranks, ties ½ (pROC `X`, V10).
    pub positives: Vec<f64>,
    /// For each negative row (input order): fraction of positives outranking it, ties ½ (pROC `Y`, V01).
    pub negatives: Vec<f64>,
}

/// Placements of every row, O(n log n).
pub fn delong_placements(
    scores: &[f64],
    labels: &[bool],
    direction: Direction,
) -> Result<DelongPlacements, StatsError> {
    let groups = TieGroups::new(scores, labels, direction)?;
    Ok(placements_from_groups(&groups, labels))
}

fn placements_from_groups(groups: &TieGroups, labels: &[bool]) -> DelongPlacements {
    let n_pos = groups.counts.n_pos as f64;
    let n_neg = groups.counts.n_neg as f64;
    // Per group: the placement of a positive and of a negative in that group.
    let mut pos_place = vec![0.0; groups.len()];
    let mut neg_place = vec![0.0; groups.len()];
    let mut neg_below = 0u64;
    for (place, &q) in pos_place.iter_mut().zip(&groups.neg_in_group) {
        *place = (2 * neg_below + u64::from(q)) as f64 / (2.0 * n_neg);
        neg_below += u64::from(q);
    }
    let mut pos_above = 0u64;
    for g in (0..groups.len()).rev() {
        let p = u64::from(groups.pos_in_group[g]);
        neg_place[g] = (2 * pos_above + p) as f64 / (2.0 * n_pos);
        pos_above += p;
    }
    let mut positives = Vec::with_capacity(groups.counts.n_pos);
    let mut negatives = Vec::with_capacity(groups.counts.n_neg);
    for (row, &is_pos) in labels.iter().enumerate() {
        let g = groups.group_of_row[row] as usize;
        if is_pos {
            positives.push(pos_place[g]);
        } else {
            negatives.push(neg_place[g]);
        }
    }
    DelongPlacements {
        auc: groups.auc(),
        positives,
        negatives,
    }
}

/// Sample covariance (denominator `n − 1`) of two equally long vectors around given means.
fn covariance(a: &[f64], mean_a: f64, b: &[f64], mean_b: f64) -> f64 {
    let s: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - mean_a) * (y - mean_b))
        .sum();
    s / (a.len() as f64 - 1.0)
}

impl DelongPlacements {
    fn check_variance_defined(&self) -> Result<(), StatsError> {
        let (n_pos, n_neg) = (self.positives.len(), self.negatives.len());
        if n_pos < 2 || n_neg < 2 {
            return Err(StatsError::TooFewForVariance { n_pos, n_neg });
        }
        Ok(())
    }

    /// DeLong variance of the AUC: `S10 / n_pos + S01 / n_neg`.
    pub fn variance(&self) -> Result<f64, StatsError> {
        self.check_variance_defined()?;
        let s10 = covariance(&self.positives, self.auc, &self.positives, self.auc);
        let s01 = covariance(&self.negatives, self.auc, &self.negatives, self.auc);
        Ok(s10 / self.positives.len() as f64 + s01 / self.negatives.len() as f64)
    }
}

pub(crate) fn check_level(level: f64) -> Result<(), StatsError> {
    if level > 0.0 && level < 1.0 {
        Ok(())
    } else {
        Err(StatsError::InvalidLevel(level))
    }
}

/// Two-sided standard normal critical value for `level` (e.g. 1.959964 for 0.95).
pub(crate) fn normal_critical(level: f64) -> f64 {
    std_normal().inverse_cdf(1.0 - (1.0 - level) / 2.0)
}

pub(crate) fn std_normal() -> Normal {
    Normal::standard()
}

/// One AUC with its DeLong standard error and normal-theory interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DelongCi {
    pub auc: f64,
    pub variance: f64,
    pub se: f64,
    /// `auc ± z·se`, clipped to [0, 1] as pROC's `ci.auc(method = "delong")` does.
    pub lo: f64,
    pub hi: f64,
    pub level: f64,
}

/// AUC with DeLong variance and interval. Needs ≥ 2 rows of each class. With perfect separation the
/// variance is exactly 0 and the interval is the single point `[auc, auc]` (as in pROC).
pub fn delong_ci(
    scores: &[f64],
    labels: &[bool],
    direction: Direction,
    level: f64,
) -> Result<DelongCi, StatsError> {
    check_level(level)?;
    let placements = delong_placements(scores, labels, direction)?;
    let variance = placements.variance()?;
    let se = variance.sqrt();
    let z = normal_critical(level);
    Ok(DelongCi {
        auc: placements.auc,
        variance,
        se,
        lo: (placements.auc - z * se).clamp(0.0, 1.0),
        hi: (placements.auc + z * se).clamp(0.0, 1.0),
        level,
    })
}

/// Test statistic and two-sided p-value for `delta / se`, with pROC's rule for `se = 0`:
/// `delta = 0` gives statistic 0 and p = 1; otherwise the statistic is ±∞ and p = 0.
fn ratio_statistic(delta: f64, se: f64) -> f64 {
    if se > 0.0 {
        delta / se
    } else if delta == 0.0 {
        0.0
    } else {
        delta.signum() * f64::INFINITY
    }
}

/// Paired DeLong test of two AUCs measured on the same rows (pROC `roc.test(paired = TRUE,
/// method = "delong")`), with the normal-theory interval of the difference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairedDelong {
    pub auc_a: f64,
    pub auc_b: f64,
    /// `auc_a − auc_b`.
    pub delta: f64,
    /// Standard error of `delta` from the 2×2 DeLong covariance.
    pub se: f64,
    /// `delta / se`; 0 when both are 0, ±∞ when only `se` is 0.
    pub z: f64,
    /// Two-sided p-value, `2·Φ(−|z|)`.
    pub p: f64,
    /// `delta ± z_crit·se` (not clipped, as in pROC).
    pub lo: f64,
    pub hi: f64,
    pub level: f64,
}

/// Compares two scores on the same labelled rows, accounting for their correlation.
pub fn delong_paired(
    scores_a: &[f64],
    scores_b: &[f64],
    labels: &[bool],
    direction: Direction,
    level: f64,
) -> Result<PairedDelong, StatsError> {
    check_level(level)?;
    let a = delong_placements(scores_a, labels, direction)?;
    let b = delong_placements(scores_b, labels, direction)?;
    a.check_variance_defined()?;
    let (m, n) = (a.positives.len() as f64, a.negatives.len() as f64);
    let s10_aa = covariance(&a.positives, a.auc, &a.positives, a.auc);
    let s10_bb = covariance(&b.positives, b.auc, &b.positives, b.auc);
    let s10_ab = covariance(&a.positives, a.auc, &b.positives, b.auc);
    let s01_aa = covariance(&a.negatives, a.auc, &a.negatives, a.auc);
    let s01_bb = covariance(&b.negatives, b.auc, &b.negatives, b.auc);
    let s01_ab = covariance(&a.negatives, a.auc, &b.negatives, b.auc);
    let var_a = s10_aa / m + s01_aa / n;
    let var_b = s10_bb / m + s01_bb / n;
    let cov_ab = s10_ab / m + s01_ab / n;
    // Rounding can leave a tiny negative number when the two scores rank identically.
    let var_delta = (var_a + var_b - 2.0 * cov_ab).max(0.0);
    let se = var_delta.sqrt();
    let delta = a.auc - b.auc;
    let z = ratio_statistic(delta, se);
    let p = two_sided_normal_p(z);
    let crit = normal_critical(level);
    Ok(PairedDelong {
        auc_a: a.auc,
        auc_b: b.auc,
        delta,
        se,
        z,
        p,
        lo: delta - crit * se,
        hi: delta + crit * se,
        level,
    })
}

pub(crate) fn two_sided_normal_p(z: f64) -> f64 {
    if z.is_infinite() {
        0.0
    } else {
        2.0 * std_normal().cdf(-z.abs())
    }
}

/// Unpaired DeLong comparison of AUCs from two different sets of rows (pROC `roc.test(paired =
/// FALSE, method = "delong")`): a Welch-type t statistic with Satterthwaite degrees of freedom.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UnpairedDelong {
    pub auc_a: f64,
    pub auc_b: f64,
    pub delta: f64,
    /// `sqrt(var_a + var_b)`.
    pub se: f64,
    /// `delta / se` (pROC's `D`); same rule as [`PairedDelong::z`] when `se = 0`.
    pub statistic: f64,
    /// `(var_a + var_b)² / (var_a² / (N_a − 1) + var_b² / (N_b − 1))`, with `N` the total rows of each
    /// sample, exactly as pROC computes it; +∞ when both variances are 0.
    pub df: f64,
    /// Two-sided p-value from Student's t with `df` degrees of freedom.
    pub p: f64,
}

/// Compares AUCs from two independent samples (e.g. internal vs external cohort).
pub fn delong_unpaired(
    scores_a: &[f64],
    labels_a: &[bool],
    scores_b: &[f64],
    labels_b: &[bool],
    direction: Direction,
) -> Result<UnpairedDelong, StatsError> {
    let a = delong_placements(scores_a, labels_a, direction)?;
    let b = delong_placements(scores_b, labels_b, direction)?;
    let var_a = a.variance()?;
    let var_b = b.variance()?;
    let total = var_a + var_b;
    let se = total.sqrt();
    let delta = a.auc - b.auc;
    let statistic = ratio_statistic(delta, se);
    let n_a = labels_a.len() as f64;
    let n_b = labels_b.len() as f64;
    let df = if total > 0.0 {
        total * total / (var_a * var_a / (n_a - 1.0) + var_b * var_b / (n_b - 1.0))
    } else {
        f64::INFINITY
    };
    let p = if statistic.is_infinite() {
        0.0
    } else if df.is_infinite() {
        two_sided_normal_p(statistic)
    } else {
        // df > 0 here: total > 0 and both counts exceed 1.
        match StudentsT::new(0.0, 1.0, df) {
            Ok(t) => 2.0 * t.cdf(-statistic.abs()),
            Err(_) => two_sided_normal_p(statistic),
        }
    };
    Ok(UnpairedDelong {
        auc_a: a.auc,
        auc_b: b.auc,
        delta,
        se,
        statistic,
        df,
        p,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::test_support::{asah, proc_golden};

    const TOL: f64 = 1e-9;

    fn close(a: f64, b: f64, what: &str) {
        assert!((a - b).abs() <= TOL, "{what}: ours {a} pROC {b}");
    }

    #[test]
    fn ndka_delong_ci_matches_proc_sanity_values() {
        let d = asah();
        let ci =
            delong_ci(&d.score("ndka"), &d.poor, Direction::HigherIsPositive, 0.95).expect("valid");
        close(ci.lo, 0.501244999271703, "lo");
        close(ci.auc, 0.611957994579946, "auc");
        close(ci.hi, 0.722670989888189, "hi");
    }

    #[test]
    fn single_auc_placements_variance_and_ci_match_proc() {
        let d = asah();
        let g = proc_golden();
        for s in g["single"].as_array().expect("array") {
            let name = s["predictor"].as_str().expect("name");
            let scores = d.score(name);
            let pl =
                delong_placements(&scores, &d.poor, Direction::HigherIsPositive).expect("valid");
            close(pl.auc, s["auc"].as_f64().expect("f64"), name);
            for (ours, theirs) in pl
                .positives
                .iter()
                .zip(s["placements_cases"].as_array().expect("a"))
            {
                close(*ours, theirs.as_f64().expect("f64"), "case placement");
            }
            for (ours, theirs) in pl
                .negatives
                .iter()
                .zip(s["placements_controls"].as_array().expect("a"))
            {
                close(*ours, theirs.as_f64().expect("f64"), "control placement");
            }
            close(
                pl.variance().expect("var"),
                s["var"].as_f64().expect("f64"),
                "var",
            );
            for (level, key) in [(0.95, "ci95"), (0.90, "ci90")] {
                let ci =
                    delong_ci(&scores, &d.poor, Direction::HigherIsPositive, level).expect("valid");
                let r = &s[key];
                close(ci.lo, r[0].as_f64().expect("f64"), key);
                close(ci.auc, r[1].as_f64().expect("f64"), key);
                close(ci.hi, r[2].as_f64().expect("f64"), key);
            }
        }
    }

    #[test]
    fn paired_delong_matches_proc_roc_test() {
        let d = asah();
        let g = proc_golden();
        let pairs = g["paired_delong"].as_array().expect("array");
        assert_eq!(pairs.len(), 6);
        for t in pairs {
            let (a, b) = (t["a"].as_str().expect("a"), t["b"].as_str().expect("b"));
            let r = delong_paired(
                &d.score(a),
                &d.score(b),
                &d.poor,
                Direction::HigherIsPositive,
                0.95,
            )
            .expect("valid");
            close(r.z, t["z"].as_f64().expect("z"), "z");
            close(r.p, t["p"].as_f64().expect("p"), "p");
            close(r.lo, t["ci95"][0].as_f64().expect("lo"), "lo");
            close(r.hi, t["ci95"][1].as_f64().expect("hi"), "hi");
            close(r.auc_a, t["auc_a"].as_f64().expect("auc"), "auc_a");
            close(r.auc_b, t["auc_b"].as_f64().expect("auc"), "auc_b");
        }
    }

    #[test]
    fn unpaired_delong_matches_proc_roc_test() {
        let d = asah();
        let g = proc_golden();
        for t in g["unpaired_delong"].as_array().expect("array") {
            let pick = |rows: &serde_json::Value, name: &str| {
                let all = d.score(name);
                let idx: Vec<usize> = rows
                    .as_array()
                    .expect("rows")
                    .iter()
                    .map(|v| v.as_f64().expect("row") as usize)
                    .collect();
                let s: Vec<f64> = idx.iter().map(|&i| all[i]).collect();
                let y: Vec<bool> = idx.iter().map(|&i| d.poor[i]).collect();
                (s, y)
            };
            let (sa, ya) = pick(&t["rows_a"], t["a"].as_str().expect("a"));
            let (sb, yb) = pick(&t["rows_b"], t["b"].as_str().expect("b"));
            let r =
                delong_unpaired(&sa, &ya, &sb, &yb, Direction::HigherIsPositive).expect("valid");
            let name = t["name"].as_str().expect("name");
            close(r.auc_a, t["auc_a"].as_f64().expect("f64"), name);
            close(r.auc_b, t["auc_b"].as_f64().expect("f64"), name);
            close(r.statistic, t["statistic"].as_f64().expect("f64"), name);
            close(r.df, t["df"].as_f64().expect("f64"), name);
            close(r.p, t["p"].as_f64().expect("f64"), name);
        }
    }

    #[test]
    fn perfect_separation_gives_zero_variance_and_a_point_interval() {
        let s = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9];
        let y = [false, false, false, true, true, true];
        let ci = delong_ci(&s, &y, Direction::HigherIsPositive, 0.95).expect("valid");
        assert_eq!(
            (ci.auc, ci.variance, ci.se, ci.lo, ci.hi),
            (1.0, 0.0, 0.0, 1.0, 1.0)
        );
        // Two perfect scores: delta 0 with se 0 → z 0, p 1 (pROC's rule).
        let t = delong_paired(&s, &s, &y, Direction::HigherIsPositive, 0.95).expect("valid");
        assert_eq!((t.delta, t.se, t.z, t.p), (0.0, 0.0, 0.0, 1.0));
    }

    #[test]
    fn identical_scores_compare_to_delta_zero_p_one() {
        let s = [0.1, 0.5, 0.3, 0.7, 0.2, 0.9, 0.4];
        let y = [false, true, false, true, true, false, false];
        let t = delong_paired(&s, &s, &y, Direction::HigherIsPositive, 0.95).expect("valid");
        assert_eq!((t.delta, t.z, t.p), (0.0, 0.0, 1.0));
        assert!(t.se.abs() < 1e-12);
    }

    #[test]
    fn too_few_rows_in_a_class_is_a_typed_error() {
        let s = [0.1, 0.2, 0.9];
        let y = [false, false, true];
        assert_eq!(
            delong_ci(&s, &y, Direction::HigherIsPositive, 0.95),
            Err(StatsError::TooFewForVariance { n_pos: 1, n_neg: 2 })
        );
        assert_eq!(
            delong_ci(&s, &[true, true, true], Direction::HigherIsPositive, 0.95),
            Err(StatsError::OneClass { n_pos: 3, n_neg: 0 })
        );
        assert_eq!(
            delong_ci(
                &[0.1, 0.2, 0.3, 0.4],
                &[false, false, true, true],
                Direction::default(),
                1.0
            ),
            Err(StatsError::InvalidLevel(1.0))
        );
    }

    #[test]
    fn placements_average_to_the_auc() {
        let s = [0.3, 0.3, 0.1, 0.5, 0.5, 0.9, 0.2, 0.5];
        let y = [true, false, false, true, false, true, false, false];
        let p = delong_placements(&s, &y, Direction::HigherIsPositive).expect("valid");
        let m1 = p.positives.iter().sum::<f64>() / p.positives.len() as f64;
        let m0 = p.negatives.iter().sum::<f64>() / p.negatives.len() as f64;
        assert!((m1 - p.auc).abs() < 1e-15 && (m0 - p.auc).abs() < 1e-15);
    }
}
