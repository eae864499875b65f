//! Throughput of training steps on CPU (a timing report, not a test):
//!
//!     cargo run --release --example bench_step -- pretrain|finetune small|paper [STEPS] [THREADS]
//!
//! Shapes, batch and optimizer follow the PyTorch peers (`bench/peers/torch_jepa.py`,
//! `bench/peers/torch_finetune.py`): random inputs, AdamW (lr 1e-3, weight decay 0.04), no
//! dropout, no clipping (the peers do not clip), one tokenizer shared per modality.
//! - `pretrain`: our full JEPA pretraining step (target encoder, context encoder, predictor,
//!   smooth-L1, backward, AdamW, EMA 0.996 and the collapse monitors), cross-modal masks
//!   alternating imaging → clinical and back.
//! - `finetune`: our supervised step ([`train_step`]: encoder over every token, masked mean pool,
//!   LayerNorm → Linear → GELU → Linear, BCE with logits, backward, AdamW), random 0/1 labels.
//!
//! Ten warmup steps, then STEPS timed steps (default 200).

use std::time::Instant;

use orchestrate::model::backend::CpuBackend;
use orchestrate::model::data::HostBatch;
use orchestrate::model::encoder::Dropout;
use orchestrate::model::heads::Classifier;
use orchestrate::model::jepa::{JepaSettings, JepaTrainer, MaskPlan};
use orchestrate::model::optim::AdamW;
use orchestrate::model::tokens::BatchTensors;
use orchestrate::model::train::train_step;
use orchestrate::model::{Arch, OptimSettings, PredictorArch, TokenizerKind};
use orchestrate::rng::Rng;

struct Shapes {
    t_img: usize,
    d_img: usize,
    t_clin: usize,
    d_clin: usize,
    dim: usize,
    depth: usize,
    heads: usize,
    mlp: usize,
    pdim: usize,
    pdepth: usize,
    batch: usize,
}

const SMALL: Shapes = Shapes {
    t_img: 5,
    d_img: 16,
    t_clin: 4,
    d_clin: 16,
    dim: 32,
    depth: 2,
    heads: 4,
    mlp: 64,
    pdim: 24,
    pdepth: 1,
    batch: 128,
};

const PAPER: Shapes = Shapes {
    t_img: 5,
    d_img: 128,
    t_clin: 8,
    d_clin: 250,
    dim: 256,
    depth: 4,
    heads: 8,
    mlp: 512,
    pdim: 128,
    pdepth: 2,
    batch: 256,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench_step pretrain|finetune small|paper [STEPS] [THREADS]";
    let step = args.first().map_or("", String::as_str).to_string();
    let name = args.get(1).map_or("small", String::as_str).to_string();
    let steps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let threads: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    let c = match name.as_str() {
        "small" => SMALL,
        "paper" => PAPER,
        other => {
            eprintln!("error: unknown config `{other}` (expected `small` or `paper`)\n{usage}");
            std::process::exit(2);
        }
    };
    if step != "pretrain" && step != "finetune" {
        eprintln!("error: unknown step `{step}` (expected `pretrain` or `finetune`)\n{usage}");
        std::process::exit(2);
    }
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        eprintln!("error: cannot set the thread pool: {e}");
        std::process::exit(1);
    }
    orchestrate::model::backend::tune_allocator();
    let arch = Arch {
        img_tokens: c.t_img,
        img_width: c.d_img,
        clin_tokens: c.t_clin,
        clin_width: c.d_clin,
        dim: c.dim,
        depth: c.depth,
        heads: c.heads,
        dim_head: c.dim / c.heads,
        mlp_dim: c.mlp,
        dropout: 0.0,
        // The PyTorch peers share one tokenizer per modality.
        tokenizer: TokenizerKind::PerModality,
    };
    let mut rng = Rng::stream(0, "bench-data");
    let host = HostBatch {
        size: c.batch,
        imaging: (0..c.batch * c.t_img * c.d_img)
            .map(|_| rng.normal() as f32)
            .collect(),
        clinical: (0..c.batch * c.t_clin * c.d_clin)
            .map(|_| rng.normal() as f32)
            .collect(),
        token_mask: vec![1.0; c.batch * (c.t_img + c.t_clin)],
        labels: (0..c.batch)
            .map(|_| f32::from(rng.uniform() < 0.5))
            .collect(),
    };
    let device = Default::default();
    let batch = BatchTensors::<CpuBackend>::from_host(
        &host,
        (c.t_img, c.d_img),
        (c.t_clin, c.d_clin),
        &device,
    );
    let mut run: Box<dyn FnMut(usize) -> f64> = if step == "pretrain" {
        let mut trainer = JepaTrainer::<CpuBackend>::new(jepa_settings(&c, arch), device);
        let plans = [
            MaskPlan::cross_modal(c.t_img, c.t_clin, true),
            MaskPlan::cross_modal(c.t_img, c.t_clin, false),
        ];
        Box::new(move |i| trainer.step(&batch, &plans[i % 2], 1e-3, 0.04, 0.996).loss)
    } else {
        let mut model = Some(Classifier::<CpuBackend>::new(
            &arch,
            &mut Rng::stream(0, "bench-init"),
            &device,
        ));
        let mut opt = AdamW::default();
        Box::new(move |_| {
            let m = model
                .take()
                .expect("the model is put back after every step");
            match train_step(m, &mut opt, &batch, &mut Dropout::none(), (1e-3, 0.04, 0.0)) {
                Ok((m, loss)) => {
                    model = Some(m);
                    loss
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(1);
                }
            }
        })
    };
    let mut last = 0.0;
    for i in 0..10 {
        last = run(i);
    }
    let t0 = Instant::now();
    for i in 0..steps {
        last = run(i);
    }
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "step={step} config={name} threads={threads} steps/s={:.1} samples/s={:.0} (last loss {last:.4})",
        steps as f64 / dt,
        (steps * c.batch) as f64 / dt
    );
}

fn jepa_settings(c: &Shapes, arch: Arch) -> JepaSettings {
    JepaSettings {
        arch,
        predictor: PredictorArch {
            pred_depth: c.pdepth,
            pred_emb_dim: c.pdim,
        },
        optim: OptimSettings {
            lr: 1e-3,
            start_lr: 1e-3,
            final_lr: 1e-3,
            warmup_steps: 0,
            cosine: false,
            weight_decay: 0.04,
            final_weight_decay: 0.04,
            clip_grad: 0.0,
        },
        epochs: 1,
        batch_size: c.batch,
        ema: (0.996, 0.996),
        cross_modal_prob: 1.0,
        mask_ratio: 0.5,
        collapse_std: 0.0,
        seed: 0,
    }
}
