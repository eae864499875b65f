//! The entry points the stage kinds call: pretrain (JEPA or supervised), train, predict. Each
//! takes plain data and a backend choice, runs on that backend and writes its checkpoint folder.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;

use super::backend::{BackendJob, DeviceInfo, device_info, run_on};
use super::checkpoint::{self, CheckpointKind, ModelCard};
use super::data::{Normalization, Prepared};
use super::heads::{Classifier, predict as predict_logits};
use super::jepa::{JepaOutcome, JepaSettings, pretrain};
use super::tokens::TokenEncoder;
use super::train::{TrainOutcome, TrainSettings, train_classifier};
use super::{Arch, ModelClass, ModelError, checkpoint::CHECKPOINT_FORMAT};
use crate::cohort::Cohort;
use crate::kinds::Backend;
use crate::rng::Rng;

/// Which encoder of a JEPA checkpoint initializes finetuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InitFrom {
    /// The EMA target encoder (I-JEPA's choice for downstream use).
    #[default]
    Target,
    /// The context encoder.
    Context,
}

impl InitFrom {
    pub fn role(self) -> &'static str {
        match self {
            InitFrom::Target => "target",
            InitFrom::Context => "context",
        }
    }
}

fn create(dir: &Path) -> Result<(), ModelError> {
    fs::create_dir_all(dir).map_err(ModelError::io("create", dir))
}

struct JepaJob<'a> {
    cohort: &'a Cohort,
    settings: JepaSettings,
    dir: &'a Path,
    log: &'a mut dyn FnMut(&str),
}

impl BackendJob for JepaJob<'_> {
    type Output = Result<JepaOutcome, ModelError>;
    fn run<B: AutodiffBackend>(self, device: B::Device, _info: &DeviceInfo) -> Self::Output {
        let norm = Normalization::fit(self.cohort);
        let data = Prepared::new(self.cohort, &norm, ModelClass::Multimodal)?;
        let (trainer, outcome) = pretrain::<B>(&data, &self.settings, &device, self.log)?;
        create(self.dir)?;
        let mut weights = BTreeMap::new();
        weights.insert(
            "target".to_string(),
            checkpoint::write_weights(self.dir, "target", &trainer.target)?,
        );
        weights.insert(
            "context".to_string(),
            checkpoint::write_weights(self.dir, "context", &trainer.online.context.valid())?,
        );
        weights.insert(
            "predictor".to_string(),
            checkpoint::write_weights(self.dir, "predictor", &trainer.online.predictor.valid())?,
        );
        checkpoint::write_card(
            self.dir,
            &ModelCard {
                format: CHECKPOINT_FORMAT,
                kind: CheckpointKind::Jepa,
                model_class: ModelClass::Multimodal,
                arch: self.settings.arch.clone(),
                predictor: Some(self.settings.predictor),
                normalization: norm,
                weights,
            },
        )?;
        Ok(outcome)
    }
}

/// JEPA pretraining on `cohort` (labels unused); writes the checkpoint into `dir`.
pub fn pretrain_jepa(
    backend: Backend,
    cohort: &Cohort,
    settings: JepaSettings,
    dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(JepaOutcome, DeviceInfo), ModelError> {
    let info = device_info(backend);
    let out = run_on(
        backend,
        JepaJob {
            cohort,
            settings,
            dir,
            log,
        },
    )??;
    Ok((out, info))
}

/// Where an initial encoder comes from.
pub struct Init<'a> {
    pub dir: &'a Path,
    pub from: InitFrom,
}

struct TrainJob<'a> {
    cohort: &'a Cohort,
    class: ModelClass,
    settings: TrainSettings,
    init: Option<Init<'a>>,
    kind: CheckpointKind,
    dir: &'a Path,
    log: &'a mut dyn FnMut(&str),
}

