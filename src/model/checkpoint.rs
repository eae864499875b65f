//! Checkpoints: a folder with `model.json` (what the model is: kind, class, architecture,
//! normalization, and for each weights file the parameter shapes in visit order) and one or more
//! weights files of raw little-endian `f32` values in module visit order. Byte-deterministic:
//! no timestamps, no random parameter ids, no float formatting of weights.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::data::Normalization;
use super::{Arch, ModelClass, ModelError, PredictorArch};

pub const CHECKPOINT_FORMAT: u32 = 1;
pub const CARD: &str = "model.json";

/// What a checkpoint folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointKind {
    /// JEPA pretraining: `target` and `context` token encoders (and the `predictor`).
    Jepa,
    /// Supervised pretraining: a classifier whose encoder is `context`.
    Supervised,
    /// A finetuned or from-scratch classifier: `classifier`.
    Classifier,
}

/// One weights file: its name and the shape of each parameter in visit order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsFile {
    pub file: String,
    pub shapes: Vec<Vec<usize>>,
}

/// `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: u32,
    pub kind: CheckpointKind,
    pub model_class: ModelClass,
    pub arch: Arch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictor: Option<PredictorArch>,
    pub normalization: Normalization,
    /// Role (`target`, `context`, `predictor`, `classifier`) → weights file.
    pub weights: BTreeMap<String, WeightsFile>,
}

struct Dump<B: Backend> {
    shapes: Vec<Vec<usize>>,
    tensors: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Dump<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let dims = t.dims();
        self.shapes.push(dims.to_vec());
        self.tensors
            .push(t.reshape([dims.iter().product::<usize>()]));
    }
}

/// A module's parameters as (shapes, little-endian f32 bytes).
pub fn to_bytes<B: Backend, M: Module<B>>(m: &M) -> Result<(Vec<Vec<usize>>, Vec<u8>), ModelError> {
    let mut d = Dump {
        shapes: Vec::new(),
        tensors: Vec::new(),
    };
    m.visit(&mut d);
    let mut bytes = Vec::new();
    for t in d.tensors {
        for v in super::to_vec(t)? {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok((d.shapes, bytes))
}

struct Load<'a, B: Backend> {
    shapes: &'a [Vec<usize>],
    values: &'a [f32],
    index: usize,
    offset: usize,
    device: B::Device,
    error: Option<String>,
}

impl<B: Backend> ModuleMapper<B> for Load<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let dims = tensor.dims();
        let i = self.index;
        self.index += 1;
        if self.error.is_some() {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        match self.shapes.get(i) {
            Some(s) if s.as_slice() == dims.as_slice() => {}
            other => {
                self.error = Some(format!(
                    "parameter {i} has shape {dims:?} in the model but {other:?} in the checkpoint"
                ));
                return Param::from_mapped_value(id, tensor, mapper);
            }
        }
        let n: usize = dims.iter().product();
        let Some(vals) = self.values.get(self.offset..self.offset + n) else {
            self.error = Some("the weights file is shorter than its shapes say".to_string());
            return Param::from_mapped_value(id, tensor, mapper);
        };
        self.offset += n;
        let grad = tensor.is_require_grad();
        let mut t = Tensor::<B, D>::from_data(TensorData::new(vals.to_vec(), dims), &self.device);
        if grad {
            t = t.require_grad();
        }
        Param::from_mapped_value(id, t, mapper)
    }
}

/// Replaces `m`'s parameters (visit order) with `bytes`, checking every shape.
pub fn from_bytes<B: Backend, M: Module<B>>(
    m: M,
    shapes: &[Vec<usize>],
    bytes: &[u8],
    device: &B::Device,
) -> Result<M, ModelError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(ModelError::Checkpoint(
            "the weights file is not a whole number of f32 values".to_string(),
        ));
    }
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut l = Load {
        shapes,
        values: &values,
        index: 0,
        offset: 0,
        device: device.clone(),
        error: None,
    };
    let m = m.map(&mut l);
    if let Some(e) = l.error {
        return Err(ModelError::Checkpoint(e));
    }
    if l.index != shapes.len() || l.offset != values.len() {
        return Err(ModelError::Checkpoint(format!(
            "the checkpoint holds {} parameters ({} values) but the model has {} ({} values)",
            shapes.len(),
            values.len(),
            l.index,
            l.offset
        )));
    }
    Ok(m)
}

/// Writes `m` as `dir/<role>.f32` and returns its entry for the card.
pub fn write_weights<B: Backend, M: Module<B>>(
    dir: &Path,
    role: &str,
    m: &M,
) -> Result<WeightsFile, ModelError> {
    let (shapes, bytes) = to_bytes(m)?;
    let file = format!("{role}.f32");
    let p = dir.join(&file);
    fs::write(&p, bytes).map_err(ModelError::io("write", &p))?;
    Ok(WeightsFile { file, shapes })
}

/// Loads the weights of `role` into `m`.
pub fn read_weights<B: Backend, M: Module<B>>(
    dir: &Path,
    card: &ModelCard,
    role: &str,
    m: M,
    device: &B::Device,
) -> Result<M, ModelError> {
    let w = card.weights.get(role).ok_or_else(|| {
        ModelError::Checkpoint(format!(
            "checkpoint `{}` has no `{role}` weights (it has: {})",
            dir.display(),
            card.weights.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let p = dir.join(&w.file);
    let bytes = fs::read(&p).map_err(ModelError::io("read", &p))?;
    from_bytes(m, &w.shapes, &bytes, device)
        .map_err(|e| ModelError::Checkpoint(format!("checkpoint `{}`: {e}", p.display())))
}

pub fn write_card(dir: &Path, card: &ModelCard) -> Result<(), ModelError> {
    let p = dir.join(CARD);
    let bytes = serde_json::to_vec_pretty(card).expect("a model card serializes");
    fs::write(&p, bytes).map_err(ModelError::io("write", &p))
}

pub fn read_card(dir: &Path) -> Result<ModelCard, ModelError> {
    let p = dir.join(CARD);
    let bytes = fs::read(&p).map_err(ModelError::io("read", &p))?;
    let card: ModelCard = serde_json::from_slice(&bytes).map_err(|e| {
        ModelError::Checkpoint(format!("`{}` is not a model card: {e}", p.display()))
    })?;
    if card.format != CHECKPOINT_FORMAT {
        return Err(ModelError::Checkpoint(format!(
            "`{}` has checkpoint format {} (this binary reads {CHECKPOINT_FORMAT})",
            p.display(),
            card.format
        )));
    }
    Ok(card)
}
