//! Bootstrap intervals for one AUC and for the difference of two paired AUCs.
//!
//! * **Resampling.** Stratified by class by default (pROC's default: each resample keeps the
//!   observed numbers of positives and negatives), or over all rows. With cluster ids (several rows
//!   per patient) whole clusters are resampled and all their rows taken; stratification then uses
//!   the cluster's class, "contains a positive row" or not.
//! * **Determinism.** Resample `b` draws from its own stream `Rng::indexed(seed, b)`, and
//!   results are collected in resample order, so neither the thread count nor the scheduling can
//!   change a digit.
//! * **Speed.** Each model's scores are sorted once into tie groups. A resample only counts how
//!   often each row (or cluster) was drawn, in a byte array that stays in cache (O(n)); one pass
//!   over the rows in score order then gives twice the Mann–Whitney U as an exact integer. Models
//!   compared on the same rows share the drawn counts, so a paired bootstrap costs one extra pass,
//!   not a second resampling.
//! * **Intervals.** Percentile (pROC's method: R's `quantile` type 7 of the resampled AUCs) or
//!   BCa (Efron 1987; bias from the resamples, acceleration from a leave-one-unit-out jackknife).
//! * **Dropped resamples.** A resample without one of the classes has no AUC; like pROC, it is
//!   dropped (and counted in `dropped`). This cannot happen with row-level stratification.

use super::StatsError;
use super::auc::{Direction, TieGroups, auc_from_twice_u};
use super::delong::{check_level, std_normal, two_sided_normal_p};
use crate::rng::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use statrs::distribution::ContinuousCDF;
use std::collections::HashMap;

/// How a bootstrap is run. The defaults are the module's documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BootstrapConfig {
    /// Number of resamples (default 2000, as pROC).
    pub resamples: usize,
    /// Seed of the resample streams (default 1).
    pub seed: u64,
    /// Confidence level (default 0.95).
    pub level: f64,
    /// Resample positives and negatives separately (default true, as pROC).
    pub stratified: bool,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            resamples: 2000,
            seed: 1,
            level: 0.95,
            stratified: true,
        }
    }
}

/// How an interval is read from the resampled statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntervalMethod {
    /// Quantiles (R type 7) of the resampled values at (1 − level)/2 and (1 + level)/2.
    #[default]
    Percentile,
    /// Bias-corrected and accelerated percentile interval.
    Bca,
}

impl IntervalMethod {
    pub fn name(self) -> &'static str {
        match self {
            IntervalMethod::Percentile => "percentile",
            IntervalMethod::Bca => "bca",
        }
    }
}

/// A bootstrap interval for one AUC, with everything needed to report how it was made.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BootstrapCi {
    /// AUC on the full sample.
    pub auc: f64,
    pub lo: f64,
    pub hi: f64,
    pub level: f64,
    pub method: IntervalMethod,
    /// Resamples requested.
    pub resamples: usize,
    /// Resamples that had both classes and entered the interval.
    pub used: usize,
    pub seed: u64,
    pub stratified: bool,
    /// Whether clusters (patients) rather than rows were resampled.
    pub clustered: bool,
}

/// Paired bootstrap of `auc_a − auc_b` with the same resampled rows for both models.
///
/// The p-value follows pROC's `roc.test(method = "bootstrap")`: `z = delta / sd(delta*)` with the
/// standard deviation of the resampled differences (denominator `B − 1`), `p = 2·Φ(−|z|)`. When
/// `sd = 0`: `delta = 0` gives z = 0, p = 1; otherwise z = ±∞, p = 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairedBootstrap {
    pub auc_a: f64,
    pub auc_b: f64,
    /// `auc_a − auc_b` on the full sample.
    pub delta: f64,
    /// Percentile interval of the resampled differences.
    pub lo: f64,
    pub hi: f64,
    /// Standard deviation of the resampled differences.
    pub sd: f64,
    pub z: f64,
    pub p: f64,
    pub level: f64,
    pub resamples: usize,
    pub used: usize,
    pub seed: u64,
    pub stratified: bool,
    pub clustered: bool,
}

/// Resampled AUCs of one or more models on the same resamples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BootstrapReplicates {
    /// Full-sample AUC of each model.
    pub estimates: Vec<f64>,
    /// `aucs[m][k]`: AUC of model `m` in the `k`-th usable resample, in resample order.
    pub aucs: Vec<Vec<f64>>,
    pub config: BootstrapConfig,
    /// Resamples dropped for lacking a class.
    pub dropped: usize,
    pub clustered: bool,
}

/// The units (rows, or clusters of rows) that are drawn, laid out as contiguous "slots": stratum
/// `s` owns slots `start[s]..start[s + 1]`, units in order of first appearance within a stratum.
/// A resample counts how often each slot was drawn; a row's weight is its unit's count.
#[derive(Debug)]
struct Design {
    /// Slot ranges of the strata (length = strata + 1).
    stratum_start: Vec<u32>,
    /// Slot of every row.
    slot_of_row: Vec<u32>,
    clustered: bool,
}

/// Units as lists of rows: clusters in order of first appearance, or `None` if no id repeats
/// (then each row is its own unit and cluster resampling is row resampling, draw for draw).
fn cluster_units(
    labels: &[bool],
    clusters: Option<&[u64]>,
) -> Result<Option<Vec<Vec<u32>>>, StatsError> {
    let Some(ids) = clusters else {
        return Ok(None);
    };
    if ids.len() != labels.len() {
        return Err(StatsError::ClusterLengthMismatch {
            found: ids.len(),
            expected: labels.len(),
        });
    }
    let mut unit_of: HashMap<u64, usize> = HashMap::with_capacity(ids.len());
    let mut units: Vec<Vec<u32>> = Vec::new();
    for (row, id) in ids.iter().enumerate() {
        let u = *unit_of.entry(*id).or_insert_with(|| {
            units.push(Vec::new());
            units.len() - 1
        });
        units[u].push(row as u32);
    }
    if units.len() == labels.len() {
        return Ok(None);
    }
    Ok(Some(units))
}