impl BackendJob for TrainJob<'_> {
    type Output = Result<TrainOutcome, ModelError>;
    fn run<B: AutodiffBackend>(self, device: B::Device, _info: &DeviceInfo) -> Self::Output {
        let mut settings = self.settings;
        let (norm, init_encoder) = match &self.init {
            None => (Normalization::fit(self.cohort), None),
            Some(init) => {
                let card = checkpoint::read_card(init.dir)?;
                // The pretrained architecture wins over the config's.
                settings.arch = Arch {
                    dropout: settings.arch.dropout,
                    ..card.arch.clone()
                };
                let mut rng = Rng::stream(settings.seed, "train-init");
                let encoder = match card.kind {
                    CheckpointKind::Jepa => {
                        let fresh = TokenEncoder::<B>::new(&settings.arch, &mut rng, &device);
                        (self.log)(&format!(
                            "initializing from the JEPA {} encoder",
                            init.from.role()
                        ));
                        checkpoint::read_weights(init.dir, &card, init.from.role(), fresh, &device)?
                    }
                    CheckpointKind::Supervised | CheckpointKind::Classifier => {
                        let fresh = Classifier::<B>::new(&settings.arch, &mut rng, &device);
                        (self.log)(
                            "initializing from a supervised encoder (`init_from` does not apply)",
                        );
                        checkpoint::read_weights(init.dir, &card, "classifier", fresh, &device)?
                            .encoder
                    }
                };
                (card.normalization, Some(encoder))
            }
        };
        let data = Prepared::new(self.cohort, &norm, self.class)?;
        let (best, outcome) =
            train_classifier::<B>(&data, init_encoder, &settings, &device, self.log)?;
        create(self.dir)?;
        let mut weights = BTreeMap::new();
        weights.insert(
            "classifier".to_string(),
            checkpoint::write_weights(self.dir, "classifier", &best)?,
        );
        checkpoint::write_card(
            self.dir,
            &ModelCard {
                format: CHECKPOINT_FORMAT,
                kind: self.kind,
                model_class: self.class,
                arch: settings.arch,
                predictor: None,
                normalization: norm,
                weights,
            },
        )?;
        Ok(outcome)
    }
}

/// Supervised training of a `class` classifier on the labeled `cohort`, from scratch or from
/// `init`; writes the best checkpoint into `dir`. `supervised_pretrain` marks the checkpoint as a
/// pretrained one (for `train` to finetune).
#[allow(clippy::too_many_arguments)]
pub fn train(
    backend: Backend,
    cohort: &Cohort,
    class: ModelClass,
    init: Option<Init<'_>>,
    settings: TrainSettings,
    supervised_pretrain: bool,
    dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(TrainOutcome, DeviceInfo), ModelError> {
    let info = device_info(backend);
    let kind = if supervised_pretrain {
        CheckpointKind::Supervised
    } else {
        CheckpointKind::Classifier
    };
    let out = run_on(
        backend,
        TrainJob {
            cohort,
            class,
            settings,
            init,
            kind,
            dir,
            log,
        },
    )??;
    Ok((out, info))
}

struct PredictJob<'a> {
    dir: &'a Path,
    cohorts: &'a [(String, Cohort)],
}

impl BackendJob for PredictJob<'_> {
    type Output = Result<(ModelCard, Vec<Vec<f32>>), ModelError>;
    fn run<B: AutodiffBackend>(self, device: B::Device, _info: &DeviceInfo) -> Self::Output {
        let card = checkpoint::read_card(self.dir)?;
        let mut rng = Rng::stream(0, "predict-shell");
        let shell = Classifier::<B::InnerBackend>::new(&card.arch, &mut rng, &device);
        let role = match card.kind {
            CheckpointKind::Jepa => {
                return Err(ModelError::Checkpoint(format!(
                    "`{}` is a JEPA checkpoint without a classifier head: predict from a `train` stage",
                    self.dir.display()
                )));
            }
            _ => "classifier",
        };
        let model = checkpoint::read_weights(self.dir, &card, role, shell, &device)?;
        let mut out = Vec::new();
        for (_, c) in self.cohorts {
            let data = Prepared::new(c, &card.normalization, card.model_class)?;
            out.push(predict_logits(&model, &data, 256, &device)?);
        }
        Ok((card, out))
    }
}

/// Logits of every patient of each cohort, in cohort order, with the model's card.
pub fn predict(
    backend: Backend,
    dir: &Path,
    cohorts: &[(String, Cohort)],
) -> Result<(ModelCard, Vec<Vec<f32>>, DeviceInfo), ModelError> {
    let info = device_info(backend);
    let (card, scores) = run_on(backend, PredictJob { dir, cohorts })??;
    Ok((card, scores, info))
}
