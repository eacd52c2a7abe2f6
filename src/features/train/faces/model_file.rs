//! The generator's file, both ways: reading the Faces model (a PyTorch zip checkpoint or a
//! safetensors file) as the starting point of fine-tuning, and exporting a trained generator
//! as `.safetensors` with exactly the tensor names and layouts Faces reads (`main.0.weight`,
//! `main.1.weight`/`bias`/`running_mean`/`running_var`/`num_batches_tracked`, …), so the
//! Faces panel, `atelier faces --model` and PyTorch's `load_state_dict` all take it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::models::dcgan::{self, CHECKPOINT_KEY};
use crate::models::gan::stack::{Stack, TensorSource};
use crate::models::gan::{Direction, GanShape, Generator, NamedTensor, ShapeError};
use crate::models::pickle::StorageDType;
use crate::models::state_dict::{self, TensorEntry, WeightsError};

/// Why a generator file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// The file could not be read as weights.
    #[error(transparent)]
    Read(#[from] WeightsError),
    /// The tensors do not make this generator.
    #[error("{}: {source}; expected the Faces DCGAN generator", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: ShapeError,
    },
    /// Writing failed (the previous file at that path, if any, is intact).
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The exported file does not load back in Faces.
    #[error("the exported generator {} does not load in Faces: {reason}", path.display())]
    Verify {
        /// The file.
        path: PathBuf,
        /// What the Faces loader said.
        reason: String,
    },
}

/// The generator in `path` (the Faces model, or a file exported here), with its BatchNorm
/// running statistics.
pub fn load_generator(path: &Path, shape: GanShape) -> Result<Generator, ModelFileError> {
    let sd = state_dict::load(path, Some(CHECKPOINT_KEY))?;
    let mut tensors = BTreeMap::new();
    let mut batches = BTreeMap::new();
    for (name, t) in &sd {
        if let Some(v) = t.to_f32() {
            tensors.insert(
                name.clone(),
                NamedTensor {
                    name: name.clone(),
                    shape: t.shape.clone(),
                    values: v,
                },
            );
        } else if let Some(n) = t.to_i64().and_then(|v| v.first().copied()) {
            batches.insert(name.clone(), n);
        }
    }
    Generator::from_tensors(shape, &tensors, &batches).map_err(|source| ModelFileError::Shape {
        path: path.to_path_buf(),
        source,
    })
}

/// An f32 tensor whose bytes are `values` converted by `convert` when written.
pub(super) fn f32_entry<'a>(
    name: String,
    shape: Vec<usize>,
    values: &'a [f32],
    convert: impl Fn(&[f32]) -> Vec<f32> + 'a,
) -> TensorEntry<'a> {
    TensorEntry {
        name,
        dtype: StorageDType::F32,
        shape,
        write: Box::new(move |out: &mut Vec<u8>| {
            out.extend(convert(values).iter().flat_map(|v| v.to_le_bytes()));
        }),
    }
}

/// A network's state dict, names prefixed with `prefix` (e.g. `g.` in a checkpoint, nothing
/// in a Faces file): weights converted to PyTorch's layouts as they are written, BatchNorm
/// statistics as they are, counters as i64 scalars.
pub(super) fn network_entries<'a, D: Direction>(
    out: &mut Vec<TensorEntry<'a>>,
    prefix: &str,
    layers: &'a Stack<D>,
) {
    let (names, batches) = layers.tensor_names();
    for (name, source) in names {
        let name = format!("{prefix}{name}");
        out.push(match source {
            TensorSource::Conv(conv) => {
                let layout = conv.layout();
                f32_entry(name, layout.torch_shape(), &conv.weight.value, move |v| {
                    layout.to_torch(v)
                })
            }
            TensorSource::Vector(v) => f32_entry(name, vec![v.len()], v, <[f32]>::to_vec),
        });
    }
    for (name, n) in batches {
        out.push(TensorEntry {
            name: format!("{prefix}{name}"),
            dtype: StorageDType::I64,
            shape: vec![],
            write: Box::new(move |o: &mut Vec<u8>| o.extend_from_slice(&n.to_le_bytes())),
        });
    }
}

/// The bytes of `g` as a Faces `.safetensors` file.
pub fn generator_bytes(g: &Generator) -> Vec<u8> {
    let mut entries = Vec::new();
    network_entries(&mut entries, "", &g.layers);
    let mut meta = BTreeMap::new();
    // What `safetensors.torch.save_file` writes, so PyTorch tools recognise the file.
    meta.insert("format".to_owned(), "pt".to_owned());
    state_dict::safetensors_from_entries(entries, &meta)
}

/// Writes `g` to `path` atomically and, for the Faces widths, checks that the Faces loader
/// accepts the file.
pub fn export(g: &Generator, path: &Path) -> Result<(), ModelFileError> {
    crate::fsutil::atomic_write(path, &generator_bytes(g)).map_err(|source| {
        ModelFileError::Write {
            path: path.to_path_buf(),
            source,
        }
    })?;
    if g.shape == GanShape::FACES {
        dcgan::Generator::load(path).map_err(|e| ModelFileError::Verify {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}