impl Design {
    fn new(
        labels: &[bool],
        clusters: Option<&[u64]>,
        stratified: bool,
    ) -> Result<Design, StatsError> {
        let units = cluster_units(labels, clusters)?;
        let clustered = units.is_some();
        // Unit of every row, and each unit's class (a cluster's: "contains a positive row").
        let (unit_of_row, unit_is_pos): (Vec<u32>, Vec<bool>) = match &units {
            None => ((0..labels.len() as u32).collect(), labels.to_vec()),
            Some(units) => {
                let mut unit_of_row = vec![0u32; labels.len()];
                let mut unit_is_pos = vec![false; units.len()];
                for (u, rows) in units.iter().enumerate() {
                    for &r in rows {
                        unit_of_row[r as usize] = u as u32;
                        unit_is_pos[u] |= labels[r as usize];
                    }
                }
                (unit_of_row, unit_is_pos)
            }
        };
        let classes: &[Option<bool>] = if stratified {
            &[Some(false), Some(true)]
        } else {
            &[None]
        };
        let mut slot_of_unit = vec![0u32; unit_is_pos.len()];
        let mut stratum_start = vec![0u32];
        let mut next_slot = 0u32;
        for class in classes {
            for (u, &is_pos) in unit_is_pos.iter().enumerate() {
                if class.is_none_or(|c| c == is_pos) {
                    slot_of_unit[u] = next_slot;
                    next_slot += 1;
                }
            }
            if next_slot > *stratum_start.last().unwrap_or(&0) {
                stratum_start.push(next_slot);
            }
        }
        let slot_of_row = unit_of_row
            .iter()
            .map(|&u| slot_of_unit[u as usize])
            .collect();
        Ok(Design {
            stratum_start,
            slot_of_row,
            clustered,
        })
    }

    fn n_slots(&self) -> usize {
        *self.stratum_start.last().unwrap_or(&0) as usize
    }
}

/// Largest number of rows the bootstrap accepts (slots and ranks are stored as `u32`).
const MAX_ROWS: usize = u32::MAX as usize;

/// One model's rows arranged for the per-resample pass (built once from its tie groups).
///
/// A resample's 2U is `Σ_positives count · (N(lo) + N(hi))`, where `N(k)` is the number of drawn
/// negatives among the `k` lowest-ranked negatives, `lo` counts the negatives scoring strictly
/// below the positive and `hi` those below or tied. So a pass is: gather the negatives' counts in
/// rank order into a prefix sum, then one independent multiply-add per positive.
#[derive(Debug)]
struct RankLayout {
    /// Slot of each negative row, in ascending score order.
    neg_slots: Vec<u32>,
    /// Per positive row, in ascending score order: `[slot, lo, hi]`.
    positives: Vec<[u32; 3]>,
}

impl RankLayout {
    fn new(groups: &TieGroups, labels: &[bool], design: &Design) -> RankLayout {
        // Counting sort of rows by tie group (groups are already in ascending score order).
        let mut start = vec![0usize; groups.len() + 1];
        for &g in &groups.group_of_row {
            start[g as usize + 1] += 1;
        }
        for g in 0..groups.len() {
            start[g + 1] += start[g];
        }
        let mut by_rank = vec![0u32; labels.len()];
        for (row, &g) in groups.group_of_row.iter().enumerate() {
            by_rank[start[g as usize]] = row as u32;
            start[g as usize] += 1;
        }
        let mut neg_slots = Vec::with_capacity(groups.counts.n_neg);
        let mut positives = Vec::with_capacity(groups.counts.n_pos);
        let mut i = 0;
        for g in 0..groups.len() {
            let lo = neg_slots.len() as u32;
            let hi = lo + groups.neg_in_group[g];
            let end = i + (groups.neg_in_group[g] + groups.pos_in_group[g]) as usize;
            for &row in &by_rank[i..end] {
                let slot = design.slot_of_row[row as usize];
                if labels[row as usize] {
                    positives.push([slot, lo, hi]);
                } else {
                    neg_slots.push(slot);
                }
            }
            i = end;
        }
        RankLayout {
            neg_slots,
            positives,
        }
    }
}

/// Everything a resample needs, shared read-only by all threads.
struct Engine<'a> {
    design: &'a Design,
    /// Per model, its rows arranged for the pass.
    layouts: Vec<RankLayout>,
    seed: u64,
}

/// How many times each slot was drawn in one resample. `u8` keeps the array in L1/L2 cache (this
/// loop is memory bound); a slot drawn 256 times or more is detected (the per-stratum sum falls
/// short) and the resample is recounted with `u32`.
trait SlotCounts {
    fn bump(&mut self, slot: usize);
    fn get(&self, slot: usize) -> u64;
}

impl SlotCounts for [u8] {
    #[inline]
    fn bump(&mut self, slot: usize) {
        self[slot] = self[slot].wrapping_add(1);
    }
    #[inline]
    fn get(&self, slot: usize) -> u64 {
        u64::from(self[slot])
    }
}

impl SlotCounts for [u32] {
    #[inline]
    fn bump(&mut self, slot: usize) {
        self[slot] += 1;
    }
    #[inline]
    fn get(&self, slot: usize) -> u64 {
        u64::from(self[slot])
    }
}

