//! What an adapter is checked against: the base model's architecture and the shapes of the
//! projections it may adapt, read from the base GGUF's header (no tensor data).

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Content;

use super::{LoraAdapter, LoraError, LoraTarget};

/// The shape of a base model as far as adapters are concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseShapes {
    /// `general.architecture` of the base model.
    pub architecture: String,
    /// Number of blocks (`<arch>.block_count`, else one past the highest `blk.N`).
    pub layers: usize,
    /// `(layer, target)` → `(n_out, n_in)` of `blk.N.<target>.weight`.
    pub projections: BTreeMap<(usize, LoraTarget), (usize, usize)>,
}

impl BaseShapes {
    /// Reads the shapes from a base model's parsed GGUF header.
    pub fn from_content(content: &Content) -> Self {
        let architecture =
            crate::models::llm::gguf::metadata_string(content, "general.architecture")
                .unwrap_or_default();
        let mut projections = BTreeMap::new();
        for (name, info) in &content.tensor_infos {
            let Some((layer, target)) = parse_base_name(name) else {
                continue;
            };
            // candle lists dims outermost first: (rows = n_out, cols = n_in).
            if let [n_out, n_in] = info.shape.dims() {
                projections.insert((layer, target), (*n_out, *n_in));
            }
        }
        let from_tensors = projections.keys().map(|(l, _)| l + 1).max().unwrap_or(0);
        let layers =
            crate::models::llm::gguf::metadata_u64(content, &format!("{architecture}.block_count"))
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(from_tensors);
        Self {
            architecture,
            layers,
            projections,
        }
    }

    /// Checks the adapter's header against this base: same architecture, every pair on a
    /// projection the base has, with its shape. `path` names the adapter in errors.
    pub fn check(&self, path: &Path, adapter: &LoraAdapter) -> Result<(), LoraError> {
        self.check_architecture(path, &adapter.architecture)?;
        for p in &adapter.pairs {
            self.check_pair(path, p.layer, p.target, p.n_out, p.n_in)?;
        }
        Ok(())
    }

    /// Checks the architecture name.
    pub fn check_architecture(&self, path: &Path, adapter_arch: &str) -> Result<(), LoraError> {
        if adapter_arch != self.architecture {
            return Err(LoraError::Architecture {
                path: path.to_path_buf(),
                adapter: adapter_arch.to_string(),
                base: self.architecture.clone(),
            });
        }
        Ok(())
    }

    /// Checks one pair's place and shape; errors name the half at fault (`lora_a` holds the
    /// inputs, `lora_b` the outputs).
    pub fn check_pair(
        &self,
        path: &Path,
        layer: usize,
        target: LoraTarget,
        n_out: usize,
        n_in: usize,
    ) -> Result<(), LoraError> {
        let base_name = format!("blk.{layer}.{}.weight", target.gguf_name());
        let half = |part: &str, detail: String| LoraError::Tensor {
            path: path.to_path_buf(),
            tensor: format!("{base_name}.{part}"),
            detail,
        };
        let err = |detail: String| half("lora_a", detail);
        if layer >= self.layers {
            return Err(err(format!(
                "is for layer {layer}, but the base model has {} layers (blk.0 to blk.{}); the adapter is for another model",
                self.layers,
                self.layers.saturating_sub(1)
            )));
        }
        let Some(&(want_out, want_in)) = self.projections.get(&(layer, target)) else {
            return Err(err(format!(
                "adapts {base_name}, which the base model does not have"
            )));
        };
        if (n_out, n_in) != (want_out, want_in) {
            let part = if n_in != want_in { "lora_a" } else { "lora_b" };
            return Err(half(
                part,
                format!(
                    "adapts a {n_out}x{n_in} projection, but the base model's {base_name} is {want_out}x{want_in} (outputs x inputs); the adapter is for another model"
                ),
            ));
        }
        Ok(())
    }
}

/// `blk.N.<target>.weight` → `(N, target)`.
pub fn parse_base_name(name: &str) -> Option<(usize, LoraTarget)> {
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let target = rest.strip_suffix(".weight")?;
    // Reject "+1", "01" and the like: the name must be exactly what a writer would print.
    let layer_num: usize = layer.parse().ok()?;
    if layer_num.to_string() != layer {
        return None;
    }
    Some((layer_num, LoraTarget::from_gguf_name(target)?))
}
