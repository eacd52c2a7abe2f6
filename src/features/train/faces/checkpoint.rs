//! Checkpoints: everything a run needs to continue exactly where it was — generator,
//! discriminator (BatchNorm running statistics included), both Adam states, the step and the
//! run's settings — in one safetensors file, in PyTorch's names and layouts (a PyTorch user
//! can load the networks from it too).
//!
//! Files are named `checkpoint-<step>.safetensors` inside the run's folder and written with
//! [`crate::fsutil::atomic_write`] (a temporary file, flushed, renamed): killed at any moment,
//! the folder holds the previous complete checkpoint, never a torn one. The newest two are
//! kept; [`latest`] loads the newest that reads back, falling back to the one before.
//! No random-generator state is needed: every step's draws derive from (seed, step) (see
//! [`crate::models::gan::rng`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::TrainSettings;
use super::model_file::{f32_entry, network_entries};
use crate::models::gan::{
    Adam, AdamConfig, Discriminator, GanTrainer, Generator, NamedTensor, ParamSpec, ShapeError,
};
use crate::models::state_dict::{self, StateDict, TensorEntry};

/// `format` in the metadata of every checkpoint.
pub const FORMAT: &str = "atelier-train-faces-checkpoint";
/// Version of the layout below.
const VERSION: &str = "1";
/// Checkpoints kept in a run folder.
pub const KEEP: usize = 2;

/// Why a checkpoint could not be written or read. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Writing failed (disk full, read-only folder, …); the previous checkpoint is intact.
    #[error(
        "cannot write the checkpoint {}: {source} (the previous checkpoint, if any, is intact)",
        path.display()
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a readable checkpoint.
    #[error("{} is not a usable checkpoint: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The run folder holds no checkpoint that reads back.
    #[error("{} holds no usable checkpoint{}", dir.display(), last_reason(reasons))]
    NoneUsable {
        /// The run folder.
        dir: PathBuf,
        /// Why each candidate failed.
        reasons: Vec<String>,
    },
}

fn last_reason(reasons: &[String]) -> String {
    reasons
        .first()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
}

/// A checkpoint as read back.
#[derive(Debug)]
pub struct Loaded {
    /// The step it was written after.
    pub step: u64,
    /// The run's settings as they were.
    pub settings: TrainSettings,
    /// The networks and optimizers.
    pub trainer: GanTrainer,
    /// The file.
    pub path: PathBuf,
}

/// The file name of the checkpoint after `step`.
pub fn file_name(step: u64) -> String {
    format!("checkpoint-{step:08}.safetensors")
}

fn step_of(name: &str) -> Option<u64> {
    name.strip_prefix("checkpoint-")?
        .strip_suffix(".safetensors")?
        .parse()
        .ok()
}

/// The checkpoints in `dir`, newest first.
pub fn list(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| Some((step_of(&e.file_name().to_string_lossy())?, e.path())))
        .collect();
    out.sort_by_key(|b| std::cmp::Reverse(b.0));
    out
}

/// An optimizer's moments under `prefix.exp_avg.<param>` and `prefix.exp_avg_sq.<param>`.
fn adam_entries<'a>(
    out: &mut Vec<TensorEntry<'a>>,
    prefix: &str,
    specs: Vec<ParamSpec>,
    adam: &'a Adam,
) {
    for ((spec, m), v) in specs.into_iter().zip(&adam.m).zip(&adam.v) {
        for (kind, values) in [("exp_avg", m), ("exp_avg_sq", v)] {
            let spec = spec.clone();
            let name = format!("{prefix}.{kind}.{}", spec.name());
            out.push(f32_entry(name, spec.torch_shape(), values, move |x| {
                spec.to_torch(x)
            }));
        }
    }
}

/// The checkpoint file's bytes.
pub fn to_bytes(step: u64, trainer: &GanTrainer, settings: &TrainSettings) -> Vec<u8> {
    let mut entries = Vec::new();
    network_entries(&mut entries, "g.", &trainer.g.layers);
    network_entries(&mut entries, "d.", &trainer.d.layers);
    adam_entries(
        &mut entries,
        "opt_g",
        trainer.g.layers.param_specs(),
        &trainer.opt_g,
    );
    adam_entries(
        &mut entries,
        "opt_d",
        trainer.d.layers.param_specs(),
        &trainer.opt_d,
    );
    let mut meta = BTreeMap::new();
    meta.insert("format".into(), FORMAT.into());
    meta.insert("version".into(), VERSION.into());
    meta.insert("step".into(), step.to_string());
    meta.insert("opt_g_step".into(), trainer.opt_g.step.to_string());
    meta.insert("opt_d_step".into(), trainer.opt_d.step.to_string());
    meta.insert(
        "settings".into(),
        serde_json::to_string(settings).unwrap_or_default(),
    );
    state_dict::safetensors_from_entries(entries, &meta)
}