impl Engine<'_> {
    /// Draws resample `b`: for each stratum, as many units as it holds, uniformly with replacement.
    fn draw<C: SlotCounts + ?Sized>(&self, counts: &mut C, b: u64) {
        let mut rng = Rng::indexed(self.seed, b);
        for w in self.design.stratum_start.windows(2) {
            let (first, len) = (w[0] as usize, w[1] - w[0]);
            rng.draw_below(len, len as usize, |k| counts.bump(first + k as usize));
        }
    }

    /// AUC of every model in resample `b`, or `None` if the resample lacks a class.
    fn resample(&self, ws: &mut Workspace, b: u64) -> Option<Vec<f64>> {
        let counts = &mut ws.counts;
        counts.fill(0);
        self.draw(counts.as_mut_slice(), b);
        if counts_are_exact(counts, &self.design.stratum_start) {
            self.aucs(counts.as_slice(), &mut ws.prefix)
        } else {
            let mut wide = vec![0u32; counts.len()];
            self.draw(wide.as_mut_slice(), b);
            self.aucs(wide.as_slice(), &mut ws.prefix)
        }
    }

    fn aucs<C: SlotCounts + ?Sized>(&self, counts: &C, prefix: &mut Vec<u64>) -> Option<Vec<f64>> {
        let mut out = Vec::with_capacity(self.layouts.len());
        for layout in &self.layouts {
            let (twice_u, n_pos, n_neg) = twice_u_weighted(layout, counts, prefix);
            if n_pos == 0 || n_neg == 0 {
                return None;
            }
            out.push(auc_from_twice_u(twice_u, n_pos as usize, n_neg as usize));
        }
        Some(out)
    }
}

/// Whether byte counts are exact: each stratum's counts must add up to its number of draws (one per
/// unit); a slot drawn 256 times or more wrapped around and makes the sum fall short.
fn counts_are_exact(counts: &[u8], stratum_start: &[u32]) -> bool {
    stratum_start.windows(2).all(|w| {
        let drawn: u64 = counts[w[0] as usize..w[1] as usize]
            .iter()
            .map(|&c| u64::from(c))
            .sum();
        drawn == u64::from(w[1] - w[0])
    })
}

/// Per-thread scratch space, reused across the resamples a thread runs.
struct Workspace {
    counts: Vec<u8>,
    /// `prefix[k]`: drawn negatives among the k lowest-ranked negatives.
    prefix: Vec<u64>,
}

/// One pass over a model's rows, each weighted by its slot's count: twice the Mann–Whitney U and
/// the resample's class totals (see [`RankLayout`]). No loop-carried work but two running sums.
#[inline]
fn twice_u_weighted<C: SlotCounts + ?Sized>(
    layout: &RankLayout,
    counts: &C,
    prefix: &mut Vec<u64>,
) -> (u64, u64, u64) {
    prefix.clear();
    prefix.push(0);
    let mut running = 0u64;
    prefix.extend(layout.neg_slots.iter().map(|&slot| {
        running += counts.get(slot as usize);
        running
    }));
    let (mut twice_u, mut n_pos) = (0u64, 0u64);
    for &[slot, lo, hi] in &layout.positives {
        let c = counts.get(slot as usize);
        twice_u += c * (prefix[lo as usize] + prefix[hi as usize]);
        n_pos += c;
    }
    (twice_u, n_pos, running)
}

/// Resampled AUCs of every model in `models` (each a score vector over the same rows as `labels`),
/// all models evaluated on the same resamples. This is the engine behind [`bootstrap_ci`] and
/// [`paired_bootstrap`]; call it directly to compare many models on one set of resamples.
pub fn bootstrap_replicates(
    models: &[&[f64]],
    labels: &[bool],
    clusters: Option<&[u64]>,
    direction: Direction,
    config: &BootstrapConfig,
) -> Result<BootstrapReplicates, StatsError> {
    check_level(config.level)?;
    if config.resamples < 2 {
        return Err(StatsError::TooFewResamples(config.resamples));
    }
    if labels.len() > MAX_ROWS {
        return Err(StatsError::TooManyRows {
            rows: labels.len(),
            limit: MAX_ROWS,
        });
    }
    let groups: Vec<TieGroups> = models
        .iter()
        .map(|scores| TieGroups::new(scores, labels, direction))
        .collect::<Result<_, _>>()?;
    let design = Design::new(labels, clusters, config.stratified)?;
    let engine = Engine {
        design: &design,
        layouts: groups
            .iter()
            .map(|g| RankLayout::new(g, labels, &design))
            .collect(),
        seed: config.seed,
    };
    let n_slots = design.n_slots();
    let per_resample: Vec<Option<Vec<f64>>> = (0..config.resamples)
        .into_par_iter()
        .with_min_len(4)
        .map_init(
            || Workspace {
                counts: vec![0u8; n_slots],
                prefix: Vec::new(),
            },
            |ws, b| engine.resample(ws, b as u64),
        )
        .collect();

    let mut aucs: Vec<Vec<f64>> = vec![Vec::with_capacity(config.resamples); models.len()];
    let mut dropped = 0;
    for r in per_resample {
        match r {
            Some(values) => {
                for (m, v) in values.into_iter().enumerate() {
                    aucs[m].push(v);
                }
            }
            None => dropped += 1,
        }
    }
    if dropped == config.resamples {
        return Err(StatsError::NoUsableResamples {
            resamples: config.resamples,
        });
    }
    Ok(BootstrapReplicates {
        estimates: groups.iter().map(TieGroups::auc).collect(),
        aucs,
        config: *config,
        dropped,
        clustered: design.clustered,
    })
}

impl BootstrapReplicates {
    /// Resamples that entered the intervals.
    pub fn used(&self) -> usize {
        self.config.resamples - self.dropped
    }

    /// Percentile interval of model `model`'s AUC. Panics if `model` is out of range.
    pub fn percentile_ci(&self, model: usize) -> BootstrapCi {
        let (lo, hi) = percentile_interval(&self.aucs[model], self.config.level);
        self.ci(model, lo, hi, IntervalMethod::Percentile)
    }

    fn ci(&self, model: usize, lo: f64, hi: f64, method: IntervalMethod) -> BootstrapCi {
        BootstrapCi {
            auc: self.estimates[model],
            lo,
            hi,
            level: self.config.level,
            method,
            resamples: self.config.resamples,
            used: self.used(),
            seed: self.config.seed,
            stratified: self.config.stratified,
            clustered: self.clustered,
        }
    }

