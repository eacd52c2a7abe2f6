//! Fine-tuning a language model with LoRA (Hu et al. 2021, <https://arxiv.org/abs/2106.09685>):
//! the frozen base model in f32, a differentiable forward pass that computes what Write's
//! native decoder computes (same hyper-parameters, norms, RoPE layout, gates, Gemma's scaled
//! embedding, q/k norms, post-norms and sliding windows), its backward pass written out by hand
//! (only activations' gradients flow through the frozen weights, `dX = dY·W`, plus the
//! gradients of the adapters' A and B), the mean causal-LM loss, and AdamW on A and B.
//!
//! Why by hand and not candle's autograd: candle's CPU ops allocate a tensor per op and keep
//! every intermediate alive, where this keeps a few buffers per layer and recomputes the
//! cheap ones (normalised inputs, gate activations, attention probabilities) in the backward
//! pass; the products run on the `gemm` crate in the job's own thread pool.
//!
//! Layout: weights and adapters are in the GGUF's own layout (llama's q/k rows permuted for
//! its RoPE), so an adapter trained here is already in llama.cpp's layout.
//!
//! Supported: the `llama` and `gemma3` architectures (the ones the native decoder runs);
//! `qwen2`/`qwen3` are refused with a message.

mod attention;
mod gemm;
mod head;
mod layer;
pub mod lora;
mod ops;
mod pass;
mod sgemm;
#[cfg(test)]
mod tests;
mod view;
mod weights;

pub use lora::{AdamW, AdamWConfig, Grads, Lora, LoraShapeError};
pub use pass::{Interrupted, Workspace};

use std::path::PathBuf;

use crate::models::llm::Architecture;
use crate::models::llm::lora::LoraTarget;
use crate::models::llm::native::Hparams;

/// What can go wrong loading a model for training.
#[derive(Debug, thiserror::Error)]
pub enum TrainModelError {
    /// The file could not be opened as a language model.
    #[error(transparent)]
    Llm(#[from] crate::models::llm::LlmError),
    /// The architecture has no training decoder.
    #[error(
        "{}: training supports llama (SmolLM2) and gemma3 models; this one is {arch}",
        path.display()
    )]
    Unsupported { path: PathBuf, arch: String },
    /// The tensors or metadata do not fit the architecture.
    #[error("{}: {source}", path.display())]
    Model {
        path: PathBuf,
        #[source]
        source: crate::models::llm::native::NativeError,
    },
    /// The f32 copy of the weights would not fit in memory.
    #[error(
        "{}: training needs the weights as 32-bit floats, {need_mb} MB, but only {available_mb} MB of memory is available",
        path.display()
    )]
    TooLarge {
        path: PathBuf,
        need_mb: u64,
        available_mb: u64,
    },
}

/// One layer's frozen weights, dequantised to f32 (matrices row-major, `n_out × n_in`).
pub(crate) struct LayerWeights {
    attn_norm: Vec<f32>,
    /// q, k, v, o, gate, up, down, in [`LoraTarget::ALL`]'s order.
    proj: [Vec<f32>; 7],
    /// Gemma's per-head norms, the q one carrying the attention scale (as the native decoder).
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    post_ffn_norm: Option<Vec<f32>>,
    window: Option<usize>,
    /// Which RoPE table the layer uses.
    rope: usize,
}

/// A base model held for training: its hyper-parameters and f32 weights. Frozen: nothing here
/// changes during training; the adapter ([`Lora`]) is what learns.
pub struct TrainModel {
    arch: Architecture,
    hp: Hparams,
    vocab: usize,
    embed: Vec<f32>,
    /// The output projection when not tied to the embeddings.
    output: Option<Vec<f32>>,
    output_norm: Vec<f32>,
    layers: Vec<LayerWeights>,
}

impl TrainModel {
    /// The architecture (`llama` or `gemma3`).
    pub fn architecture(&self) -> Architecture {
        self.arch
    }

    /// Layers (blocks).
    pub fn n_layer(&self) -> usize {
        self.layers.len()
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Frozen parameters (all of them, embeddings included).
    pub fn parameter_count(&self) -> usize {
        let per_layer: usize = self.layers.first().map_or(0, |l| {
            l.proj.iter().map(Vec::len).sum::<usize>()
                + l.attn_norm.len()
                + l.ffn_norm.len()
                + [&l.q_norm, &l.k_norm, &l.post_attn_norm, &l.post_ffn_norm]
                    .iter()
                    .map(|n| n.as_ref().map_or(0, Vec::len))
                    .sum::<usize>()
        });
        self.embed.len()
            + self.output.as_ref().map_or(0, Vec::len)
            + self.output_norm.len()
            + per_layer * self.layers.len()
    }

    /// `(n_out, n_in)` of a target projection (the same in every layer).
    pub fn target_shape(&self, target: LoraTarget) -> (usize, usize) {
        weights::shape_of(&self.hp, target)
    }

    /// Floating-point operations of one training step per token (forward and backward
    /// through the frozen weights, LoRA and attention aside): for time estimates.
    pub fn flops_per_token(&self) -> f64 {
        let proj: usize = LoraTarget::ALL
            .iter()
            .map(|&t| {
                let (o, i) = self.target_shape(t);
                o * i
            })
            .sum();
        let head = self.vocab * self.hp.cfg.n_embd;
        // 2 flops per multiply-add, a forward and an input-gradient product each.
        4.0 * (proj * self.layers.len() + head) as f64
    }
}
