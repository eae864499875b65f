//! Benchmark of the statistics module (a timing report, not a test):
//!
//!     cargo run --release --example bench_stats [-- N_SMALL N_LARGE N_DELONG B]
//!
//! Data are generated like the scikit-learn peer (`../shared/bench/peers/sklearn_bootstrap.py`):
//! y ~ Bernoulli(0.3), score = 1.2·y + N(0, 1), from the module's own RNG (Box–Muller), so the
//! AUC is ≈ 0.80 and scores are continuous (few ties). Each timing is the median of several runs.
//! Targets on a 2-core machine: 2000 stratified percentile resamples in ≤ 50 ms at n = 10,000 and
//! ≤ 0.5 s at n = 100,000; a paired two-model bootstrap ≤ 2× a single one; DeLong at n = 1,000,000
//! in ≤ 0.5 s.

use orchestrate::rng::Rng;
use orchestrate::stats::{
    BootstrapConfig, Direction, IntervalMethod, bootstrap_ci, delong_ci, delong_paired,
    paired_bootstrap,
};
use std::time::Instant;

fn synth(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<bool>) {
    let mut rng = Rng::indexed(seed, 0);
    let mut normal = move || {
        // Box–Muller; 1 − u avoids ln(0).
        let (u1, u2) = (1.0 - rng.uniform(), rng.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let mut y = Vec::with_capacity(n);
    let mut a = Vec::with_capacity(n);
    let mut b = Vec::with_capacity(n);
    for _ in 0..n {
        let pos = normal() < -0.524_400_512_708_041_1; // Φ⁻¹(0.3): P = 0.3
        let shift = if pos { 1.2 } else { 0.0 };
        y.push(pos);
        a.push(shift + normal());
        b.push(0.8 * shift + normal());
    }
    (a, b, y)
}

/// Median wall time in seconds of `runs` calls, and the last result.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        times.push(t.elapsed().as_secs_f64());
        last = Some(r);
    }
    times.sort_by(f64::total_cmp);
    (times[runs / 2], last.expect("runs > 0"))
}

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n_small = arg(1, 10_000);
    let n_large = arg(2, 100_000);
    let n_delong = arg(3, 1_000_000);
    let resamples = arg(4, 2000);
    let config = BootstrapConfig {
        resamples,
        ..BootstrapConfig::default()
    };
    println!(
        "threads={} resamples={resamples} (stratified percentile, seed 1)",
        rayon::current_num_threads()
    );
    let mut single = Vec::new();
    for &n in &[n_small, n_large] {
        let (a, b, y) = synth(n, 7);
        let runs = if n <= 20_000 { 9 } else { 3 };
        let (t1, ci) = time(runs, || {
            bootstrap_ci(
                &a,
                &y,
                None,
                Direction::HigherIsPositive,
                &config,
                IntervalMethod::Percentile,
            )
            .expect("valid data")
        });
        println!(
            "bootstrap_single n={n} seconds={t1:.4} auc={:.4} ci=({:.4},{:.4})",
            ci.auc, ci.lo, ci.hi
        );
        let (t2, p) = time(runs, || {
            paired_bootstrap(&a, &b, &y, None, Direction::HigherIsPositive, &config)
                .expect("valid data")
        });
        println!(
            "bootstrap_paired n={n} seconds={t2:.4} delta={:.4} ci=({:.4},{:.4}) ratio_to_single={:.2}",
            p.delta,
            p.lo,
            p.hi,
            t2 / t1
        );
        single.push(t1);
    }
    let (a, b, y) = synth(n_delong, 11);
    let (t, ci) = time(3, || {
        delong_ci(&a, &y, Direction::HigherIsPositive, 0.95).expect("valid data")
    });
    println!(
        "delong_single n={n_delong} seconds={t:.4} auc={:.4} ci=({:.4},{:.4})",
        ci.auc, ci.lo, ci.hi
    );
    let (t, d) = time(3, || {
        delong_paired(&a, &b, &y, Direction::HigherIsPositive, 0.95).expect("valid data")
    });
    println!(
        "delong_paired n={n_delong} seconds={t:.4} delta={:.4} p={:.3e}",
        d.delta, d.p
    );
}
