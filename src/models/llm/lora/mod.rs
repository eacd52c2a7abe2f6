//! Low-rank adapters (LoRA, Hu et al. 2021, <https://arxiv.org/abs/2106.09685>) for the
//! language models: the in-memory adapter that training produces and Write applies.
//!
//! Layout: an adapter is stored and held in the GGUF model's own layout (llama.cpp's), so an
//! adapter trained here on the GGUF weights needs no permutation of q/k rows for llama.cpp;
//! one from PEFT (Hugging Face layout) does. The effective weight of a target projection is
//! `W + scale · (alpha / rank) · B·A`, as in llama.cpp (`scale` is the user's strength).
//!
//! Parts: [`gguf`] (llama.cpp's file format), [`base`] (checking an adapter against a model),
//! [`discover`] (the adapters that fit a model), [`merge`] (applying one on candle),
//! [`random`] (test and benchmark adapters); the native decoder's side path is
//! [`crate::models::llm::native::lora`].

pub mod base;
pub mod discover;
pub mod gguf;
pub mod merge;
pub mod random;

use std::path::PathBuf;

pub use base::BaseShapes;

/// A projection an adapter can target, named as in the GGUF tensor names
/// (`blk.N.<name>.weight`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum LoraTarget {
    /// Attention query projection (`attn_q`).
    Q,
    /// Attention key projection (`attn_k`).
    K,
    /// Attention value projection (`attn_v`).
    V,
    /// Attention output projection (`attn_output`).
    O,
    /// MLP gate projection (`ffn_gate`).
    Gate,
    /// MLP up projection (`ffn_up`).
    Up,
    /// MLP down projection (`ffn_down`).
    Down,
}

impl LoraTarget {
    /// Every target, in the order the CLI lists them.
    pub const ALL: [LoraTarget; 7] = [
        LoraTarget::Q,
        LoraTarget::K,
        LoraTarget::V,
        LoraTarget::O,
        LoraTarget::Gate,
        LoraTarget::Up,
        LoraTarget::Down,
    ];

    /// The GGUF tensor name part (`blk.N.<this>.weight`).
    pub fn gguf_name(self) -> &'static str {
        match self {
            LoraTarget::Q => "attn_q",
            LoraTarget::K => "attn_k",
            LoraTarget::V => "attn_v",
            LoraTarget::O => "attn_output",
            LoraTarget::Gate => "ffn_gate",
            LoraTarget::Up => "ffn_up",
            LoraTarget::Down => "ffn_down",
        }
    }

    /// The short name the CLI and the UI use (`q`, `k`, `v`, `o`, `gate`, `up`, `down`).
    pub fn short_name(self) -> &'static str {
        match self {
            LoraTarget::Q => "q",
            LoraTarget::K => "k",
            LoraTarget::V => "v",
            LoraTarget::O => "o",
            LoraTarget::Gate => "gate",
            LoraTarget::Up => "up",
            LoraTarget::Down => "down",
        }
    }
}

/// One adapted projection: `delta W = (alpha / rank) · B · A`.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraPair {
    /// Which block (layer) of the model.
    pub layer: usize,
    /// Which projection in it.
    pub target: LoraTarget,
    /// The rank r.
    pub rank: usize,
    /// Input features of the projection (columns of W).
    pub n_in: usize,
    /// Output features of the projection (rows of W, in the GGUF's row order).
    pub n_out: usize,
    /// A: `rank × n_in`, row-major (GGUF `lora_a` with ne = [n_in, rank]).
    pub a: Vec<f32>,
    /// B: `n_out × rank`, row-major (GGUF `lora_b` with ne = [rank, n_out]).
    pub b: Vec<f32>,
}

/// A LoRA adapter for one base model.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraAdapter {
    /// The base model's `general.architecture` (llama, gemma3, qwen2, qwen3).
    pub architecture: String,
    /// `adapter.lora.alpha`.
    pub alpha: f32,
    /// The adapted projections, in (layer, target) order.
    pub pairs: Vec<LoraPair>,
}

/// The largest rank an adapter may have: far above any useful LoRA (4-64), low enough that a
/// hostile header cannot make the reader allocate gigabytes.
pub const MAX_RANK: usize = 4096;

