//! Writes the example "real" cohort of `experiments/real-cohort-example.yaml`: synthetic patients
//! from the `synth` generator (seed 2024), saved in the lab's CSV layout with some earlier
//! sessions and, in the incomplete split, missing modalities, so the `cohort` stage has every
//! case to handle.
//!
//! ```text
//! cargo run --example make_real_cohort -- experiments/data/real-cohort
//! ```

use std::path::PathBuf;

use orchestrate::stages::cohort::write_lab_layout;
use orchestrate::synth::{SynthConfig, generate};

/// Seed of the example cohort.
const SEED: u64 = 2024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "experiments/data/real-cohort".to_string()),
    );
    let cfg = SynthConfig {
        n_unlabeled: 0,
        n_incomplete: 60,
        n_finetune: 60,
        n_internal: 100,
        n_external: 100,
        img_width: 8,
        clin_tokens: 4,
        clin_width: 8,
        ..SynthConfig::default()
    };
    let study = generate(&cfg, SEED);
    for cohort in study.cohorts.iter().filter(|c| c.name != "unlabeled") {
        // Every fifth patient has one earlier session, every eleventh two.
        let earlier: Vec<u32> = (0..cohort.n)
            .map(|i| match (i % 11, i % 5) {
                (0, _) => 2,
                (_, 0) => 1,
                _ => 0,
            })
            .collect();
        write_lab_layout(&dir, &cohort.name, cohort, &earlier, Some(3))?;
        println!("{}: {} patients", cohort.name, cohort.n);
    }
    Ok(())
}