    /// Paired comparison of models `a` and `b` on the shared resamples. Panics if out of range.
    pub fn paired(&self, a: usize, b: usize) -> PairedBootstrap {
        let diffs: Vec<f64> = self.aucs[a]
            .iter()
            .zip(&self.aucs[b])
            .map(|(x, y)| x - y)
            .collect();
        let delta = self.estimates[a] - self.estimates[b];
        let (lo, hi) = percentile_interval(&diffs, self.config.level);
        let sd = sample_sd(&diffs);
        let z = if sd > 0.0 {
            delta / sd
        } else if delta == 0.0 {
            0.0
        } else {
            delta.signum() * f64::INFINITY
        };
        PairedBootstrap {
            auc_a: self.estimates[a],
            auc_b: self.estimates[b],
            delta,
            lo,
            hi,
            sd,
            z,
            p: two_sided_normal_p(z),
            level: self.config.level,
            resamples: self.config.resamples,
            used: self.used(),
            seed: self.config.seed,
            stratified: self.config.stratified,
            clustered: self.clustered,
        }
    }
}

/// Sample standard deviation (denominator n − 1); 0 for fewer than two values.
fn sample_sd(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (ss / (values.len() as f64 - 1.0)).sqrt()
}

/// R's `quantile(x, p, type = 7)` of already sorted, non-empty `sorted`, computed the way R does
/// (1-based index `1 + (n − 1)·p`, then `(1 − h)·x[lo] + h·x[hi]`) so results agree to the last bit.
pub fn quantile_type7(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    debug_assert!(n > 0);
    let p = p.clamp(0.0, 1.0);
    let index = 1.0 + (n as f64 - 1.0) * p;
    let lo = index.floor();
    let hi = index.ceil();
    let x_lo = sorted[lo as usize - 1];
    let x_hi = sorted[(hi as usize - 1).min(n - 1)];
    if index > lo && x_hi != x_lo {
        let h = index - lo;
        (1.0 - h) * x_lo + h * x_hi
    } else {
        x_lo
    }
}