/// Writes the checkpoint after `step` into `dir` atomically, then removes all but the newest
/// [`KEEP`] checkpoints. Returns the file.
pub fn save(
    dir: &Path,
    step: u64,
    trainer: &GanTrainer,
    settings: &TrainSettings,
) -> Result<PathBuf, CheckpointError> {
    let path = dir.join(file_name(step));
    let bytes = to_bytes(step, trainer, settings);
    crate::fsutil::atomic_write(&path, &bytes).map_err(|source| CheckpointError::Write {
        path: path.clone(),
        source,
    })?;
    for (_, old) in list(dir).into_iter().skip(KEEP) {
        if let Err(e) = std::fs::remove_file(&old) {
            tracing::warn!("cannot remove the old checkpoint {}: {e}", old.display());
        }
    }
    Ok(path)
}

/// Splits `prefix.*` tensors into f32 tensors and i64 counters (prefix removed).
fn network(sd: &StateDict, prefix: &str) -> (BTreeMap<String, NamedTensor>, BTreeMap<String, i64>) {
    let mut tensors = BTreeMap::new();
    let mut batches = BTreeMap::new();
    for (name, t) in sd {
        let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        if let Some(v) = t.to_f32() {
            tensors.insert(
                rest.to_owned(),
                NamedTensor {
                    name: rest.to_owned(),
                    shape: t.shape.clone(),
                    values: v,
                },
            );
        } else if let Some(n) = t.to_i64().and_then(|v| v.first().copied()) {
            batches.insert(rest.to_owned(), n);
        }
    }
    (tensors, batches)
}

/// Adam's first and second moments, one vector per parameter.
type Moments = (Vec<Vec<f32>>, Vec<Vec<f32>>);

fn adam_state(sd: &StateDict, prefix: &str, specs: &[ParamSpec]) -> Result<Moments, ShapeError> {
    let (tensors, _) = network(sd, prefix);
    let mut m = Vec::with_capacity(specs.len());
    let mut v = Vec::with_capacity(specs.len());
    for spec in specs {
        let shape = spec.torch_shape();
        let get = |kind: &str| {
            crate::models::gan::take_tensor(&tensors, &format!("{kind}.{}", spec.name()), &shape)
                .map(|t| spec.from_torch(t))
        };
        m.push(get("exp_avg")?);
        v.push(get("exp_avg_sq")?);
    }
    Ok((m, v))
}

/// Reads one checkpoint file; `adam` gives the learning rate and betas to continue with.
pub fn load(path: &Path, adam: AdamConfig) -> Result<Loaded, CheckpointError> {
    let invalid = |reason: String| CheckpointError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let (sd, meta) =
        state_dict::load_safetensors_with_metadata(path).map_err(|e| invalid(e.to_string()))?;
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(invalid("not an Atelier face-training checkpoint".into()));
    }
    let num = |key: &str| -> Result<u64, CheckpointError> {
        meta.get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| invalid(format!("metadata {key} is missing or not a number")))
    };
    let step = num("step")?;
    let settings: TrainSettings = meta
        .get("settings")
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| invalid("its settings are missing or unreadable".into()))?;
    let shape_err = |e: ShapeError| invalid(e.to_string());
    let (gt, gb) = network(&sd, "g");
    let g = Generator::from_tensors(settings.shape, &gt, &gb).map_err(shape_err)?;
    let (dt, db) = network(&sd, "d");
    let d = Discriminator::from_tensors(settings.shape, &dt, &db).map_err(shape_err)?;
    let mut trainer = GanTrainer::new(g, d, adam);
    let (m, v) = adam_state(&sd, "opt_g", &trainer.g.layers.param_specs()).map_err(shape_err)?;
    trainer.opt_g.m = m;
    trainer.opt_g.v = v;
    trainer.opt_g.step = num("opt_g_step")?;
    let (m, v) = adam_state(&sd, "opt_d", &trainer.d.layers.param_specs()).map_err(shape_err)?;
    trainer.opt_d.m = m;
    trainer.opt_d.v = v;
    trainer.opt_d.step = num("opt_d_step")?;
    Ok(Loaded {
        step,
        settings,
        trainer,
        path: path.to_path_buf(),
    })
}

/// The newest checkpoint in `dir` that reads back (a damaged newest one falls back to the
/// one before, with a warning).
pub fn latest(dir: &Path, adam: AdamConfig) -> Result<Loaded, CheckpointError> {
    let mut reasons = Vec::new();
    for (_, path) in list(dir) {
        match load(&path, adam) {
            Ok(l) => return Ok(l),
            Err(e) => {
                tracing::warn!("{e}; trying the previous checkpoint");
                reasons.push(e.to_string());
            }
        }
    }
    Err(CheckpointError::NoneUsable {
        dir: dir.to_path_buf(),
        reasons,
    })
}