/// Everything that can go wrong reading, writing or applying an adapter, naming the file and,
/// where one is at fault, the tensor.
#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    /// The file could not be read or written.
    #[error("adapter {}: {error}", path.display())]
    Io {
        /// The adapter file.
        path: PathBuf,
        /// What the system said (in the message, not chained: shown once).
        error: std::io::Error,
    },
    /// The file is not a GGUF file.
    #[error("{} is not a GGUF adapter (it does not start with the GGUF magic bytes); adapters are llama.cpp GGUF LoRA files", path.display())]
    NotGguf {
        /// The file.
        path: PathBuf,
    },
    /// The GGUF header is damaged or the file is cut short.
    #[error("adapter {} is damaged or truncated: {detail}; export or download it again", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The file is a GGUF file but not a LoRA adapter (a model, a control vector).
    #[error("{} is not a LoRA adapter: {detail}", path.display())]
    NotAdapter {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        detail: String,
    },
    /// The adapter was made for another kind of model.
    #[error("adapter {} is for a '{adapter}' model, but the loaded model is '{base}'; pick an adapter trained on this model", path.display())]
    Architecture {
        /// The file.
        path: PathBuf,
        /// The adapter's `general.architecture`.
        adapter: String,
        /// The base model's.
        base: String,
    },
    /// A tensor is malformed, unsupported or does not fit the base model.
    #[error("adapter {}: tensor '{tensor}' {detail}", path.display())]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor at fault.
        tensor: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The in-memory adapter is inconsistent (a bug in whoever built it).
    #[error("invalid adapter: {0}")]
    Invalid(String),
}

impl LoraPair {
    /// The GGUF name of the base weight this pair adapts (`blk.N.<target>.weight`).
    pub fn base_name(&self) -> String {
        format!("blk.{}.{}.weight", self.layer, self.target.gguf_name())
    }

    /// Checks that the sizes agree and every value is finite.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.base_name();
        if self.rank == 0 || self.rank > MAX_RANK {
            return Err(format!(
                "{name}: rank {} is outside 1..={MAX_RANK}",
                self.rank
            ));
        }
        if self.n_in == 0 || self.n_out == 0 {
            return Err(format!(
                "{name}: empty projection {}x{}",
                self.n_out, self.n_in
            ));
        }
        if Some(self.a.len()) != self.rank.checked_mul(self.n_in) {
            return Err(format!(
                "{name}: A holds {} values, rank {} x {} inputs needs {}",
                self.a.len(),
                self.rank,
                self.n_in,
                self.rank * self.n_in
            ));
        }
        if Some(self.b.len()) != self.n_out.checked_mul(self.rank) {
            return Err(format!(
                "{name}: B holds {} values, {} outputs x rank {} needs {}",
                self.b.len(),
                self.n_out,
                self.rank,
                self.n_out * self.rank
            ));
        }
        if !self.a.iter().chain(&self.b).all(|v| v.is_finite()) {
            return Err(format!("{name}: holds a NaN or infinite value"));
        }
        Ok(())
    }
}

impl LoraAdapter {
    /// The factor llama.cpp multiplies `B·A` of `pair` by at strength 1: `alpha / rank`, or 1
    /// when alpha is 0 (llama.cpp's rule for adapters that do not set it).
    pub fn factor(&self, pair: &LoraPair) -> f32 {
        if self.alpha == 0.0 {
            1.0
        } else {
            self.alpha / pair.rank as f32
        }
    }

    /// Checks every pair, that alpha is finite and that no projection is adapted twice.
    pub fn validate(&self) -> Result<(), LoraError> {
        if !self.alpha.is_finite() {
            return Err(LoraError::Invalid(format!("alpha is {}", self.alpha)));
        }
        if self.architecture.is_empty() {
            return Err(LoraError::Invalid("no architecture".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.pairs {
            p.validate().map_err(LoraError::Invalid)?;
            if !seen.insert((p.layer, p.target)) {
                return Err(LoraError::Invalid(format!(
                    "{} is adapted twice",
                    p.base_name()
                )));
            }
        }
        Ok(())
    }

    /// The distinct ranks of the pairs, smallest first (one value for adapters made here).
    pub fn ranks(&self) -> Vec<usize> {
        let mut r: Vec<usize> = self.pairs.iter().map(|p| p.rank).collect();
        r.sort_unstable();
        r.dedup();
        r
    }

    /// The distinct targets adapted, in [`LoraTarget::ALL`] order.
    pub fn targets(&self) -> Vec<LoraTarget> {
        LoraTarget::ALL
            .into_iter()
            .filter(|t| self.pairs.iter().any(|p| p.target == *t))
            .collect()
    }
}

impl LoraTarget {
    /// The target whose GGUF name part is `name` (`attn_q`, …).
    pub fn from_gguf_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.gguf_name() == name)
    }
}

/// The strengths a user may choose (the Write panel's slider, `--lora PATH:SCALE`).
pub const STRENGTH_RANGE: std::ops::RangeInclusive<f32> = 0.0..=2.0;

/// An adapter to apply: which file, at what strength (`scale` in llama.cpp's terms).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdapterSpec {
    /// The GGUF LoRA file.
    pub path: PathBuf,
    /// Strength in [`STRENGTH_RANGE`]; 1 applies the adapter as trained.
    pub scale: f32,
}