fn sorted_copy(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// Percentile interval at `level` of non-empty `values`: type-7 quantiles at (1 ∓ level)/2.
pub fn percentile_interval(values: &[f64], level: f64) -> (f64, f64) {
    let sorted = sorted_copy(values);
    let alpha = (1.0 - level) / 2.0;
    (
        quantile_type7(&sorted, alpha),
        quantile_type7(&sorted, 1.0 - alpha),
    )
}

/// BCa interval from the full-sample `estimate`, its bootstrap `replicates` and leave-one-out
/// `jackknife` estimates.
///
/// Bias correction `z0 = Φ⁻¹(share of replicates below the estimate)`, where replicates equal to the
/// estimate count one half (AUCs are discrete, so exact ties are common and counting them as
/// "not below" would bias z0). Acceleration `a = Σd³ / (6·(Σd²)^{3/2})` with `d = mean(jack) − jack_i`.
/// The interval is the type-7 quantiles at `Φ(z0 + (z0 + z_α) / (1 − a·(z0 + z_α)))`.
pub fn bca_interval(
    estimate: f64,
    replicates: &[f64],
    jackknife: &[f64],
    level: f64,
) -> Result<(f64, f64), StatsError> {
    check_level(level)?;
    if replicates.len() < 2 {
        return Err(StatsError::TooFewResamples(replicates.len()));
    }
    let below = replicates.iter().filter(|&&r| r < estimate).count() as f64;
    let equal = replicates.iter().filter(|&&r| r == estimate).count() as f64;
    let share = (below + equal / 2.0) / replicates.len() as f64;
    if share <= 0.0 || share >= 1.0 {
        return Err(StatsError::BcaUndefined(
            "every resample lies on one side of the estimate",
        ));
    }
    let normal = std_normal();
    let z0 = normal.inverse_cdf(share);
    if jackknife.len() < 2 {
        return Err(StatsError::BcaUndefined(
            "the jackknife needs at least two units",
        ));
    }
    let mean = jackknife.iter().sum::<f64>() / jackknife.len() as f64;
    let (mut s2, mut s3) = (0.0, 0.0);
    for j in jackknife {
        let d = mean - j;
        s2 += d * d;
        s3 += d * d * d;
    }
    let accel = if s2 > 0.0 {
        s3 / (6.0 * s2.powf(1.5))
    } else {
        0.0
    };
    let sorted = sorted_copy(replicates);
    let alpha = (1.0 - level) / 2.0;
    let mut bounds = [0.0; 2];
    for (bound, tail) in bounds.iter_mut().zip([alpha, 1.0 - alpha]) {
        let z = z0 + normal.inverse_cdf(tail);
        let denom = 1.0 - accel * z;
        if denom <= 0.0 {
            return Err(StatsError::BcaUndefined(
                "acceleration too large for this level",
            ));
        }
        *bound = quantile_type7(&sorted, normal.cdf(z0 + z / denom));
    }
    Ok((bounds[0], bounds[1]))
}

/// Leave-one-unit-out AUCs: one per row, or one per cluster when `clusters` has repeated ids
/// (clusters in order of first appearance). O(n log n).
///
/// Removing a unit subtracts its rows' pair counts from U (each positive's negatives below and
/// tied, each negative's positives above and tied) and adds back the pairs inside the unit, which
/// were subtracted twice. Errors if removing some unit would leave a class empty.
pub fn jackknife_aucs(
    scores: &[f64],
    labels: &[bool],
    clusters: Option<&[u64]>,
    direction: Direction,
) -> Result<Vec<f64>, StatsError> {
    let groups = TieGroups::new(scores, labels, direction)?;
    let n_groups = groups.len();
    // Twice the pair count of a positive / negative sitting in group g.
    let mut pos_weight = vec![0u64; n_groups];
    let mut neg_weight = vec![0u64; n_groups];
    let mut neg_below = 0u64;
    for (weight, &q) in pos_weight.iter_mut().zip(&groups.neg_in_group) {
        *weight = 2 * neg_below + u64::from(q);
        neg_below += u64::from(q);
    }
    let mut pos_above = 0u64;
    for g in (0..n_groups).rev() {
        let p = u64::from(groups.pos_in_group[g]);
        neg_weight[g] = 2 * pos_above + p;
        pos_above += p;
    }
    let twice_u = groups.twice_u();
    let (n_pos, n_neg) = (groups.counts.n_pos as u64, groups.counts.n_neg as u64);

    let units: Vec<Vec<u32>> = match cluster_units(labels, clusters)? {
        Some(units) => units,
        None => (0..labels.len() as u32).map(|r| vec![r]).collect(),
    };
    let mut out = Vec::with_capacity(units.len());
    let mut local: Vec<(u32, bool)> = Vec::new();
    for unit in &units {
        let (mut removed, mut pos_out, mut neg_out) = (0u64, 0u64, 0u64);
        local.clear();
        for &r in unit {
            let g = groups.group_of_row[r as usize];
            if labels[r as usize] {
                removed += pos_weight[g as usize];
                pos_out += 1;
            } else {
                removed += neg_weight[g as usize];
                neg_out += 1;
            }
            local.push((g, labels[r as usize]));
        }
        // Twice the pairs within the unit, by the same sorted-groups pass.
        let mut inside = 0u64;
        if pos_out > 0 && neg_out > 0 {
            local.sort_unstable();
            let mut i = 0;
            let mut neg_below_local = 0u64;
            while i < local.len() {
                let g = local[i].0;
                let (mut p, mut q) = (0u64, 0u64);
                while i < local.len() && local[i].0 == g {
                    if local[i].1 {
                        p += 1;
                    } else {
                        q += 1;
                    }
                    i += 1;
                }
                inside += p * (2 * neg_below_local + q);
                neg_below_local += q;
            }
        }
        let (rest_pos, rest_neg) = (n_pos - pos_out, n_neg - neg_out);
        if rest_pos == 0 || rest_neg == 0 {
            return Err(StatsError::BcaUndefined(
                "leaving one unit out would remove a whole class",
            ));
        }
        // Removing subtracts each pair touching the unit once; pairs inside it were subtracted from
        // both ends, so add them back once.
        let rest_twice_u = twice_u - removed + inside;
        out.push(auc_from_twice_u(
            rest_twice_u,
            rest_pos as usize,
            rest_neg as usize,
        ));
    }
    Ok(out)
}

/// Bootstrap interval for the AUC of `scores` (see the module docs for the resampling scheme).
pub fn bootstrap_ci(
    scores: &[f64],
    labels: &[bool],
    clusters: Option<&[u64]>,
    direction: Direction,
    config: &BootstrapConfig,
    method: IntervalMethod,
) -> Result<BootstrapCi, StatsError> {
    let reps = bootstrap_replicates(&[scores], labels, clusters, direction, config)?;
    match method {
        IntervalMethod::Percentile => Ok(reps.percentile_ci(0)),
        IntervalMethod::Bca => {
            let jack = jackknife_aucs(scores, labels, clusters, direction)?;
            let (lo, hi) = bca_interval(reps.estimates[0], &reps.aucs[0], &jack, config.level)?;
            Ok(reps.ci(0, lo, hi, IntervalMethod::Bca))
        }
    }
}

/// Paired bootstrap of `AUC(scores_a) − AUC(scores_b)` on the same rows: both models see exactly
/// the same resampled rows. Percentile interval and pROC-style p-value (see [`PairedBootstrap`]).
pub fn paired_bootstrap(
    scores_a: &[f64],
    scores_b: &[f64],
    labels: &[bool],
    clusters: Option<&[u64]>,
    direction: Direction,
    config: &BootstrapConfig,
) -> Result<PairedBootstrap, StatsError> {
    let reps = bootstrap_replicates(&[scores_a, scores_b], labels, clusters, direction, config)?;
    Ok(reps.paired(0, 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::auc::auc;
    use crate::stats::test_support::{asah, proc_golden};
    use proptest::prelude::*;

    fn cfg(resamples: usize, seed: u64) -> BootstrapConfig {
        BootstrapConfig {
            resamples,
            seed,
            ..BootstrapConfig::default()
        }
    }

    #[test]
    fn wrapped_byte_counts_are_detected() {
        // Stratum of 300 units: one unit drawn all 300 times wraps its byte count to 44.
        let mut counts = vec![0u8; 300];
        for _ in 0..300 {
            counts.as_mut_slice().bump(0);
        }
        assert_eq!(counts[0], 44);
        assert!(!counts_are_exact(&counts, &[0, 300]));
        let spread: Vec<u8> = (0..300).map(|i| u8::from(i % 2 == 0) * 2).collect();
        assert!(counts_are_exact(&spread, &[0, 300]));
        // Two strata are checked separately.
        assert!(!counts_are_exact(&spread, &[0, 1, 300]));
    }

    #[test]
    fn quantile_type7_matches_r() {
        // R: quantile(c(1, 3, 4, 10), c(0, .025, .1, .5, .975, 1))
        //    1.000 1.150 1.600 3.500 9.550 10.000
        let x = [1.0, 3.0, 4.0, 10.0];
        let expect = [
            (0.0, 1.0),
            (0.025, 1.15),
            (0.1, 1.6),
            (0.5, 3.5),
            (0.975, 9.55),
            (1.0, 10.0),
        ];
        for (p, q) in expect {
            assert!((quantile_type7(&x, p) - q).abs() < 1e-12, "p={p}");
        }
        assert_eq!(quantile_type7(&[2.0], 0.3), 2.0);
    }

    /// pROC's bootstrap uses R's RNG, so only the distributions can agree, within Monte-Carlo error.
    /// A q-quantile of B resampled AUCs has SD ≈ sqrt(q(1−q)/B) / f, with f the density of the
    /// bootstrap distribution at that quantile. For aSAH the AUC's bootstrap SD is ≈ 0.05, so at the
    /// 2.5% point f ≈ φ(1.96)/0.05 ≈ 1.17 and, with B = 20,000, SD ≈ 0.0011/1.17 ≈ 0.0009 per run.
    /// Ours and pROC's are independent runs: their difference has SD ≈ 0.0013; 0.006 is > 4 SD
    /// (and 30 times smaller than the interval width, so a wrong method would still be caught).
    /// With B = 2000 the difference has SD ≈ 0.0042; 0.015 is > 3.5 SD.
    #[test]
    fn stratified_percentile_ci_agrees_with_proc_within_monte_carlo_error() {
        let d = asah();
        let g = proc_golden();
        for s in g["bootstrap"].as_array().expect("array") {
            let name = s["predictor"].as_str().expect("name");
            let scores = d.score(name);
            for (key, stratified) in [("stratified_20000", true), ("nonstratified_20000", false)] {
                let config = BootstrapConfig {
                    resamples: 20_000,
                    stratified,
                    ..BootstrapConfig::default()
                };
                let ci = bootstrap_ci(
                    &scores,
                    &d.poor,
                    None,
                    Direction::HigherIsPositive,
                    &config,
                    IntervalMethod::Percentile,
                )
                .expect("valid");
                let lo = s[key][0].as_f64().expect("lo");
                let hi = s[key][2].as_f64().expect("hi");
                assert!(
                    (ci.lo - lo).abs() < 0.006,
                    "{name} {key} lo ours {} pROC {lo}",
                    ci.lo
                );
                assert!(
                    (ci.hi - hi).abs() < 0.006,
                    "{name} {key} hi ours {} pROC {hi}",
                    ci.hi
                );
            }
            // 2000 resamples, the default: noisier, see the tolerance note above.
            let ci = bootstrap_ci(
                &scores,
                &d.poor,
                None,
                Direction::HigherIsPositive,
                &cfg(2000, 1),
                IntervalMethod::Percentile,
            )
            .expect("valid");
            let r = &s["stratified_2000"];
            assert!(
                (ci.lo - r[0].as_f64().expect("lo")).abs() < 0.015,
                "{name} lo 2000"
            );
            assert!(
                (ci.hi - r[2].as_f64().expect("hi")).abs() < 0.015,
                "{name} hi 2000"
            );
        }
    }

    /// pROC's paired bootstrap test (20,000 resamples): z = delta / sd(diffs). The sd of 20,000
    /// resamples has relative Monte-Carlo error ≈ 1/√(2B) ≈ 0.5%, so z (≈ 1.4) agrees to ≈ 0.01 per
    /// run; 0.05 allows for both runs with margin.
    #[test]
    fn paired_bootstrap_agrees_with_proc_roc_test() {
        let d = asah();
        let g = proc_golden();
        let t = &g["paired_bootstrap"];
        let r = paired_bootstrap(
            &d.score("s100b"),
            &d.score("ndka"),
            &d.poor,
            None,
            Direction::HigherIsPositive,
            &cfg(20_000, 3),
        )
        .expect("valid");
        let z = t["statistic"].as_f64().expect("z");
        assert!((r.z - z).abs() < 0.05, "ours {} pROC {z}", r.z);
        assert!((r.p - t["p"].as_f64().expect("p")).abs() < 0.01);
    }

    #[test]
    fn paired_resamples_reproduce_single_model_resamples() {
        let d = asah();
        let a = d.score("s100b");
        let b = d.score("wfns");
        let single = bootstrap_replicates(&[&a], &d.poor, None, Direction::default(), &cfg(300, 9))
            .expect("valid");
        let pair =
            bootstrap_replicates(&[&a, &b], &d.poor, None, Direction::default(), &cfg(300, 9))
                .expect("valid");
        assert_eq!(single.aucs[0], pair.aucs[0]);
        let p = pair.paired(0, 0);
        assert_eq!(
            (p.delta, p.sd, p.z, p.p, p.lo, p.hi),
            (0.0, 0.0, 0.0, 1.0, 0.0, 0.0)
        );
    }

    #[test]
    fn resample_aucs_match_a_direct_computation() {
        // Rebuild resample 0's rows from the same RNG stream and compute its AUC from scratch.
        let d = asah();
        let s = d.score("ndka");
        let reps = bootstrap_replicates(&[&s], &d.poor, None, Direction::default(), &cfg(5, 42))
            .expect("valid");
        let neg: Vec<usize> = (0..s.len()).filter(|&i| !d.poor[i]).collect();
        let pos: Vec<usize> = (0..s.len()).filter(|&i| d.poor[i]).collect();
        for b in 0..5u64 {
            let mut rng = crate::rng::Rng::indexed(42, b);
            let mut rows = Vec::new();
            for stratum in [&neg, &pos] {
                rng.draw_below(stratum.len() as u32, stratum.len(), |k| {
                    rows.push(stratum[k as usize])
                });
            }
            let rs: Vec<f64> = rows.iter().map(|&r| s[r]).collect();
            let ry: Vec<bool> = rows.iter().map(|&r| d.poor[r]).collect();
            let direct = auc(&rs, &ry, Direction::default()).expect("valid");
            assert_eq!(reps.aucs[0][b as usize], direct);
        }
    }

    #[test]
    fn cluster_resample_aucs_match_a_direct_computation() {
        // Patients with mixed outcomes across their rows; strata are "has a positive row" or not.
        let s = [0.3, 0.3, 0.1, 0.5, 0.5, 0.9, 0.2, 0.5, 0.3, 0.7, 0.4, 0.6];
        let y = [
            true, false, false, true, false, true, false, false, true, false, false, true,
        ];
        let ids = [5u64, 5, 9, 2, 2, 7, 9, 4, 7, 8, 8, 4];
        let reps = bootstrap_replicates(&[&s], &y, Some(&ids), Direction::default(), &cfg(50, 8))
            .expect("valid");
        assert!(reps.clustered);
        let mut units: Vec<(u64, Vec<usize>)> = Vec::new();
        for (row, id) in ids.iter().enumerate() {
            match units.iter_mut().find(|(u, _)| u == id) {
                Some((_, rows)) => rows.push(row),
                None => units.push((*id, vec![row])),
            }
        }
        let has_pos = |rows: &Vec<usize>| rows.iter().any(|&r| y[r]);
        let strata: Vec<Vec<&Vec<usize>>> = [false, true]
            .iter()
            .map(|&c| {
                units
                    .iter()
                    .map(|(_, r)| r)
                    .filter(|r| has_pos(r) == c)
                    .collect()
            })
            .collect();
        let mut k = 0;
        for b in 0..50u64 {
            let mut rng = crate::rng::Rng::indexed(8, b);
            let mut rows: Vec<usize> = Vec::new();
            for stratum in &strata {
                rng.draw_below(stratum.len() as u32, stratum.len(), |u| {
                    rows.extend_from_slice(stratum[u as usize])
                });
            }
            let rs: Vec<f64> = rows.iter().map(|&r| s[r]).collect();
            let ry: Vec<bool> = rows.iter().map(|&r| y[r]).collect();
            // A resample without a negative row is dropped by the engine too.
            if let Ok(direct) = auc(&rs, &ry, Direction::default()) {
                assert_eq!(reps.aucs[0][k], direct, "resample {b}");
                k += 1;
            }
        }
        assert_eq!(k, reps.used());
    }

    #[test]
    fn clusters_without_repeats_equal_row_resampling() {
        let d = asah();
        let s = d.score("s100b");
        let ids: Vec<u64> = (0..s.len() as u64).map(|i| i * 7 + 3).collect();
        let rows = bootstrap_ci(
            &s,
            &d.poor,
            None,
            Direction::default(),
            &cfg(200, 5),
            IntervalMethod::Percentile,
        )
        .expect("valid");
        let clus = bootstrap_ci(
            &s,
            &d.poor,
            Some(&ids),
            Direction::default(),
            &cfg(200, 5),
            IntervalMethod::Percentile,
        )
        .expect("valid");
        assert_eq!((rows.lo, rows.hi), (clus.lo, clus.hi));
        assert!(!clus.clustered);
    }

    #[test]
    fn cluster_resampling_takes_whole_patients() {
        // Every patient appears twice with identical rows: a cluster bootstrap resamples patients,
        // so each resample equals a row bootstrap of the de-duplicated data (same AUC), and the
        // intervals are wider than a row bootstrap that wrongly treats the copies as independent.
        let d = asah();
        let s = d.score("s100b");
        let mut s2 = Vec::new();
        let mut y2 = Vec::new();
        let mut ids = Vec::new();
        for (i, (&score, &poor)) in s.iter().zip(&d.poor).enumerate() {
            for _ in 0..2 {
                s2.push(score);
                y2.push(poor);
                ids.push(i as u64);
            }
        }
        let clustered = bootstrap_ci(
            &s2,
            &y2,
            Some(&ids),
            Direction::default(),
            &cfg(2000, 2),
            IntervalMethod::Percentile,
        )
        .expect("valid");
        let naive = bootstrap_ci(
            &s2,
            &y2,
            None,
            Direction::default(),
            &cfg(2000, 2),
            IntervalMethod::Percentile,
        )
        .expect("valid");
        assert!(clustered.clustered);
        assert_eq!(clustered.used, 2000);
        assert!(clustered.hi - clustered.lo > 1.25 * (naive.hi - naive.lo));
        // Cluster jackknife: leaving a patient out equals leaving the row out of the single copy.
        let jc = jackknife_aucs(&s2, &y2, Some(&ids), Direction::default()).expect("valid");
        let jr = jackknife_aucs(&s, &d.poor, None, Direction::default()).expect("valid");
        for (a, b) in jc.iter().zip(&jr) {
            assert!((a - b).abs() < 1e-15);
        }
    }

    #[test]
    fn jackknife_matches_recomputing_without_each_row() {
        let s = [0.3, 0.3, 0.1, 0.5, 0.5, 0.9, 0.2, 0.5, 0.3];
        let y = [true, false, false, true, false, true, false, false, true];
        let ids = [1u64, 1, 2, 3, 3, 4, 5, 5, 6];
        let jack = jackknife_aucs(&s, &y, Some(&ids), Direction::default()).expect("valid");
        let order = [1u64, 2, 3, 4, 5, 6];
        for (k, id) in order.iter().enumerate() {
            let keep: Vec<usize> = (0..s.len()).filter(|&i| ids[i] != *id).collect();
            let ks: Vec<f64> = keep.iter().map(|&i| s[i]).collect();
            let ky: Vec<bool> = keep.iter().map(|&i| y[i]).collect();
            let direct = auc(&ks, &ky, Direction::default()).expect("valid");
            assert!((jack[k] - direct).abs() < 1e-15, "cluster {id}");
        }
    }

    #[test]
    fn bca_reduces_to_percentile_without_bias_or_acceleration() {
        // Symmetric replicates around the estimate and a symmetric jackknife: z0 = 0, a = 0.
        let reps: Vec<f64> = (0..=100)
            .map(|i| 0.5 + (f64::from(i) - 50.0) / 1000.0)
            .collect();
        let jack = [0.49, 0.5, 0.51];
        let (lo, hi) = bca_interval(0.5, &reps, &jack, 0.9).expect("defined");
        let (plo, phi) = percentile_interval(&reps, 0.9);
        assert!((lo - plo).abs() < 1e-12 && (hi - phi).abs() < 1e-12);
        assert!(matches!(
            bca_interval(0.9, &reps, &jack, 0.9),
            Err(StatsError::BcaUndefined(_))
        ));
    }

    #[test]
    fn bca_interval_on_asah_is_close_to_percentile() {
        let d = asah();
        let s = d.score("s100b");
        let config = cfg(4000, 11);
        let p = bootstrap_ci(
            &s,
            &d.poor,
            None,
            Direction::default(),
            &config,
            IntervalMethod::Percentile,
        )
        .expect("valid");
        let b = bootstrap_ci(
            &s,
            &d.poor,
            None,
            Direction::default(),
            &config,
            IntervalMethod::Bca,
        )
        .expect("valid");
        assert_eq!(b.method, IntervalMethod::Bca);
        assert!(b.lo < b.auc && b.auc < b.hi);
        // Same resamples, small skew: the corrections move the bounds by well under 0.03.
        assert!(
            (b.lo - p.lo).abs() < 0.03 && (b.hi - p.hi).abs() < 0.03,
            "{b:?} {p:?}"
        );
    }

    #[test]
    fn nonstratified_bootstrap_drops_one_class_resamples() {
        let s = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.55];
        let y = [
            false, false, false, false, false, false, false, false, false, true,
        ];
        let config = BootstrapConfig {
            resamples: 500,
            stratified: false,
            ..BootstrapConfig::default()
        };
        let ci = bootstrap_ci(
            &s,
            &y,
            None,
            Direction::default(),
            &config,
            IntervalMethod::Percentile,
        )
        .expect("valid");
        // P(no positive in 10 draws) = 0.9^10 ≈ 0.35.
        assert!(ci.used < 400 && ci.used > 250, "{}", ci.used);
        assert_eq!(ci.used + (500 - ci.used), 500);
    }

    #[test]
    fn invalid_configs_are_typed_errors() {
        let s = [0.1, 0.9, 0.2, 0.8];
        let y = [false, true, false, true];
        assert_eq!(
            bootstrap_ci(
                &s,
                &y,
                None,
                Direction::default(),
                &cfg(1, 1),
                IntervalMethod::Percentile
            ),
            Err(StatsError::TooFewResamples(1))
        );
        let bad = BootstrapConfig {
            level: 0.0,
            ..BootstrapConfig::default()
        };
        assert_eq!(
            bootstrap_ci(
                &s,
                &y,
                None,
                Direction::default(),
                &bad,
                IntervalMethod::Percentile
            ),
            Err(StatsError::InvalidLevel(0.0))
        );
        assert_eq!(
            bootstrap_ci(
                &s,
                &y,
                Some(&[1, 2]),
                Direction::default(),
                &cfg(10, 1),
                IntervalMethod::Percentile
            ),
            Err(StatsError::ClusterLengthMismatch {
                found: 2,
                expected: 4
            })
        );
        // Perfect separation: every resample has AUC 1, so both intervals are the point [1, 1]
        // (ties with the estimate count ½ in BCa's z0, which is then 0, not ±∞).
        let perfect = bootstrap_ci(
            &s,
            &y,
            None,
            Direction::default(),
            &cfg(50, 1),
            IntervalMethod::Percentile,
        )
        .expect("valid");
        assert_eq!((perfect.lo, perfect.hi), (1.0, 1.0));
        let bca = bootstrap_ci(
            &s,
            &y,
            None,
            Direction::default(),
            &cfg(50, 1),
            IntervalMethod::Bca,
        )
        .expect("valid");
        assert_eq!((bca.lo, bca.hi), (1.0, 1.0));
    }

    fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool")
            .install(f)
    }

    fn sample() -> impl Strategy<Value = (Vec<f64>, Vec<f64>, Vec<bool>)> {
        (4usize..80).prop_flat_map(|n| {
            (
                proptest::collection::vec((0i32..12).prop_map(f64::from), n),
                proptest::collection::vec(-1.0f64..1.0, n),
                proptest::collection::vec(any::<bool>(), n),
            )
                .prop_filter("two of each class", |(_, _, y)| {
                    y.iter().filter(|&&l| l).count() >= 2 && y.iter().filter(|&&l| !l).count() >= 2
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn same_seed_gives_the_same_interval((a, _b, y) in sample(), seed in any::<u64>()) {
            let c = cfg(200, seed);
            let first = bootstrap_ci(&a, &y, None, Direction::default(), &c, IntervalMethod::Percentile).expect("valid");
            let second = bootstrap_ci(&a, &y, None, Direction::default(), &c, IntervalMethod::Percentile).expect("valid");
            prop_assert_eq!(first, second);
        }

        #[test]
        fn thread_count_never_changes_a_digit((a, b, y) in sample(), seed in any::<u64>(), stratified in any::<bool>()) {
            let c = BootstrapConfig { resamples: 300, seed, stratified, ..BootstrapConfig::default() };
            let one = with_threads(1, || bootstrap_replicates(&[&a, &b], &y, None, Direction::default(), &c));
            let two = with_threads(2, || bootstrap_replicates(&[&a, &b], &y, None, Direction::default(), &c));
            let four = with_threads(4, || bootstrap_replicates(&[&a, &b], &y, None, Direction::default(), &c));
            prop_assert_eq!(&one, &two);
            prop_assert_eq!(&one, &four);
            if let Ok(r) = one {
                let bits = |v: &Vec<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let r2 = two.expect("same");
                prop_assert_eq!(bits(&r.aucs[0]), bits(&r2.aucs[0]));
                prop_assert_eq!(bits(&r.aucs[1]), bits(&r2.aucs[1]));
            }
        }

        #[test]
        fn resampled_aucs_lie_in_unit_interval((a, _b, y) in sample()) {
            let r = bootstrap_replicates(&[&a], &y, None, Direction::default(), &cfg(100, 3)).expect("valid");
            prop_assert!(r.aucs[0].iter().all(|v| (0.0..=1.0).contains(v)));
            let ci = r.percentile_ci(0);
            prop_assert!(ci.lo <= ci.hi);
        }
    }
}