impl AdapterSpec {
    /// `PATH` or `PATH:SCALE` (the CLI's `--lora`). A suffix that is not a number stays part
    /// of the path (so `C:\adapters\a.gguf` works).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (path, scale) = match s.rsplit_once(':') {
            Some((p, sc)) if !p.is_empty() => match sc.trim().parse::<f32>() {
                Ok(v) => (p, v),
                Err(_) if sc.chars().any(|c| c.is_ascii_digit()) && !sc.contains(['/', '\\']) => {
                    return Err(format!(
                        "'{sc}' after the last ':' in '{s}' is not a strength; use PATH or PATH:SCALE with SCALE from 0 to 2"
                    ));
                }
                Err(_) => (s, 1.0),
            },
            _ => (s, 1.0),
        };
        let spec = Self {
            path: PathBuf::from(path),
            scale,
        };
        spec.check_scale()?;
        Ok(spec)
    }

    /// Checks that the strength is in [`STRENGTH_RANGE`].
    pub fn check_scale(&self) -> Result<(), String> {
        if !STRENGTH_RANGE.contains(&self.scale) {
            return Err(format!(
                "adapter strength {} is outside {}..={} (1 applies {} as trained)",
                self.scale,
                STRENGTH_RANGE.start(),
                STRENGTH_RANGE.end(),
                self.path.display()
            ));
        }
        Ok(())
    }

    /// The adapter's display name: its file stem.
    pub fn name(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// What the status bar and the CLI say about the adapter a model runs with.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AppliedAdapter {
    /// The file.
    pub path: PathBuf,
    /// Its display name (file stem).
    pub name: String,
    /// The strength applied.
    pub scale: f32,
    /// The highest rank among its pairs.
    pub rank: usize,
    /// The projections it adapts (short names: q, k, v, o, gate, up, down).
    pub targets: Vec<String>,
    /// How many layer projections it adapts.
    pub pairs: usize,
    /// "side path" (native decoder, strength changes instantly) or "merged" (candle: the
    /// weights hold the adapter; a strength change reloads).
    pub method: &'static str,
}

impl AppliedAdapter {
    /// Describes `adapter` applied from `spec`.
    pub fn new(spec: &AdapterSpec, adapter: &LoraAdapter, method: &'static str) -> Self {
        Self {
            path: spec.path.clone(),
            name: spec.name(),
            scale: spec.scale,
            rank: adapter.ranks().last().copied().unwrap_or(0),
            targets: adapter
                .targets()
                .into_iter()
                .map(|t| t.short_name().to_string())
                .collect(),
            pairs: adapter.pairs.len(),
            method,
        }
    }

    /// One line for a status bar: `adapter NAME ×SCALE`.
    pub fn label(&self) -> String {
        format!("adapter {} ×{:.2}", self.name, self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_spec_parses_path_and_strength() {
        let s = AdapterSpec::parse("a/b.gguf").unwrap();
        assert_eq!((s.path.to_str().unwrap(), s.scale), ("a/b.gguf", 1.0));
        let s = AdapterSpec::parse("a/b.gguf:0.5").unwrap();
        assert_eq!((s.path.to_str().unwrap(), s.scale), ("a/b.gguf", 0.5));
        let s = AdapterSpec::parse(r"C:\x\b.gguf").unwrap();
        assert_eq!(s.path.to_str().unwrap(), r"C:\x\b.gguf");
        assert!(AdapterSpec::parse("b.gguf:3").is_err());
        assert!(AdapterSpec::parse("b.gguf:-1").is_err());
        assert!(AdapterSpec::parse("b.gguf:NaN").is_err());
        assert!(AdapterSpec::parse("b.gguf:1x").is_err());
    }
}
